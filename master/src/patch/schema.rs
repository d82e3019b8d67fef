//! Where the merge-keyed lists are, per kind: the data that strategic merge patch and
//! server-side apply need beyond the JSON itself. It transcribes the upstream Go struct
//! tags (`patchStrategy:"merge" patchMergeKey:"…"`, `+listType`, `+listMapKey`,
//! `+structType=atomic`, `+mapType=atomic`) of k8s.io/api core/v1 and apps/v1 and of
//! apimachinery's ObjectMeta, for the kinds bosun serves. A field the table does not
//! name is an ordinary field: objects merge key by key, lists are replaced whole.

/// How a field's value is merged.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    /// An object whose keys merge one by one; the named fields have their own rules.
    Struct(&'static [Field]),
    /// An object replaced whole by server-side apply (`+structType=atomic`,
    /// `+mapType=atomic`, e.g. a label selector). Strategic merge still merges it.
    Atomic,
    /// A list of primitives merged as a set (`patchStrategy:"merge"`, `+listType=set`,
    /// e.g. `metadata.finalizers`).
    Set,
    /// A list of objects merged by key.
    Keyed(&'static Keyed),
}

/// A list of objects merged element by element.
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    /// The strategic merge patch key (`patchMergeKey`).
    pub merge_key: &'static str,
    /// The server-side apply keys (`+listMapKey`), each with the default the API
    /// server fills in when the object leaves it out (e.g. `protocol: TCP`).
    pub apply_keys: &'static [(&'static str, Option<&'static str>)],
    /// The type of each element.
    pub item: Ty,
}

/// A named field of an object.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field { name, ty }
}

const NONE: &[Field] = &[];

/// The type of field `name` among `fields`, if the table names it.
pub fn field(fields: &[Field], name: &str) -> Option<Ty> {
    fields.iter().find(|f| f.name == name).map(|f| f.ty)
}

/// The fields of a child object: those of a `Struct`, none otherwise.
pub fn struct_fields(ty: Option<Ty>) -> &'static [Field] {
    match ty {
        Some(Ty::Struct(fields)) => fields,
        _ => NONE,
    }
}

/// The top-level fields of `kind` (whatever its apiVersion).
pub fn root(kind: &str) -> &'static [Field] {
    match kind {
        "Pod" => POD,
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => WORKLOAD,
        "ReplicationController" => RC,
        "PodTemplate" => POD_TEMPLATE,
        "Service" => SERVICE,
        "Node" => NODE,
        "Namespace" => NAMESPACE,
        "ServiceAccount" => SERVICE_ACCOUNT,
        _ => OBJECT_ONLY,
    }
}

const fn keyed(merge_key: &'static str, item: Ty) -> Keyed {
    Keyed {
        merge_key,
        apply_keys: &[],
        item,
    }
}

// --- apimachinery meta/v1 ---

const OWNER_REFERENCES: Keyed = Keyed {
    apply_keys: &[("uid", None)],
    ..keyed("uid", Ty::Atomic)
};

const OBJECT_META: &[Field] = &[
    f("ownerReferences", Ty::Keyed(&OWNER_REFERENCES)),
    f("finalizers", Ty::Set),
];

const CONDITIONS: Keyed = Keyed {
    apply_keys: &[("type", None)],
    ..keyed("type", Ty::Struct(NONE))
};

const OBJECT_ONLY: &[Field] = &[f("metadata", Ty::Struct(OBJECT_META))];

// --- core/v1 Container ---

const NAME_KEY: &[(&str, Option<&str>)] = &[("name", None)];

const ENV_VAR_SOURCE: &[Field] = &[
    f("configMapKeyRef", Ty::Atomic),
    f("secretKeyRef", Ty::Atomic),
    f("fieldRef", Ty::Atomic),
    f("resourceFieldRef", Ty::Atomic),
    f("fileKeyRef", Ty::Atomic),
];
const ENV_VAR: &[Field] = &[f("valueFrom", Ty::Struct(ENV_VAR_SOURCE))];
const ENV: Keyed = Keyed {
    apply_keys: NAME_KEY,
    ..keyed("name", Ty::Struct(ENV_VAR))
};
const CONTAINER_PORTS: Keyed = Keyed {
    apply_keys: &[("containerPort", None), ("protocol", Some("TCP"))],
    ..keyed("containerPort", Ty::Struct(NONE))
};
const VOLUME_MOUNTS: Keyed = Keyed {
    apply_keys: &[("mountPath", None)],
    ..keyed("mountPath", Ty::Struct(NONE))
};
const VOLUME_DEVICES: Keyed = Keyed {
    apply_keys: &[("devicePath", None)],
    ..keyed("devicePath", Ty::Struct(NONE))
};
const CONTAINER: &[Field] = &[
    f("ports", Ty::Keyed(&CONTAINER_PORTS)),
    f("env", Ty::Keyed(&ENV)),
    f("volumeMounts", Ty::Keyed(&VOLUME_MOUNTS)),
    f("volumeDevices", Ty::Keyed(&VOLUME_DEVICES)),
];
const CONTAINERS: Keyed = Keyed {
    apply_keys: NAME_KEY,
    ..keyed("name", Ty::Struct(CONTAINER))
};

// --- core/v1 PodSpec, PodStatus ---

const BY_NAME: Keyed = Keyed {
    apply_keys: NAME_KEY,
    ..keyed("name", Ty::Struct(NONE))
};
const BY_NAME_ATOMIC: Keyed = Keyed {
    apply_keys: NAME_KEY,
    ..keyed("name", Ty::Atomic)
};
const BY_IP: Keyed = Keyed {
    apply_keys: &[("ip", None)],
    ..keyed("ip", Ty::Struct(NONE))
};
const TOPOLOGY_SPREAD: Keyed = Keyed {
    apply_keys: &[("topologyKey", None), ("whenUnsatisfiable", None)],
    ..keyed("topologyKey", Ty::Struct(NONE))
};

const POD_SPEC: &[Field] = &[
    f("volumes", Ty::Keyed(&BY_NAME)),
    f("initContainers", Ty::Keyed(&CONTAINERS)),
    f("containers", Ty::Keyed(&CONTAINERS)),
    f("ephemeralContainers", Ty::Keyed(&CONTAINERS)),
    f("imagePullSecrets", Ty::Keyed(&BY_NAME_ATOMIC)),
    f("hostAliases", Ty::Keyed(&BY_IP)),
    f("topologySpreadConstraints", Ty::Keyed(&TOPOLOGY_SPREAD)),
    f("schedulingGates", Ty::Keyed(&BY_NAME)),
    f("resourceClaims", Ty::Keyed(&BY_NAME)),
    f("nodeSelector", Ty::Atomic),
];
const POD_STATUS: &[Field] = &[
    f("conditions", Ty::Keyed(&CONDITIONS)),
    f("podIPs", Ty::Keyed(&BY_IP)),
    f("hostIPs", Ty::Keyed(&BY_IP)),
];
const POD: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(POD_SPEC)),
    f("status", Ty::Struct(POD_STATUS)),
];
const POD_TEMPLATE_SPEC: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(POD_SPEC)),
];
const POD_TEMPLATE: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("template", Ty::Struct(POD_TEMPLATE_SPEC)),
];

// --- apps/v1 Deployment, ReplicaSet (StatefulSet, DaemonSet alike) ---

const WORKLOAD_SPEC: &[Field] = &[
    f("selector", Ty::Atomic),
    f("template", Ty::Struct(POD_TEMPLATE_SPEC)),
];
const CONDITIONS_ONLY: &[Field] = &[f("conditions", Ty::Keyed(&CONDITIONS))];
const WORKLOAD: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(WORKLOAD_SPEC)),
    f("status", Ty::Struct(CONDITIONS_ONLY)),
];
const RC_SPEC: &[Field] = &[
    f("selector", Ty::Atomic),
    f("template", Ty::Struct(POD_TEMPLATE_SPEC)),
];
const RC: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(RC_SPEC)),
    f("status", Ty::Struct(CONDITIONS_ONLY)),
];

// --- core/v1 Service, Node, Namespace, ServiceAccount ---

const SERVICE_PORTS: Keyed = Keyed {
    apply_keys: &[("port", None), ("protocol", Some("TCP"))],
    ..keyed("port", Ty::Struct(NONE))
};
const SERVICE_SPEC: &[Field] = &[
    f("ports", Ty::Keyed(&SERVICE_PORTS)),
    f("selector", Ty::Atomic),
];
const SERVICE_STATUS: &[Field] = &[f("conditions", Ty::Keyed(&CONDITIONS))];
const SERVICE: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(SERVICE_SPEC)),
    f("status", Ty::Struct(SERVICE_STATUS)),
];

const NODE_ADDRESSES: Keyed = Keyed {
    apply_keys: &[("type", None)],
    ..keyed("type", Ty::Struct(NONE))
};
const NODE_SPEC: &[Field] = &[f("podCIDRs", Ty::Set)];
const NODE_STATUS: &[Field] = &[
    f("conditions", Ty::Keyed(&CONDITIONS)),
    f("addresses", Ty::Keyed(&NODE_ADDRESSES)),
];
const NODE: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("spec", Ty::Struct(NODE_SPEC)),
    f("status", Ty::Struct(NODE_STATUS)),
];

const NAMESPACE: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("status", Ty::Struct(CONDITIONS_ONLY)),
];

const SERVICE_ACCOUNT: &[Field] = &[
    f("metadata", Ty::Struct(OBJECT_META)),
    f("secrets", Ty::Keyed(&BY_NAME_ATOMIC)),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: &str, path: &[&str]) -> Option<Ty> {
        let mut fields = root(kind);
        let mut ty = None;
        for (i, name) in path.iter().enumerate() {
            ty = field(fields, name);
            if i + 1 < path.len() {
                fields = match ty {
                    Some(Ty::Keyed(k)) => struct_fields(Some(k.item)),
                    other => struct_fields(other),
                };
            }
        }
        ty
    }

    fn key(kind: &str, path: &[&str]) -> Option<&'static str> {
        match at(kind, path) {
            Some(Ty::Keyed(k)) => Some(k.merge_key),
            _ => None,
        }
    }

    #[test]
    fn deployment_reaches_containers_through_the_pod_template() {
        let c = ["spec", "template", "spec", "containers"];
        assert_eq!(key("Deployment", &c), Some("name"));
        assert_eq!(key("ReplicaSet", &c), Some("name"));
        let env = ["spec", "template", "spec", "containers", "env"];
        assert_eq!(key("Deployment", &env), Some("name"));
        let ports = ["spec", "template", "spec", "containers", "ports"];
        assert_eq!(key("Deployment", &ports), Some("containerPort"));
        let mounts = ["spec", "template", "spec", "containers", "volumeMounts"];
        assert_eq!(key("Deployment", &mounts), Some("mountPath"));
    }

    #[test]
    fn keys_follow_upstream_tags() {
        assert_eq!(key("Service", &["spec", "ports"]), Some("port"));
        assert_eq!(key("Node", &["status", "addresses"]), Some("type"));
        assert_eq!(key("Node", &["status", "conditions"]), Some("type"));
        assert_eq!(key("Namespace", &["status", "conditions"]), Some("type"));
        assert_eq!(key("Pod", &["spec", "hostAliases"]), Some("ip"));
        assert_eq!(
            key("ConfigMap", &["metadata", "ownerReferences"]),
            Some("uid")
        );
        assert!(matches!(
            at("Secret", &["metadata", "finalizers"]),
            Some(Ty::Set)
        ));
        assert!(at("Pod", &["spec", "tolerations"]).is_none());
        assert!(at("Pod", &["spec", "containers", "args"]).is_none());
    }
}
