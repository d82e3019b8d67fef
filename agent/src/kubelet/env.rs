//! A container's environment, the way the kubelet builds it: `envFrom` sources
//! first, then `env` in order, where `$(VAR)` refers to a variable defined before
//! it; values from the pod's own fields (`fieldRef`), its resources
//! (`resourceFieldRef`), ConfigMaps and Secrets. The lookups of ConfigMaps and
//! Secrets are behind [`Sources`] so that everything here is pure.

use std::collections::BTreeMap;

use api::quantity::Quantity;
use k8s_openapi::api::core::v1::{Container, EnvVarSource, Pod};

/// Where ConfigMap and Secret data come from (the API, or a test's map).
pub trait Sources {
    /// The data of a ConfigMap (`None`: it does not exist).
    fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>>;
    /// The decoded data of a Secret (`None`: it does not exist).
    fn secret(&self, name: &str) -> Option<BTreeMap<String, String>>;
}

/// Why a container's configuration cannot be made (`CreateContainerConfigError`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("configmap \"{name}\" not found")]
    ConfigMapNotFound { name: String },
    #[error("secret \"{name}\" not found")]
    SecretNotFound { name: String },
    #[error("couldn't find key {key} in {kind} {namespace}/{name}")]
    KeyNotFound {
        key: String,
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("unsupported field path {path:?}")]
    FieldPath { path: String },
    #[error("unsupported resource {resource:?}")]
    Resource { resource: String },
}

/// What the pod's field references may see besides the pod object.
pub struct Context<'a> {
    pub pod: &'a Pod,
    pub host_ip: &'a str,
    pub pod_ip: &'a str,
}

/// Expands `$(VAR)` with `lookup`; `$$` is a literal `$`; unknown references stay
/// as they are (Kubernetes' rule).
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `fieldRef`.
pub fn field_value(ctx: &Context<'_>, path: &str) -> Result<String, ConfigError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(|key| map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = keyed("metadata.labels['", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = keyed("metadata.annotations['", meta.annotations.as_ref()) {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        _ => {
            return Err(ConfigError::FieldPath {
                path: path.to_string(),
            })
        }
    })
}

/// The value of a `resourceFieldRef` (limits fall back to the node's
/// allocatable, which the kubelet passes as `node_cpu`/`node_memory`).
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    node_cpu_millis: i128,
    node_memory: i128,
) -> Result<String, ConfigError> {
    let res = container.resources.as_ref();
    let get = |limits: bool, key: &str| {
        let map = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        map.and_then(|m| m.get(key))
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    let bad = || ConfigError::Resource {
        resource: resource.to_string(),
    };
    let divisor = divisor
        .map(|d| Quantity::parse(d).map_err(|_| bad()))
        .transpose()?;
    let (is_cpu, millis) = match resource {
        "limits.cpu" => (
            true,
            get(true, "cpu").map_or(node_cpu_millis, |q| q.millis()),
        ),
        "requests.cpu" => (true, get(false, "cpu").map_or(0, |q| q.millis())),
        "limits.memory" => (
            false,
            get(true, "memory").map_or(node_memory * 1000, |q| q.millis()),
        ),
        "requests.memory" => (false, get(false, "memory").map_or(0, |q| q.millis())),
        "limits.ephemeral-storage" | "requests.ephemeral-storage" => {
            let limits = resource.starts_with("limits");
            (
                false,
                get(limits, "ephemeral-storage").map_or(0, |q| q.millis()),
            )
        }
        _ => return Err(bad()),
    };
    let divisor_millis = match divisor {
        Some(d) if !d.is_zero() => d.millis(),
        _ if is_cpu => 1000,
        _ => 1000,
    };
    // Round up, as the kubelet does (a request of 250m with divisor 1 is "1").
    let value = (millis + divisor_millis - 1) / divisor_millis;
    Ok(value.to_string())
}

/// The environment of `container`, in order, names unique (a later definition
/// replaces an earlier one in place).
pub fn environment(
    ctx: &Context<'_>,
    container: &Container,
    sources: &dyn Sources,
    node_cpu_millis: i128,
    node_memory: i128,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = ctx.pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| match out
        .iter_mut()
        .find(|(name, _)| *name == k)
    {
        Some(slot) => slot.1 = v,
        None => out.push((k, v)),
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            match sources.config_map(&cm.name) {
                Some(data) => data
                    .into_iter()
                    .for_each(|(k, v)| set(&mut out, format!("{prefix}{k}"), v)),
                None if cm.optional == Some(true) => {}
                None => {
                    return Err(ConfigError::ConfigMapNotFound {
                        name: cm.name.clone(),
                    })
                }
            }
        }
        if let Some(sec) = &from.secret_ref {
            match sources.secret(&sec.name) {
                Some(data) => data
                    .into_iter()
                    .for_each(|(k, v)| set(&mut out, format!("{prefix}{k}"), v)),
                None if sec.optional == Some(true) => {}
                None => {
                    return Err(ConfigError::SecretNotFound {
                        name: sec.name.clone(),
                    })
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => {
                let known = out.clone();
                let lookup = move |name: &str| {
                    known
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                expand(var.value.as_deref().unwrap_or_default(), &lookup)
            }
            Some(src) => match source_value(
                ctx,
                container,
                src,
                sources,
                &namespace,
                node_cpu_millis,
                node_memory,
            )? {
                Some(v) => v,
                None => continue,
            },
        };
        set(&mut out, var.name.clone(), value);
    }
    Ok(out)
}

fn source_value(
    ctx: &Context<'_>,
    container: &Container,
    src: &EnvVarSource,
    sources: &dyn Sources,
    namespace: &str,
    node_cpu_millis: i128,
    node_memory: i128,
) -> Result<Option<String>, ConfigError> {
    if let Some(f) = &src.field_ref {
        return field_value(ctx, &f.field_path).map(Some);
    }
    if let Some(r) = &src.resource_field_ref {
        let target = match r.container_name.as_deref() {
            Some(name) if !name.is_empty() && name != container.name => ctx
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .unwrap_or(container),
            _ => container,
        };
        let divisor = r.divisor.as_ref().map(|q| q.0.as_str());
        return resource_value(target, &r.resource, divisor, node_cpu_millis, node_memory)
            .map(Some);
    }
    let keyed = |kind: &'static str,
                 name: &str,
                 key: &str,
                 optional: Option<bool>,
                 data: Option<BTreeMap<String, String>>| {
        let optional = optional == Some(true);
        match data {
            None if optional => Ok(None),
            None if kind == "ConfigMap" => {
                Err(ConfigError::ConfigMapNotFound { name: name.into() })
            }
            None => Err(ConfigError::SecretNotFound { name: name.into() }),
            Some(d) => match d.get(key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(ConfigError::KeyNotFound {
                    key: key.into(),
                    kind,
                    namespace: namespace.into(),
                    name: name.into(),
                }),
            },
        }
    };
    if let Some(c) = &src.config_map_key_ref {
        return keyed(
            "ConfigMap",
            &c.name,
            &c.key,
            c.optional,
            sources.config_map(&c.name),
        );
    }
    if let Some(s) = &src.secret_key_ref {
        return keyed(
            "Secret",
            &s.name,
            &s.key,
            s.optional,
            sources.secret(&s.name),
        );
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fake;
    impl Sources for Fake {
        fn config_map(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "cfg").then(|| BTreeMap::from([("MODE".to_string(), "fast".to_string())]))
        }
        fn secret(&self, name: &str) -> Option<BTreeMap<String, String>> {
            (name == "sec").then(|| BTreeMap::from([("pw".to_string(), "hunter2".to_string())]))
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}]}
        }))
        .unwrap()
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn references_expand_and_dollars_escape() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vars), "x-$(B)-$(A)-$");
        assert_eq!(expand("$(A", &vars), "$(A");
    }

    #[test]
    fn env_comes_from_fields_resources_config_maps_and_secrets() {
        let pod = pod();
        let ctx = Context {
            pod: &pod,
            host_ip: "10.0.0.2",
            pod_ip: "10.244.0.5",
        };
        let c = container(json!({
            "name": "a",
            "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "64Mi"}},
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
            "env": [
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
                {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
                {"name": "GREETING", "value": "$(POD) on $(NODE)"}
            ]
        }));
        let env = environment(&ctx, &c, &Fake, 2000, 1 << 30).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_MODE"), Some("fast"));
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.244.0.5"));
        assert_eq!(get("CPU"), Some("250"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("GREETING"), Some("web on n1"));
    }

    #[test]
    fn missing_sources_are_config_errors_unless_optional() {
        let pod = pod();
        let ctx = Context {
            pod: &pod,
            host_ip: "",
            pod_ip: "",
        };
        let c = container(json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}));
        assert_eq!(
            environment(&ctx, &c, &Fake, 0, 0).unwrap_err().to_string(),
            "configmap \"nope\" not found"
        );
        let c = container(json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}));
        assert_eq!(
            environment(&ctx, &c, &Fake, 0, 0).unwrap_err().to_string(),
            "couldn't find key k in ConfigMap prod/cfg"
        );
        let c = container(json!({"name": "a", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k", "optional": true}}}]}));
        assert!(environment(&ctx, &c, &Fake, 0, 0).unwrap().is_empty());
    }

    #[test]
    fn cpu_limits_default_to_the_node_and_round_up() {
        let c = container(json!({"name": "a", "resources": {"requests": {"cpu": "250m"}}}));
        assert_eq!(
            resource_value(&c, "limits.cpu", None, 2000, 0).unwrap(),
            "2"
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", None, 2000, 0).unwrap(),
            "1"
        );
    }
}
