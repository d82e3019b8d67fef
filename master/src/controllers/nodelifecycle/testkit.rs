//! Helpers for in-process controller tests: a real API server on a SQLite store in
//! a temp dir (no HTTP), polling with a deadline, and what a node agent writes
//! (Node, Lease renewals, Ready status).

use crate::apiserver::{crud_resource, Kube, PatchType, Server};
use crate::controllers::Options;
use crate::store::SqliteStore;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub struct TestMaster {
    pub store: Arc<SqliteStore>,
    pub server: Arc<Server>,
    pub kube: Kube,
}

impl Drop for TestMaster {
    fn drop(&mut self) {
        self.store.close();
    }
}

/// A bootstrapped API server on the store in `dir` (kept across "restarts").
pub async fn master(dir: &Path) -> TestMaster {
    let (store, server) = crate::testkit::server_on(dir).await;
    let kube = Kube::new(server.clone(), "test");
    TestMaster {
        store,
        server,
        kube,
    }
}

/// Controller options with a short grace period.
pub fn options(grace: Duration) -> Options {
    Options {
        node_monitor_grace_period: grace,
        ..Options::default()
    }
}

/// Polls `f` every 50 ms until it gives a value; panics after `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn nodes() -> &'static api::resources::Resource {
    crud_resource("", "nodes")
}

pub fn pods() -> &'static api::resources::Resource {
    crud_resource("", "pods")
}

pub async fn create_node(kube: &Kube, name: &str) -> Value {
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    kube.create(nodes(), None, node).await.unwrap()
}

pub async fn get_node(kube: &Kube, name: &str) -> Option<Value> {
    kube.get(nodes(), None, name).await.unwrap()
}

fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Renews (or creates) the node's Lease, as its agent does.
pub async fn renew_lease(kube: &Kube, node: &str) {
    let leases = crud_resource("coordination.k8s.io", "leases");
    let spec =
        json!({"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro_now()});
    let patch = json!({"spec": spec});
    match kube
        .patch(
            leases,
            Some("kube-node-lease"),
            node,
            PatchType::Merge,
            &patch,
            None,
        )
        .await
    {
        Ok(_) => {}
        Err(e) if e.code == 404 => {
            let lease = json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": node, "namespace": "kube-node-lease"},
                "spec": spec,
            });
            kube.create(leases, Some("kube-node-lease"), lease)
                .await
                .unwrap();
        }
        Err(e) => panic!("renewing lease: {e}"),
    }
}

/// Posts the node's Ready condition with a fresh heartbeat, as its agent does.
pub async fn post_ready(kube: &Kube, node: &str, status: &str) {
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let patch = json!({"status": {"conditions": [{
        "type": "Ready", "status": status, "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now, "lastTransitionTime": now,
    }]}});
    kube.patch(
        nodes(),
        None,
        node,
        PatchType::Merge,
        &patch,
        Some("status"),
    )
    .await
    .unwrap();
}

/// The node's condition `type_`'s status.
pub fn condition<'a>(node: &'a Value, type_: &str) -> Option<&'a Value> {
    node.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// The node's taint with `key`, if any.
pub fn taint<'a>(node: &'a Value, key: &str) -> Option<&'a Value> {
    node.pointer("/spec/taints")?
        .as_array()?
        .iter()
        .find(|t| t["key"] == key)
}

/// Creates a pod bound to `node` (Running) with `tolerations` and a grace period.
pub async fn bound_pod(kube: &Kube, name: &str, node: &str, tolerations: Value, grace: i64) {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": grace,
            "tolerations": tolerations,
            "containers": [{"name": "c", "image": "busybox"}],
        },
    });
    kube.create(pods(), Some("default"), pod).await.unwrap();
    set_phase(kube, name, "Running").await;
}

pub async fn set_phase(kube: &Kube, name: &str, phase: &str) {
    let patch = json!({"status": {"phase": phase}});
    kube.patch(
        pods(),
        Some("default"),
        name,
        PatchType::Merge,
        &patch,
        Some("status"),
    )
    .await
    .unwrap();
}

pub async fn get_pod(kube: &Kube, name: &str) -> Option<Value> {
    kube.get(pods(), Some("default"), name).await.unwrap()
}
