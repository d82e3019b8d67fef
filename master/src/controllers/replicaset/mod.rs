//! The ReplicaSet controller, as upstream's: keeps `spec.replicas` active pods
//! matching each ReplicaSet's selector. It creates pods from the template in
//! slow-start batches (1, 2, 4, …), deletes the least useful pods first, adopts
//! matching orphans and releases owned pods that stopped matching, and writes the
//! status. Expectations keep it from acting twice on pods the informer has not
//! shown yet. Deployments (which own ReplicaSets) are another controller's.

pub mod expectations;
pub mod pods;
pub mod status;

use super::informer::{key as obj_key, Change};
use super::queue::{resync_every, run_workers, Queue};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, ApiError, Deletion, Kube, PatchType};
use crate::controllers::lite::{Meta, Pod};
use expectations::Expectations;
use futures_util::{stream, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as K8sSelector;
use pods::{controller_of, controller_ref, is_active, pod_from_template, pods_to_delete};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// At most this many pods are created or deleted in one sync (upstream's burst).
pub const BURST_REPLICAS: usize = 500;
/// At most this many creates or deletes in flight at once per sync.
const IN_FLIGHT: usize = 64;
const WORKERS: usize = 5;
const MANAGER: &str = "replicaset-controller";

/// Why a ReplicaSet sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    #[error("{action} for replica set {key}: {error}")]
    Api {
        key: String,
        action: &'static str,
        error: ApiError,
    },
    #[error("replica set {key} has no pod template")]
    NoTemplate { key: String },
}

fn api_err(key: &str, action: &'static str) -> impl FnOnce(ApiError) -> ReplicaSetError {
    let key = key.to_string();
    move |error| ReplicaSetError::Api { key, action, error }
}

/// A label selector of a workload as a matcher (an invalid one matches nothing).
pub fn selector_of(sel: &K8sSelector) -> api::selector::LabelSelector {
    serde_json::to_value(sel)
        .ok()
        .and_then(|v| api::selector::LabelSelector::from_k8s(&v).ok())
        .unwrap_or_else(api::selector::LabelSelector::nothing)
}

/// The reference to an object that events are about.
pub fn involved(api_version: &str, kind: &str, meta: &impl Meta) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": meta.name(), "namespace": meta.namespace(), "uid": meta.uid(),
            "resourceVersion": meta.resource_version()},
    })
}

/// A merge patch setting a pod's ownerReferences to those of `pod`, on the
/// precondition that the pod is still at the cached resourceVersion (as the
/// update of the whole pod was; a 409 retries with a fresh cache).
fn owner_refs_patch(pod: &Pod) -> Value {
    json!({"metadata": {
        "ownerReferences": pod.metadata.owner_references(),
        "resourceVersion": pod.metadata.resource_version,
    }})
}

fn meta_key(meta: &impl Meta) -> String {
    obj_key(meta.namespace(), meta.name().unwrap_or(""))
}

/// Pods by controller uid, and orphans by namespace: what a sync needs without
/// scanning every pod of the cluster.
#[derive(Default)]
struct PodIndex {
    owned: HashMap<String, HashMap<String, Arc<Pod>>>,
    orphans: HashMap<String, HashMap<String, Arc<Pod>>>,
}

impl PodIndex {
    fn slot(&mut self, pod: &Pod) -> &mut HashMap<String, Arc<Pod>> {
        match controller_of(&pod.metadata) {
            Some(r) => self.owned.entry(r.uid.clone()).or_default(),
            None => self
                .orphans
                .entry(pod.metadata.namespace().unwrap_or_default().to_string())
                .or_default(),
        }
    }

    fn insert(&mut self, pod: Arc<Pod>) {
        let k = meta_key(&pod.metadata);
        self.slot(&pod).insert(k, pod);
    }

    fn remove(&mut self, pod: &Pod) {
        let k = meta_key(&pod.metadata);
        let slot = self.slot(pod);
        slot.remove(&k);
        if slot.is_empty() {
            match controller_of(&pod.metadata) {
                Some(r) => {
                    let uid = r.uid.clone();
                    self.owned.remove(&uid);
                }
                None => {
                    self.orphans
                        .remove(pod.metadata.namespace.as_deref().unwrap_or(""));
                }
            }
        }
    }

    fn owned_by(&self, uid: &str) -> Vec<Arc<Pod>> {
        self.owned
            .get(uid)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn orphans_in(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.orphans
            .get(ns)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}

struct Controller {
    kube: Kube,
    informers: Arc<Informers>,
    queue: Arc<Queue>,
    expectations: Expectations,
    index: RwLock<PodIndex>,
}

/// Starts the ReplicaSet controller on the shared informers.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let ctl = Arc::new(Controller {
        kube: kube.with_manager(MANAGER),
        informers: informers.clone(),
        queue: Queue::new(),
        expectations: Expectations::default(),
        index: RwLock::new(PodIndex::default()),
    });
    let mut pod_rx = informers.pods.subscribe();
    // The replay of cached pods is in the channel already: index it before any
    // sync so a ReplicaSet never counts pods from a half-built index.
    while let Ok(change) = pod_rx.try_recv() {
        ctl.on_pod(change);
    }
    let mut rs_rx = informers.replicasets.subscribe();
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Some(change) = pod_rx.recv().await {
            c.on_pod(change);
        }
    });
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Some(change) = rs_rx.recv().await {
            let key = meta_key(&change.object().metadata);
            if let Change::Deleted(_) = change {
                c.expectations.forget(&key);
            }
            c.queue.add(key);
        }
    });
    let c = ctl.clone();
    resync_every(ctl.queue.clone(), options.resync, move || {
        c.informers
            .replicasets
            .list()
            .iter()
            .map(|rs| meta_key(&rs.metadata))
            .collect()
    });
    let queue = ctl.queue.clone();
    run_workers(queue, WORKERS, "replicaset", move |key| {
        let c = ctl.clone();
        async move { c.sync(&key).await }
    });
}

impl Controller {
    fn index(&self) -> std::sync::RwLockWriteGuard<'_, PodIndex> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of the ReplicaSet a controller reference names, if it exists.
    fn owner_key(&self, pod: &Pod) -> Option<String> {
        let r = controller_of(&pod.metadata)?;
        if r.kind != "ReplicaSet" {
            return None;
        }
        let key = obj_key(pod.metadata.namespace.as_deref(), &r.name);
        let rs = self.informers.replicasets.get(&key)?;
        (rs.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(key)
    }

    /// ReplicaSets of the pod's namespace whose selector matches it.
    fn matching(&self, pod: &Pod) -> Vec<String> {
        let labels = pods::labels(&pod.metadata);
        self.informers
            .replicasets
            .list()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == pod.metadata.namespace.as_deref())
            .filter(|rs| selector_of(&rs.spec.selector).matches(&labels))
            .map(|rs| meta_key(&rs.metadata))
            .collect()
    }

    fn pod_gone(&self, pod: &Pod) {
        if let Some(key) = self.owner_key(pod) {
            self.expectations
                .deletion_observed(&key, &meta_key(&pod.metadata));
            self.queue.add(key);
        }
    }

    fn on_pod(&self, change: Change<Pod>) {
        match change {
            Change::Added(pod) => {
                self.index().insert(pod.clone());
                if pod.metadata.deletion_timestamp.is_some() {
                    return self.pod_gone(&pod);
                }
                if controller_of(&pod.metadata).is_some() {
                    if let Some(key) = self.owner_key(&pod) {
                        self.expectations.creation_observed(&key);
                        self.queue.add(key);
                    }
                } else {
                    for key in self.matching(&pod) {
                        self.queue.add(key);
                    }
                }
            }
            Change::Updated { old, new } => {
                {
                    let mut idx = self.index();
                    idx.remove(&old);
                    idx.insert(new.clone());
                }
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    self.pod_gone(&new);
                    if labels_changed {
                        self.pod_gone(&old);
                    }
                    return;
                }
                let (old_ref, new_ref) =
                    (controller_of(&old.metadata), controller_of(&new.metadata));
                if old_ref != new_ref && old_ref.is_some() {
                    if let Some(key) = self.owner_key(&old) {
                        self.queue.add(key);
                    }
                }
                if new_ref.is_some() {
                    if let Some(key) = self.owner_key(&new) {
                        self.queue.add(key);
                    }
                } else if labels_changed || old_ref != new_ref {
                    for key in self.matching(&new) {
                        self.queue.add(key);
                    }
                }
            }
            Change::Deleted(pod) => {
                self.index().remove(&pod);
                self.pod_gone(&pod);
            }
        }
    }

    #[tracing::instrument(level = "debug", name = "sync_replicaset", skip_all, fields(rs = %key))]
    async fn sync(&self, key: &str) -> Result<(), ReplicaSetError> {
        let Some(rs) = self.informers.replicasets.get(key) else {
            self.expectations.forget(key);
            return Ok(());
        };
        let needs_sync = self.expectations.satisfied(key);
        let spec = &rs.spec;
        let selector = selector_of(&spec.selector);
        let ns = rs.metadata.namespace.clone().unwrap_or_default();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let (owned, orphans) = {
            let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
            (idx.owned_by(&uid), idx.orphans_in(&ns))
        };
        let pods = self.claim(key, &rs, &selector, owned, orphans).await?;
        let mut manage_err = None;
        if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            manage_err = self.manage(key, &rs, &pods).await.err();
        }
        let message = manage_err.as_ref().map(|e| match e {
            ReplicaSetError::Api { error, .. } => error.message.clone(),
            other => other.to_string(),
        });
        let now = status::now_seconds();
        let new_status = status::calculate(&rs, &pods, message.as_deref(), now);
        self.write_status(key, &rs, new_status.clone()).await?;
        let min_ready = spec.min_ready_seconds.unwrap_or(0);
        if manage_err.is_none()
            && min_ready > 0
            && new_status.ready_replicas > new_status.available_replicas
        {
            self.queue.add_after(
                key.to_string(),
                Duration::from_secs(min_ready as u64) + Duration::from_millis(100),
            );
        }
        manage_err.map_or(Ok(()), Err)
    }

    /// Patches a cached pod (owner references on adoption and release).
    async fn patch_pod(&self, pod: &Pod, body: &Value) -> Result<Value, ApiError> {
        let m = &pod.metadata;
        self.kube
            .patch(
                crud_resource("", "pods"),
                m.namespace.as_deref(),
                m.name.as_deref().unwrap_or(""),
                PatchType::Merge,
                body,
                None,
            )
            .await
    }

    /// Adopts matching orphans, releases owned pods that stopped matching, and
    /// returns the active pods this ReplicaSet owns afterwards.
    async fn claim(
        &self,
        key: &str,
        rs: &ReplicaSet,
        selector: &api::selector::LabelSelector,
        owned: Vec<Arc<Pod>>,
        orphans: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, ReplicaSetError> {
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let mut claimed = Vec::with_capacity(owned.len());
        for pod in owned.into_iter().filter(|p| is_active(p)) {
            if selector.matches(&pods::labels(&pod.metadata)) {
                claimed.push(pod);
                continue;
            }
            if deleting {
                // Not ours any more, but a ReplicaSet being deleted releases nothing.
                continue;
            }
            let mut released = (*pod).clone();
            if let Some(refs) = released.metadata.owner_references.as_mut() {
                Arc::make_mut(refs).retain(|r| r.uid != uid);
            }
            let body = owner_refs_patch(&released);
            match self.patch_pod(&released, &body).await {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(api_err(key, "releasing a pod")(e)),
            }
        }
        if deleting {
            return Ok(claimed);
        }
        let candidates: Vec<Arc<Pod>> = orphans
            .into_iter()
            .filter(|p| is_active(p) && selector.matches(&pods::labels(&p.metadata)))
            .collect();
        if candidates.is_empty() {
            return Ok(claimed);
        }
        // Adopt only if the ReplicaSet, read afresh, is still this one and alive.
        let fresh = self
            .kube
            .get(
                crud_resource("apps", "replicasets"),
                rs.metadata.namespace.as_deref(),
                rs.metadata.name.as_deref().unwrap_or(""),
            )
            .await
            .map_err(api_err(key, "reading"))?;
        let alive = fresh.is_some_and(|f| {
            f.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid.as_str())
                && f.pointer("/metadata/deletionTimestamp").is_none()
        });
        if !alive {
            return Ok(claimed);
        }
        let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
        for pod in candidates {
            let mut adopted = (*pod).clone();
            let mut refs = adopted.metadata.owner_references().to_vec();
            refs.push(owner.clone());
            adopted.metadata.owner_references = Some(Arc::new(refs));
            let body = owner_refs_patch(&adopted);
            match self.patch_pod(&adopted, &body).await {
                Ok(_) => claimed.push(Arc::new(adopted)),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(api_err(key, "adopting a pod")(e)),
            }
        }
        Ok(claimed)
    }

    /// Active pods of this ReplicaSet and of its siblings (same controller).
    fn related(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let idx = self.index.read().unwrap_or_else(|e| e.into_inner());
        let Some(owner) = controller_of(&rs.metadata) else {
            return idx.owned_by(rs.metadata.uid.as_deref().unwrap_or(""));
        };
        self.informers
            .replicasets
            .list()
            .into_iter()
            .filter(|s| s.metadata.namespace == rs.metadata.namespace)
            .filter(|s| controller_of(&s.metadata).is_some_and(|r| r.uid == owner.uid))
            .flat_map(|s| idx.owned_by(s.metadata.uid.as_deref().unwrap_or("")))
            .collect()
    }

    /// Creates or deletes pods so `pods` becomes `spec.replicas` long.
    async fn manage(
        &self,
        key: &str,
        rs: &ReplicaSet,
        pods: &[Arc<Pod>],
    ) -> Result<(), ReplicaSetError> {
        let spec = &rs.spec;
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        let me = involved("apps/v1", "ReplicaSet", &rs.metadata);
        let pods_res = crud_resource("", "pods");
        if pods.len() < want {
            let n = (want - pods.len()).min(BURST_REPLICAS);
            let template = spec
                .template
                .as_ref()
                .ok_or_else(|| ReplicaSetError::NoTemplate {
                    key: key.to_string(),
                })?;
            self.expectations.expect(key, n as i64, []);
            let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
            let body = pod_from_template(template, &rs.metadata, &owner);
            let ns = rs.metadata.namespace.as_deref();
            let (created, err) = slow_start(n, || async {
                match self.kube.create(pods_res, ns, body.clone()).await {
                    Ok(pod) => {
                        let name = pod.pointer("/metadata/name").and_then(Value::as_str);
                        let msg = format!("Created pod: {}", name.unwrap_or(""));
                        self.kube
                            .event(&me, "Normal", "SuccessfulCreate", &msg)
                            .await;
                        Ok(())
                    }
                    Err(e) => {
                        if e.message.contains("because it is being terminated") {
                            return Err(None);
                        }
                        let msg = format!("Error creating: {}", e.message);
                        self.kube.event(&me, "Warning", "FailedCreate", &msg).await;
                        Err(Some(e))
                    }
                }
            })
            .await;
            for _ in created..n {
                self.expectations.creation_observed(key);
            }
            if let Some(e) = err {
                return Err(api_err(key, "creating pods")(e));
            }
        } else if pods.len() > want {
            let n = (pods.len() - want).min(BURST_REPLICAS);
            let victims = pods_to_delete(pods, &self.related(rs), n);
            self.expectations
                .expect(key, 0, victims.iter().map(|p| meta_key(&p.metadata)));
            let results: Vec<Result<(), ApiError>> = stream::iter(victims)
                .map(|pod| {
                    let me = &me;
                    async move {
                        let name = pod.metadata.name.as_deref().unwrap_or("");
                        let opts = Deletion {
                            uid: pod.metadata.uid.clone(),
                            ..Default::default()
                        };
                        let ns = pod.metadata.namespace.as_deref();
                        match self.kube.delete(pods_res, ns, name, opts).await {
                            Ok(()) => {
                                let msg = format!("Deleted pod: {name}");
                                self.kube
                                    .event(me, "Normal", "SuccessfulDelete", &msg)
                                    .await;
                                Ok(())
                            }
                            Err(e) => {
                                self.expectations
                                    .deletion_observed(key, &meta_key(&pod.metadata));
                                if e.code == 404 {
                                    return Ok(());
                                }
                                let msg = format!("Error deleting: {}", e.message);
                                self.kube.event(me, "Warning", "FailedDelete", &msg).await;
                                Err(e)
                            }
                        }
                    }
                })
                .buffer_unordered(IN_FLIGHT)
                .collect()
                .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                return Err(api_err(key, "deleting pods")(e));
            }
        }
        Ok(())
    }

    async fn write_status(
        &self,
        key: &str,
        rs: &ReplicaSet,
        status: ReplicaSetStatus,
    ) -> Result<(), ReplicaSetError> {
        if rs.status.as_ref() == Some(&status) {
            return Ok(());
        }
        let res = crud_resource("apps", "replicasets");
        let mut obj = rs.clone();
        obj.status = Some(status.clone());
        let body = serde_json::to_value(&obj).unwrap_or_default();
        match self.kube.update_status(res, body).await {
            Ok(_) => Ok(()),
            Err(e) if e.code == 404 => Ok(()),
            Err(e) if e.code == 409 => {
                // Someone else wrote meanwhile: the status is ours alone, so write
                // it over the fresh object once.
                let fresh = self
                    .kube
                    .get(
                        res,
                        rs.metadata.namespace.as_deref(),
                        rs.metadata.name.as_deref().unwrap_or(""),
                    )
                    .await
                    .map_err(api_err(key, "reading"))?;
                let Some(mut fresh) = fresh else {
                    return Ok(());
                };
                let mut status = serde_json::to_value(&status).unwrap_or_default();
                status["observedGeneration"] = fresh
                    .pointer("/metadata/generation")
                    .cloned()
                    .unwrap_or(Value::Null);
                fresh["status"] = status;
                self.kube
                    .update_status(res, fresh)
                    .await
                    .map(|_| ())
                    .map_err(api_err(key, "updating status"))
            }
            Err(e) => Err(api_err(key, "updating status")(e)),
        }
    }
}

/// Runs `count` calls of `f` in batches of 1, 2, 4, … (at most `IN_FLIGHT` at a
/// time), stopping after the first batch with a failure, as upstream's
/// `slowStartBatch`. Returns how many succeeded and the first error. An
/// `Err(None)` is a failure without an error to report.
async fn slow_start<F, Fut>(count: usize, f: F) -> (usize, Option<ApiError>)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), Option<ApiError>>>,
{
    let mut remaining = count;
    let mut batch = remaining.min(1);
    let mut ok = 0;
    while batch > 0 {
        let results: Vec<_> = stream::iter(0..batch)
            .map(|_| f())
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut failed = false;
        let mut first = None;
        for r in results {
            match r {
                Ok(()) => ok += 1,
                Err(e) => {
                    failed = true;
                    first = first.or(e);
                }
            }
        }
        if failed {
            return (ok, first);
        }
        remaining -= batch;
        batch = (batch * 2).min(remaining);
    }
    (ok, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn slow_start_doubles_batches_and_stops_at_the_first_failing_batch() {
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(10, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .await;
        assert_eq!((ok, err.is_none()), (10, true));
        // Batches 1, 2, 4 succeed; the 4th call of the batch of 4 (call 7) fails.
        let calls = AtomicUsize::new(0);
        let (ok, err) = slow_start(20, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n == 6 {
                Err(Some(ApiError::new(403, "Forbidden", "no")))
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(ok, 6);
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert!(err.is_some());
    }
}
