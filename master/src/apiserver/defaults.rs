//! The defaults a real API server fills in, so that `kubectl get -o yaml` shows what
//! it shows on a real cluster: pod and container fields, deployment strategy, service
//! fields, namespace finalizers. Pure functions over JSON objects.

use serde_json::{json, Map, Value};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

/// Sets `key` to `value` when it is absent or null.
fn default(map: &mut Map<String, Value>, key: &str, value: Value) {
    match map.get(key) {
        None | Some(Value::Null) => {
            map.insert(key.to_string(), value);
        }
        _ => {}
    }
}

/// Applies the defaults of `kind` to a new or updated object.
pub fn apply(kind: &str, object: &mut Value) {
    match kind {
        "Pod" => {
            if let Some(spec) = object.get_mut("spec") {
                pod_spec(spec);
                if let Some(s) = obj(spec) {
                    default(s, "enableServiceLinks", json!(true));
                }
            }
        }
        "Deployment" => deployment(object),
        "ReplicaSet" => {
            if let Some(spec) = object.get_mut("spec").and_then(obj) {
                default(spec, "replicas", json!(1));
                if let Some(t) = spec.get_mut("template") {
                    pod_template(t);
                }
            }
        }
        "Service" => service(object),
        "Namespace" => {
            if let Some(m) = obj(object) {
                let spec = m.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = obj(spec) {
                    default(spec, "finalizers", json!(["kubernetes"]));
                }
            }
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let (Some(name), Some(meta)) = (name, object.get_mut("metadata").and_then(obj)) {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(labels) = obj(labels) {
                    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
        }
        "Secret" => {
            if let Some(m) = obj(object) {
                default(m, "type", json!("Opaque"));
            }
        }
        "Endpoints" => {
            if let Some(subsets) = object.get_mut("subsets").and_then(Value::as_array_mut) {
                for s in subsets {
                    ports_protocol(s.get_mut("ports"));
                }
            }
        }
        "EndpointSlice" => ports_protocol(object.get_mut("ports")),
        _ => {}
    }
}

/// What admission adds to a new object after defaulting (and after the writer's
/// managed fields are recorded, so these are not counted as the writer's): a pod's
/// service account, priority and the not-ready/unreachable tolerations (for
/// `toleration_seconds`).
pub fn admit(kind: &str, object: &mut Value, toleration_seconds: i64) {
    if kind != "Pod" {
        return;
    }
    let Some(s) = object.get_mut("spec").and_then(obj) else {
        return;
    };
    default(s, "serviceAccountName", json!("default"));
    let sa = s
        .get("serviceAccountName")
        .cloned()
        .unwrap_or(json!("default"));
    default(s, "serviceAccount", sa);
    default(s, "preemptionPolicy", json!("PreemptLowerPriority"));
    default(s, "priority", json!(0));
    let tolerations = s.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = list.iter().any(|t| {
                let k = t.get("key").and_then(Value::as_str);
                let exists = t.get("operator").and_then(Value::as_str) == Some("Exists");
                let effect = t.get("effect").and_then(Value::as_str);
                (k == Some(key) || k.is_none() && exists)
                    && (effect.is_none() || effect == Some("NoExecute"))
            });
            if !tolerated {
                list.push(json!({
                    "key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": toleration_seconds
                }));
            }
        }
    }
}

fn ports_protocol(ports: Option<&mut Value>) {
    if let Some(ports) = ports.and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(obj) {
            default(p, "protocol", json!("TCP"));
        }
    }
}

fn deployment(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(obj) else {
        return;
    };
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
    if let Some(strategy) = obj(strategy) {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            let ru = strategy.entry("rollingUpdate").or_insert_with(|| json!({}));
            if let Some(ru) = obj(ru) {
                default(ru, "maxUnavailable", json!("25%"));
                default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    if let Some(t) = spec.get_mut("template") {
        pod_template(t);
    }
}

fn pod_template(template: &mut Value) {
    if let Some(spec) = template.get_mut("spec") {
        pod_spec(spec);
    }
}

/// Pod spec defaults, for pods and pod templates alike.
pub fn pod_spec(spec: &mut Value) {
    let Some(s) = obj(spec) else { return };
    default(s, "restartPolicy", json!("Always"));
    default(s, "dnsPolicy", json!("ClusterFirst"));
    default(s, "terminationGracePeriodSeconds", json!(30));
    default(s, "schedulerName", json!("default-scheduler"));
    default(s, "securityContext", json!({}));
    for field in ["containers", "initContainers"] {
        if let Some(list) = s.get_mut(field).and_then(Value::as_array_mut) {
            for c in list.iter_mut() {
                container(c);
            }
        }
    }
    if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut().filter_map(obj) {
            for source in ["configMap", "secret"] {
                if let Some(src) = v.get_mut(source).and_then(obj) {
                    default(src, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// `Always` for `:latest` or an untagged image, else `IfNotPresent`.
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn container(c: &mut Value) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(c) = obj(c) else { return };
    default(c, "imagePullPolicy", json!(pull_policy(&image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    ports_protocol(c.get_mut("ports"));
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for e in env {
            if let Some(fr) = e.pointer_mut("/valueFrom/fieldRef").and_then(obj) {
                default(fr, "apiVersion", json!("v1"));
            }
        }
    }
    // Limits without requests: requests default to the limits.
    if let Some(res) = c.get_mut("resources").and_then(obj) {
        if let Some(limits) = res
            .get("limits")
            .cloned()
            .and_then(|l| l.as_object().cloned())
        {
            let requests = res.entry("requests").or_insert_with(|| json!({}));
            if let Some(requests) = obj(requests) {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
}

fn service(object: &mut Value) {
    let Some(spec) = object.get_mut("spec").and_then(obj) else {
        return;
    };
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if ty != "ExternalName" {
        default(spec, "ipFamilies", json!(["IPv4"]));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "NodePort" || ty == "LoadBalancer" {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(obj) {
            default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default(p, "targetPort", port);
            }
        }
    }
    if let Some(meta) = object.as_object_mut() {
        let status = meta.entry("status").or_insert_with(|| json!({}));
        if let Some(status) = obj(status) {
            default(status, "loadBalancer", json!({}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_defaults_match_a_real_cluster() {
        let mut pod = json!({"spec": {"containers": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}
        ]}});
        apply("Pod", &mut pod);
        admit("Pod", &mut pod, 300);
        let s = &pod["spec"];
        assert_eq!(s["restartPolicy"], "Always");
        assert_eq!(s["dnsPolicy"], "ClusterFirst");
        assert_eq!(s["terminationGracePeriodSeconds"], 30);
        assert_eq!(s["schedulerName"], "default-scheduler");
        assert_eq!(s["serviceAccountName"], "default");
        assert_eq!(s["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(s["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(s["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            s["containers"][0]["terminationMessagePath"],
            "/dev/termination-log"
        );
        assert_eq!(s["tolerations"].as_array().unwrap().len(), 2);
        // Idempotent.
        let before = pod.clone();
        apply("Pod", &mut pod);
        admit("Pod", &mut pod, 300);
        assert_eq!(pod, before);
    }

    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v1"), "IfNotPresent");
        assert_eq!(pull_policy("app:latest"), "Always");
        assert_eq!(pull_policy("app@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn deployment_and_service_defaults() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        apply("Deployment", &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert!(d["spec"]["template"]["spec"]
            .get("serviceAccountName")
            .is_none());
        let mut s = json!({"spec": {"ports": [{"port": 80}]}});
        apply("Service", &mut s);
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["sessionAffinity"], "None");
    }
}
