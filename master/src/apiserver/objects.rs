//! What the API server does to every object it stores: the typed round trip through
//! k8s-openapi (type errors become 400, unknown fields are dropped as upstream does),
//! metadata a server owns (uid, creationTimestamp, generation), and derived status
//! fields such as a pod's QoS class.

use api::resources::Resource;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

/// Now, as Kubernetes writes timestamps (RFC 3339, seconds, UTC).
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A timestamp `seconds` from now.
pub fn later_rfc3339(seconds: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn roundtrip<T: DeserializeOwned + Serialize>(value: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Parses `value` as the k8s-openapi type of `res` and serializes it back: wrong types
/// are an error, unknown fields disappear. `kind` and `apiVersion` must already be set.
pub fn typed_roundtrip(res: &Resource, value: Value) -> Result<Value, String> {
    use k8s_openapi::api::{apps, coordination, core, discovery, events};
    match (res.group, res.kind) {
        ("", "Namespace") => roundtrip::<core::v1::Namespace>(value),
        ("", "Pod") => roundtrip::<core::v1::Pod>(value),
        ("", "Node") => roundtrip::<core::v1::Node>(value),
        ("", "Service") => roundtrip::<core::v1::Service>(value),
        ("", "Endpoints") => roundtrip::<core::v1::Endpoints>(value),
        ("", "ConfigMap") => roundtrip::<core::v1::ConfigMap>(value),
        ("", "Secret") => roundtrip::<core::v1::Secret>(value),
        ("", "Event") => roundtrip::<core::v1::Event>(value),
        ("", "ServiceAccount") => roundtrip::<core::v1::ServiceAccount>(value),
        ("", "Binding") => roundtrip::<core::v1::Binding>(value),
        ("apps", "Deployment") => roundtrip::<apps::v1::Deployment>(value),
        ("apps", "ReplicaSet") => roundtrip::<apps::v1::ReplicaSet>(value),
        ("discovery.k8s.io", "EndpointSlice") => roundtrip::<discovery::v1::EndpointSlice>(value),
        ("events.k8s.io", "Event") => roundtrip::<events::v1::Event>(value),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::v1::Lease>(value),
        _ => Ok(value),
    }
}

/// Kinds whose `metadata.generation` tracks spec changes.
pub fn has_generation(kind: &str) -> bool {
    matches!(kind, "Pod" | "Deployment" | "ReplicaSet")
}

/// Kinds whose status is written only through the `status` subresource.
pub fn has_status_subresource(res: &Resource) -> bool {
    res.has_subresource("status")
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` plus five random characters, as upstream.
pub fn generate_name(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let prefix: String = prefix.chars().take(58).collect();
    let suffix: String = (0..5)
        .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// A pod's QoS class from its containers' requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            spec.get("initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        let relevant = |m: Option<&serde_json::Map<String, Value>>, k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        for r in ["cpu", "memory"] {
            let req = relevant(requests, r);
            let lim = relevant(limits, r);
            if req.is_some() || lim.is_some() {
                any = true;
            }
            match (&req, &lim) {
                (_, None) => guaranteed = false,
                (Some(q), Some(l)) if q != l => guaranteed = false,
                _ => {}
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Prepares a new object's metadata: name (from generateName), namespace, uid,
/// creationTimestamp, generation; drops what a client may not set.
pub fn prepare_create(res: &Resource, obj: &mut Value, namespace: Option<&str>) {
    let meta = obj
        .as_object_mut()
        .map(|m| m.entry("metadata").or_insert_with(|| json!({})));
    let Some(meta) = meta.and_then(Value::as_object_mut) else {
        return;
    };
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        if let Some(prefix) = meta.get("generateName").and_then(Value::as_str) {
            let name = generate_name(prefix);
            meta.insert("name".into(), json!(name));
        }
    }
    match namespace {
        Some(ns) if res.namespaced() => {
            meta.insert("namespace".into(), json!(ns));
        }
        _ => {
            meta.remove("namespace");
        }
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if has_generation(res.kind) {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if res.kind == "Secret" {
        if let Some(m) = obj.as_object_mut() {
            fold_string_data(m);
        }
    }
}

/// Resets the status a creating client sent, where upstream resets it.
pub fn reset_status(res: &Resource, obj: &mut Value) {
    let Some(obj_map) = obj.as_object_mut() else {
        return;
    };
    match res.kind {
        "Pod" => {
            let qos = obj_map.get("spec").map(qos_class).unwrap_or("BestEffort");
            obj_map.insert(
                "status".into(),
                json!({ "phase": "Pending", "qosClass": qos }),
            );
        }
        "Deployment" | "ReplicaSet" => {
            obj_map.insert("status".into(), json!({}));
        }
        "Namespace" => {
            obj_map.insert("status".into(), json!({ "phase": "Active" }));
        }
        _ => {}
    }
}

/// A secret's `stringData` is written into `data` (base64) and never stored.
pub fn fold_string_data(secret: &mut serde_json::Map<String, Value>) {
    use base64::Engine;
    let Some(Value::Object(string_data)) = secret.remove("stringData") else {
        return;
    };
    let data = secret.entry("data").or_insert_with(|| json!({}));
    if let Some(data) = data.as_object_mut() {
        for (k, v) in string_data {
            if let Some(s) = v.as_str() {
                let enc = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                data.insert(k, json!(enc));
            }
        }
    }
}

/// The name in `metadata.name` ("" when missing).
pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Kind and apiVersion from the URL when a body omits them; a mismatch is an error.
pub fn ensure_type(res: &Resource, obj: &mut Value, expected_kind: &str) -> Result<(), String> {
    let api_version = res.api_version();
    let Some(map) = obj.as_object_mut() else {
        return Err("the object must be a JSON object".into());
    };
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            ))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(expected_kind));
        }
        Some(k) if k == expected_kind => {}
        Some(k) => {
            return Err(format!(
                "the kind in the data ({k}) does not match the expected kind ({expected_kind})"
            ))
        }
    }
    if !map.get("metadata").is_some_and(Value::is_object) {
        map.insert("metadata".into(), json!({}));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_drops_unknown_fields_and_rejects_wrong_types() {
        let pods = api::resources::find("", "v1", "pods").unwrap();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": "i", "bogus": 1}]}});
        let out = typed_roundtrip(pods, pod).unwrap();
        assert!(out["spec"]["containers"][0].get("bogus").is_none());
        let bad = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": "nope"}});
        assert!(typed_roundtrip(pods, bad).is_err());
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn create_metadata() {
        let cms = api::resources::find("", "v1", "configmaps").unwrap();
        let mut o = json!({"metadata": {"generateName": "x-", "resourceVersion": "5"}});
        prepare_create(cms, &mut o, Some("default"));
        let name = name_of(&o);
        assert!(name.starts_with("x-") && name.len() == 7);
        assert_eq!(o["metadata"]["namespace"], "default");
        assert!(o["metadata"].get("resourceVersion").is_none());
        assert!(o["metadata"]["uid"].as_str().unwrap().len() == 36);
    }

    #[test]
    fn string_data_is_folded() {
        let mut s = json!({"stringData": {"k": "v"}})
            .as_object()
            .unwrap()
            .clone();
        fold_string_data(&mut s);
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
    }
}
