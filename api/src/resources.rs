//! The resource table: every kind bosun serves, with its group, version, plural,
//! scope, short names and subresources. Discovery, routing and storage keys are all
//! derived from this one table.

/// How a resource is addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// One served resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource {
    /// API group; `""` is the core group (served under `/api`).
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub scope: Scope,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Subresources served on objects of this resource, e.g. `status`, `scale`.
    pub subresources: &'static [&'static str],
    /// Verbs allowed on the resource.
    pub verbs: &'static [&'static str],
}

impl Resource {
    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` for the core group, else `deployments.apps`: the name kubectl and
    /// error messages use.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The storage key prefix of all objects of this resource.
    pub fn key_prefix(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("/{}/{}/", group, self.plural)
    }

    /// The storage key prefix of this resource in one namespace (or all, with None).
    pub fn key_prefix_in(&self, namespace: Option<&str>) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }

    /// The storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

macro_rules! res {
    ($group:expr, $version:expr, $kind:expr, $plural:expr, $singular:expr, $scope:ident,
     [$($short:expr),*], [$($cat:expr),*], [$($sub:expr),*]) => {
        Resource {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            singular: $singular,
            scope: Scope::$scope,
            short_names: &[$($short),*],
            categories: &[$($cat),*],
            subresources: &[$($sub),*],
            verbs: ALL_VERBS,
        }
    };
}

/// Every resource bosun serves, core group first.
#[rustfmt::skip]
pub const RESOURCES: &[Resource] = &[
    res!("", "v1", "Namespace", "namespaces", "namespace", Cluster, ["ns"], [], ["status", "finalize"]),
    res!("", "v1", "Pod", "pods", "pod", Namespaced, ["po"], ["all"], ["status", "binding", "log", "exec", "eviction"]),
    res!("", "v1", "Node", "nodes", "node", Cluster, ["no"], [], ["status", "proxy"]),
    res!("", "v1", "Service", "services", "service", Namespaced, ["svc"], ["all"], ["status", "proxy"]),
    res!("", "v1", "Endpoints", "endpoints", "endpoints", Namespaced, ["ep"], [], []),
    res!("", "v1", "ConfigMap", "configmaps", "configmap", Namespaced, ["cm"], [], []),
    res!("", "v1", "Secret", "secrets", "secret", Namespaced, [], [], []),
    res!("", "v1", "Event", "events", "event", Namespaced, ["ev"], [], []),
    res!("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", Namespaced, ["sa"], [], ["token"]),
    res!("", "v1", "Binding", "bindings", "binding", Namespaced, [], [], []),
    res!("apps", "v1", "Deployment", "deployments", "deployment", Namespaced, ["deploy"], ["all"], ["status", "scale"]),
    res!("apps", "v1", "ReplicaSet", "replicasets", "replicaset", Namespaced, ["rs"], ["all"], ["status", "scale"]),
    res!("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", Namespaced, [], [], []),
    res!("events.k8s.io", "v1", "Event", "events", "event", Namespaced, ["ev"], [], []),
    res!("coordination.k8s.io", "v1", "Lease", "leases", "lease", Namespaced, [], [], []),
];

/// The groups bosun serves, in discovery order (the core group excluded).
pub const GROUPS: &[(&str, &str)] = &[
    ("apps", "v1"),
    ("discovery.k8s.io", "v1"),
    ("events.k8s.io", "v1"),
    ("coordination.k8s.io", "v1"),
];

/// The resource served as `plural` in `group`/`version`, if any.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Resources of one group version, in table order.
pub fn of_group_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static Resource> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_namespaces_and_resources() {
        let pods = find("", "v1", "pods").unwrap();
        assert_eq!(pods.key(Some("default"), "web"), "/core/pods/default/web");
        assert_eq!(pods.key_prefix_in(Some("default")), "/core/pods/default/");
        let nodes = find("", "v1", "nodes").unwrap();
        assert_eq!(nodes.key(None, "n1"), "/core/nodes/n1");
        let deploy = find("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.qualified_plural(), "deployments.apps");
        assert_eq!(deploy.api_version(), "apps/v1");
    }

    #[test]
    fn every_group_has_resources() {
        for (g, v) in GROUPS {
            assert!(of_group_version(g, v).next().is_some(), "{g}/{v}");
        }
    }
}
