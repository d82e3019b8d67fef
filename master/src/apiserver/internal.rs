//! `Kube`: the in-process client that the master's controllers and scheduler use.
//! Every call goes through the same code as an HTTP request — defaults, validation,
//! managed fields, optimistic concurrency, graceful deletion — without TLS, HTTP or
//! JSON parsing of the request. Objects are JSON values; callers with typed objects
//! convert with `serde_json`.

use super::crud::{parse_value, store_error, DeleteOptions, ListOptions, PatchType};
use super::objects::now_rfc3339;
use super::status::ApiError;
use super::Server;
use crate::store::{Revision, StoreError, Watcher};
use api::resources::Resource;
use serde_json::{json, Value};
use std::sync::Arc;

/// Where `Kube::claim` keeps its claims.
const CLAIMS: &str = "/bosun/claims/";

/// A handle on the API for one in-process writer (its field manager name).
#[derive(Clone)]
pub struct Kube {
    server: Arc<Server>,
    manager: Arc<str>,
}

fn ns_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Kube {
    pub fn new(server: Arc<Server>, manager: &str) -> Self {
        Self {
            server,
            manager: manager.into(),
        }
    }

    /// The same API as another field manager.
    pub fn with_manager(&self, manager: &str) -> Self {
        Self::new(self.server.clone(), manager)
    }

    pub fn manager(&self) -> &str {
        &self.manager
    }

    pub async fn get(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let key = res.key(namespace, name);
        match self.server.store.get(&key).await {
            Ok(Some(kv)) => Ok(Some(parse_value(&kv)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(store_error(res, name, e)),
        }
    }

    /// Every object of `res` (in `namespace`, or all) and the revision the list is
    /// consistent with.
    pub async fn list(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
    ) -> Result<(Vec<Value>, Revision), ApiError> {
        let opts = ListOptions {
            labels: None,
            fields: None,
            limit: 0,
            continue_after: None,
        };
        let listed = self
            .server
            .list_objects(res, namespace, &opts, true)
            .await?;
        Ok((listed.parsed.unwrap_or_default(), listed.revision))
    }

    /// Every stored object of `res`, as the store's bytes, and the revision.
    pub async fn list_raw(
        &self,
        res: &'static Resource,
    ) -> Result<(Vec<bytes::Bytes>, Revision), ApiError> {
        let opts = ListOptions {
            labels: None,
            fields: None,
            limit: 0,
            continue_after: None,
        };
        let listed = self.server.list_objects(res, None, &opts, false).await?;
        Ok((listed.items, listed.revision))
    }

    /// Store events of `res` after revision `after` (see `Store::watch`).
    pub fn watch(&self, res: &'static Resource, after: Revision) -> Result<Watcher, ApiError> {
        self.server
            .store
            .watch(&res.key_prefix(), after)
            .map_err(|e| store_error(res, "", e))
    }

    pub async fn create(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let bytes = self
            .server
            .create_object(res, namespace, obj, Some(&self.manager))
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Replaces an object. Its `metadata.resourceVersion` must be the stored one
    /// (409 Conflict otherwise); status changes are ignored (see `update_status`).
    pub async fn update(&self, res: &'static Resource, obj: Value) -> Result<Value, ApiError> {
        self.write(res, obj, None).await
    }

    /// Replaces an object's status only, with the same concurrency rule.
    pub async fn update_status(
        &self,
        res: &'static Resource,
        obj: Value,
    ) -> Result<Value, ApiError> {
        self.write(res, obj, Some("status")).await
    }

    async fn write(
        &self,
        res: &'static Resource,
        obj: Value,
        sub: Option<&str>,
    ) -> Result<Value, ApiError> {
        let name = name_of(&obj).to_string();
        let ns = ns_of(&obj).map(str::to_string);
        let key = res.key(ns.as_deref(), &name);
        let kv = self
            .server
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(res, &name, e))?
            .ok_or_else(|| ApiError::not_found(res, &name))?;
        if let Some(rv) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if rv != kv.mod_revision.to_string() {
                return Err(ApiError::conflict(res, &name));
            }
        }
        let old = parse_value(&kv)?;
        self.server
            .write_update(
                res,
                &key,
                &name,
                obj,
                &old,
                kv.mod_revision,
                sub,
                &self.manager,
                true,
            )
            .await
    }

    /// Patches an object (or its status, with `sub = Some("status")`).
    pub async fn patch(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        ptype: PatchType,
        patch: &Value,
        sub: Option<&str>,
    ) -> Result<Value, ApiError> {
        let (_, bytes) = self
            .server
            .patch_value(res, namespace, name, ptype, patch, sub, &self.manager)
            .await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::internal(e.to_string()))
    }

    /// Deletes an object as `DELETE` would (graceful for bound pods, finalizers,
    /// propagation). `uid`, when given, must match (a precondition).
    pub async fn delete(
        &self,
        res: &'static Resource,
        namespace: Option<&str>,
        name: &str,
        opts: Deletion,
    ) -> Result<(), ApiError> {
        let key = res.key(namespace, name);
        let options = DeleteOptions {
            grace_period: opts.grace_period,
            propagation: opts.propagation.map(str::to_string),
            precondition_uid: opts.uid,
            precondition_rv: None,
        };
        for _ in 0..8 {
            let (old, rev) = self.server.get_current(res, &key, name).await?;
            match self
                .server
                .delete_one(res, &key, name, old, rev, &options)
                .await
            {
                Err(e) if super::crud::is_lost_race(&e) => continue,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// Claims the allocation `name` of `kind` (e.g. `podcidrs`, `10.244.3.0/24`) for
    /// `owner`, durably, under `/bosun/claims/<kind>/` as the API server claims
    /// cluster IPs. False when it is claimed already (by anyone).
    pub async fn claim(&self, kind: &str, name: &str, owner: &str) -> Result<bool, ApiError> {
        let key = format!("{CLAIMS}{kind}/{name}");
        let value = json!({"metadata": {}, "owner": owner});
        match self.server.store.create(&key, value).await {
            Ok(_) => Ok(true),
            Err(StoreError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// Releases the claim of `name` of `kind`; releasing what is not claimed is no error.
    pub async fn release(&self, kind: &str, name: &str) -> Result<(), ApiError> {
        match self
            .server
            .store
            .delete(&format!("{CLAIMS}{kind}/{name}"), None)
            .await
        {
            Ok(_) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(ApiError::internal(e.to_string())),
        }
    }

    /// Every claim of `kind`: `(name, owner)`.
    pub async fn claims(&self, kind: &str) -> Result<Vec<(String, String)>, ApiError> {
        let prefix = format!("{CLAIMS}{kind}/");
        let page = self
            .server
            .store
            .list(&prefix, None, 0)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(page
            .items
            .iter()
            .map(|kv| {
                let owner = serde_json::from_slice::<Value>(&kv.value)
                    .ok()
                    .and_then(|v| v.get("owner").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                (kv.key[prefix.len()..].to_string(), owner)
            })
            .collect())
    }

    /// Binds a pod to a node, as the scheduler does through `pods/binding`.
    pub async fn bind(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        node: &str,
    ) -> Result<(), ApiError> {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": {"name": pod, "namespace": namespace, "uid": uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let body = serde_json::to_vec(&binding).unwrap_or_default();
        self.server
            .bind(namespace, pod, body.into(), Some("application/json"))
            .await
            .map(|_| ())
    }

    /// Records a core/v1 Event about `involved` (a stored object), as
    /// `kubectl describe` shows them. Failures are logged, not returned: events are
    /// best effort, as upstream.
    pub async fn event(&self, involved: &Value, type_: &str, reason: &str, message: &str) {
        let events = super::crud_resource("", "events");
        let ns = ns_of(involved).unwrap_or("default").to_string();
        let name = name_of(involved);
        let now = now_rfc3339();
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{}.{:x}", name, rand::random::<u64>()), "namespace": ns},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": name,
                "namespace": ns_of(involved),
                "uid": involved.pointer("/metadata/uid"),
                "resourceVersion": involved.pointer("/metadata/resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": &*self.manager},
            "reportingComponent": &*self.manager,
            "reportingInstance": &*self.manager,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        if let Err(e) = self
            .server
            .create_object(events, Some(&ns), ev, Some(&self.manager))
            .await
        {
            tracing::debug!(error = %e, reason, "recording an event");
        }
    }
}

/// How `Kube::delete` deletes.
#[derive(Clone, Debug, Default)]
pub struct Deletion {
    pub grace_period: Option<i64>,
    pub propagation: Option<&'static str>,
    pub uid: Option<String>,
}
