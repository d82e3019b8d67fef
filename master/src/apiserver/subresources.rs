//! Subresources other than `status`: `scale` (an autoscaling/v1 Scale view of a
//! Deployment or ReplicaSet), `binding` (the scheduler's write of a pod's node), and
//! the pod `log` and `exec` entry points that the agent issue routes to agents.

use super::crud::{parse_value, store_error};
use super::http::{json_response, parse_object, Body};
use super::objects::now_rfc3339;
use super::route::{Query, Target};
use super::status::ApiError;
use super::Server;
use crate::patch;
use bytes::Bytes;
use http::{Method, Response};
use serde_json::{json, Value};

const MAX_RETRIES: usize = 8;

fn selector_string(obj: &Value) -> String {
    obj.pointer("/spec/selector")
        .map(|s| match api::selector::LabelSelector::from_k8s(s) {
            Ok(sel) => sel.to_string(),
            Err(_) => String::new(),
        })
        .unwrap_or_default()
}

/// The Scale view of a Deployment or ReplicaSet.
pub fn scale_of(obj: &Value) -> Value {
    let meta = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj),
        },
    })
}

impl Server {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn scale(
        &self,
        t: &Target,
        name: &str,
        method: &Method,
        q: &Query,
        body: Bytes,
        content_type: Option<&str>,
        user_agent: &str,
    ) -> Result<Response<Body>, ApiError> {
        let key = self.key(t, name);
        if method == Method::GET {
            let (obj, _) = self.get_current(t.res, &key, name).await?;
            return Ok(json_response(200, &scale_of(&obj)));
        }
        let media = super::http::media_type(content_type);
        let doc = parse_object(
            &body,
            Some(if media.is_empty() {
                "application/json"
            } else {
                &media
            }),
        )?;
        let manager = q
            .non_empty("fieldManager")
            .map(str::to_string)
            .unwrap_or_else(|| {
                user_agent
                    .split('/')
                    .next()
                    .unwrap_or("unknown")
                    .to_string()
            });
        for _ in 0..MAX_RETRIES {
            let (obj, rev) = self.get_current(t.res, &key, name).await?;
            let current = scale_of(&obj);
            let wanted = if method == Method::PUT {
                doc.clone()
            } else {
                match media.as_str() {
                    "application/json-patch+json" => patch::json::apply(&current, &doc)
                        .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
                    "application/strategic-merge-patch+json" => {
                        patch::strategic::apply(&current, &doc, "Scale")
                            .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?
                    }
                    "application/merge-patch+json" | "application/apply-patch+yaml" => {
                        let mut v = current.clone();
                        patch::merge::apply(&mut v, &doc);
                        v
                    }
                    other => {
                        return Err(ApiError::unsupported_media(
                            other,
                            &[
                                "application/merge-patch+json",
                                "application/json-patch+json",
                                "application/strategic-merge-patch+json",
                            ],
                        ))
                    }
                }
            };
            if let Some(rv) = wanted
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
            {
                if !rv.is_empty() && rv != rev.to_string() {
                    return Err(ApiError::conflict(t.res, name));
                }
            }
            let replicas = wanted
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if replicas < 0 {
                return Err(ApiError::invalid(
                    t.res,
                    name,
                    vec![super::status::FieldCause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: {replicas}: must be greater than or equal to 0"
                        ),
                        field: "spec.replicas".into(),
                    }],
                ));
            }
            let mut updated = obj.clone();
            updated["spec"]["replicas"] = json!(replicas);
            match self
                .write_update(t.res, &key, name, updated, &obj, rev, None, &manager, true)
                .await
            {
                Err(e) if super::crud::is_lost_race(&e) => continue,
                Err(e) => return Err(e),
                Ok(stored) => return Ok(json_response(200, &scale_of(&stored))),
            }
        }
        Err(ApiError::conflict(t.res, name))
    }

    /// Binds a pod to a node: sets `spec.nodeName` once and the PodScheduled condition.
    pub(super) async fn bind(
        &self,
        namespace: &str,
        pod_name: &str,
        body: Bytes,
        content_type: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let pods = super::crud_resource("", "pods");
        let binding = parse_object(&body, content_type)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| {
                ApiError::invalid(
                    super::crud_resource("", "bindings"),
                    pod_name,
                    vec![super::status::FieldCause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: "target.name".into(),
                    }],
                )
            })?
            .to_string();
        let key = pods.key(Some(namespace), pod_name);
        for _ in 0..MAX_RETRIES {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(pods, pod_name, e))?
                .ok_or_else(|| ApiError::not_found(pods, pod_name))?;
            let mut pod = parse_value(&kv)?;
            if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str) {
                if pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid) {
                    return Err(ApiError::conflict_msg(
                        pods,
                        pod_name,
                        "the pod's UID changed",
                    ));
                }
            }
            if pod.pointer("/metadata/deletionTimestamp").is_some() {
                return Err(ApiError::conflict_msg(
                    pods,
                    pod_name,
                    "pod is being deleted, cannot be assigned to a host",
                ));
            }
            if let Some(existing) = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                return Err(ApiError::conflict_msg(
                    pods,
                    pod_name,
                    &format!("pod {pod_name} is already assigned to node \"{existing}\""),
                ));
            }
            pod["spec"]["nodeName"] = json!(node);
            let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now_rfc3339()});
            let conds = pod["status"]
                .as_object_mut()
                .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
            if let Some(Value::Array(list)) = conds {
                list.retain(|c| c.get("type").and_then(Value::as_str) != Some("PodScheduled"));
                list.push(cond);
            }
            match self.store.update(&key, pod, Some(kv.mod_revision)).await {
                Ok(_) => {
                    return Ok(json_response(
                        201,
                        &json!({
                            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201
                        }),
                    ))
                }
                Err(crate::store::StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(store_error(pods, pod_name, e)),
            }
        }
        Err(ApiError::conflict(pods, pod_name))
    }

    /// `log` and `exec` need the pod's agent; until agents serve them, say so.
    pub(super) async fn pod_stream(
        &self,
        t: &Target,
        name: &str,
        what: &str,
    ) -> Result<Response<Body>, ApiError> {
        let key = self.key(t, name);
        let (pod, _) = self.get_current(t.res, &key, name).await?;
        let container = pod
            .pointer("/spec/containers/0/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let node = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::bad_request(format!(
                "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
            )));
        }
        Err(ApiError::unavailable(format!(
            "pod {what} is served by the agent on node \"{node}\", and this master does not route {what} to agents yet"
        )))
    }
}
