//! One hollow node's life toward the master: it registers its Node (or takes over
//! one of the same name), renews its Lease in `kube-node-lease` every 10 s and
//! refreshes its status conditions every 60 s. The renewals of all nodes of the
//! process are spread evenly over each period instead of firing together.
//!
//! The objects ([`node_object`], [`node_status`], [`lease_object`]) and the
//! timing ([`spread`], [`next_slot`]) are pure; [`run_node`] is the loop that
//! sends them. Pods are not handled here but in [`super::pods`].

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{Instant, MissedTickBehavior};

use super::requests::{already_exists, backoff, not_found, Api, Attempts};
use super::{micro_time, rfc3339};

/// How often each node renews its Lease (upstream kubelet: 10 s).
pub const LEASE_PERIOD: Duration = Duration::from_secs(10);
/// `leaseDurationSeconds` of each Lease (upstream kubelet: 40).
pub const LEASE_DURATION_SECONDS: u32 = 40;
/// How often each node refreshes its conditions' heartbeat times.
pub const STATUS_PERIOD: Duration = Duration::from_secs(60);
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// What a hollow node says it runs.
pub const KUBELET_VERSION: &str = "v1.32.0-bosun-hollow";
/// The container runtime a hollow node reports.
pub const RUNTIME_VERSION: &str = "hollow://0";

/// The name and fake address of one hollow node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    /// Position among the process's nodes, `0..n`.
    pub index: usize,
    /// An address in `10.160.0.0/11` that is only a string in status: nothing
    /// ever connects to it.
    pub internal_ip: Ipv4Addr,
}

impl NodeIdentity {
    /// Node `index` of a process whose names start with `prefix`: `prefix-0007`.
    pub fn new(prefix: &str, index: usize) -> NodeIdentity {
        let base = u32::from(Ipv4Addr::new(10, 160, 0, 0));
        let offset = (index as u32 % ((1 << 21) - 2)) + 1;
        NodeIdentity {
            name: format!("{prefix}-{index:04}"),
            index,
            internal_ip: Ipv4Addr::from(base + offset),
        }
    }
}

/// The offset of node `index` of `n` within `period`: spaced evenly from zero.
pub fn spread(index: usize, n: usize, period: Duration) -> Duration {
    let n = n.max(1) as u128;
    let nanos = period.as_nanos() * (index as u128 % n) / n;
    Duration::from_nanos(nanos as u64)
}

/// The first time `epoch + offset + k * period` (k ≥ 0) that is not before `now`.
pub fn next_slot(epoch: Instant, offset: Duration, period: Duration, now: Instant) -> Instant {
    let first = epoch + offset;
    if now <= first || period.is_zero() {
        return first;
    }
    let since = (now - first).as_nanos();
    let p = period.as_nanos();
    let k = since.div_ceil(p);
    first + Duration::from_nanos((k * p) as u64)
}

/// The conditions of a healthy node, heartbeat `now`, in the state since `since`.
fn conditions(now: &str, since: &str) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": since,
        })
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The whole status of a hollow node: capacity, conditions, addresses, nodeInfo.
pub fn node_status(node: &NodeIdentity, now: &str, since: &str) -> Value {
    let resources = json!({
        "cpu": "4",
        "memory": "16393216Ki",
        "pods": "110",
        "ephemeral-storage": "102687672Ki",
        "hugepages-2Mi": "0",
    });
    let allocatable = json!({
        "cpu": "4",
        "memory": "16290816Ki",
        "pods": "110",
        "ephemeral-storage": "94636958008",
        "hugepages-2Mi": "0",
    });
    let id = format!("{:032x}", 0x0b05_u128 << 112 | node.index as u128);
    json!({
        "capacity": resources,
        "allocatable": allocatable,
        "conditions": conditions(now, since),
        "addresses": [
            {"type": "InternalIP", "address": node.internal_ip.to_string()},
            {"type": "Hostname", "address": node.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": {
            "machineID": id,
            "systemUUID": id,
            "bootID": id,
            "kernelVersion": "6.1.0-hollow",
            "osImage": "bosun hollow node",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        },
    })
}

/// The Node a hollow node registers.
pub fn node_object(node: &NodeIdentity, now: &str) -> Value {
    let status = node_status(node, now, now);
    let arch = status["nodeInfo"]["architecture"].clone();
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": {
                "kubernetes.io/hostname": node.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
                "type": "hollow",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": status,
    })
}

/// The spec fields of a renewal: holder, duration and `renewTime` (MicroTime).
pub fn lease_spec(node: &str, renew_time: &str) -> Value {
    json!({
        "holderIdentity": node,
        "leaseDurationSeconds": LEASE_DURATION_SECONDS,
        "renewTime": renew_time,
    })
}

/// The Lease of a node, owned by the Node (uid `node_uid`) so it goes with it.
pub fn lease_object(node: &str, node_uid: &str, renew_time: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{
                "apiVersion": "v1",
                "kind": "Node",
                "name": node,
                "uid": node_uid,
            }],
        },
        "spec": lease_spec(node, renew_time),
    })
}

/// What all node tasks of a process share.
pub struct Shared {
    pub api: Api,
    /// When the process started: the origin of every node's renewal slots.
    pub epoch: Instant,
    /// How many nodes the process runs.
    pub nodes: usize,
    /// How many have registered at least once.
    pub registered: AtomicUsize,
}

/// Registers the node, then renews its Lease and status until the task is
/// dropped. A node deleted by someone else is registered again.
pub async fn run_node(shared: Arc<Shared>, node: NodeIdentity) {
    let mut counted = false;
    loop {
        let (uid, since) = register(&shared.api, &node).await;
        if !counted {
            counted = true;
            let done = shared.registered.fetch_add(1, Ordering::SeqCst) + 1;
            if done == shared.nodes {
                super::progress(&format!(
                    "{done} nodes registered in {:.1}s",
                    shared.epoch.elapsed().as_secs_f64()
                ));
            }
        }
        heartbeat(&shared, &node, &uid, &since).await;
        tracing::warn!(node = %node.name, "node is gone from the master; registering it again");
    }
}

/// Creates the Node, or takes over an existing one by writing its status. Retries
/// until it works; returns the Node's uid and the conditions' transition time.
async fn register(api: &Api, node: &NodeIdentity) -> (String, String) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let now = rfc3339(jiff::Timestamp::now());
        let result = match api
            .create("/api/v1/nodes", &node_object(node, &now), Attempts(5))
            .await
        {
            Err(e) if already_exists(&e) => {
                let path = format!("/api/v1/nodes/{}/status", node.name);
                let patch = json!({"status": node_status(node, &now, &now)});
                api.merge_patch(&path, &patch, Attempts(5)).await
            }
            other => other,
        };
        match result {
            Ok(v) => {
                let uid = v
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return (uid.to_string(), now);
            }
            Err(e) => {
                tracing::warn!(node = %node.name, error = %crate::error_chain(&e), "registering the node failed");
                tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
            }
        }
    }
}

/// Renews the Lease every [`LEASE_PERIOD`] and the status every
/// [`STATUS_PERIOD`]; returns when the Node is found deleted.
async fn heartbeat(shared: &Shared, node: &NodeIdentity, uid: &str, since: &str) {
    let now = Instant::now();
    let lease_at = next_slot(
        shared.epoch,
        spread(node.index, shared.nodes, LEASE_PERIOD),
        LEASE_PERIOD,
        now,
    );
    let status_at = next_slot(
        shared.epoch,
        spread(node.index, shared.nodes, STATUS_PERIOD),
        STATUS_PERIOD,
        now + STATUS_PERIOD / 2,
    );
    let mut lease_tick = tokio::time::interval_at(lease_at, LEASE_PERIOD);
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut status_tick = tokio::time::interval_at(status_at, STATUS_PERIOD);
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{}",
        node.name
    );
    let status_path = format!("/api/v1/nodes/{}/status", node.name);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => renew_lease(&shared.api, &lease_path, &node.name, uid).await,
            _ = status_tick.tick() => {
                let now = rfc3339(jiff::Timestamp::now());
                let patch = json!({"status": {"conditions": conditions(&now, since)}});
                match shared.api.merge_patch(&status_path, &patch, Attempts(3)).await {
                    Ok(_) => {}
                    Err(e) if not_found(&e) => return,
                    Err(e) => tracing::warn!(node = %node.name, error = %crate::error_chain(&e), "node status update failed"),
                }
            }
        }
    }
}

/// One renewal: patch the Lease, create it when it does not exist yet. Shared
/// with the real agent ([`crate::node`]).
pub async fn renew_lease(api: &Api, path: &str, node: &str, uid: &str) {
    let now = micro_time(jiff::Timestamp::now());
    let patch = json!({"spec": lease_spec(node, &now)});
    let result = match api.merge_patch(path, &patch, Attempts(3)).await {
        Err(e) if not_found(&e) => {
            let collection =
                format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases");
            match api
                .create(&collection, &lease_object(node, uid, &now), Attempts(3))
                .await
            {
                Err(e) if already_exists(&e) => api.merge_patch(path, &patch, Attempts(3)).await,
                other => other,
            }
        }
        other => other,
    };
    if let Err(e) = result {
        tracing::warn!(node = %node, error = %crate::error_chain(&e), "lease renewal failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_follow_the_index() {
        let a = NodeIdentity::new("hollow", 7);
        assert_eq!(a.name, "hollow-0007");
        assert_eq!(a.internal_ip, Ipv4Addr::new(10, 160, 0, 8));
        let b = NodeIdentity::new("big", 12_345);
        assert_eq!(b.name, "big-12345");
        assert_eq!(b.internal_ip, Ipv4Addr::new(10, 160, 48, 58));
    }

    #[test]
    fn renewals_are_spread_evenly_over_the_period() {
        let p = Duration::from_secs(10);
        let offsets: Vec<_> = (0..1000).map(|i| spread(i, 1000, p)).collect();
        assert_eq!(offsets[0], Duration::ZERO);
        assert_eq!(offsets[500], Duration::from_secs(5));
        assert_eq!(offsets[999], Duration::from_millis(9_990));
        assert!(offsets
            .windows(2)
            .all(|w| w[1] - w[0] == Duration::from_millis(10)));
        assert_eq!(spread(0, 1, p), Duration::ZERO);
        assert_eq!(spread(3, 0, p), Duration::ZERO, "no division by zero");
    }

    #[test]
    fn the_next_slot_is_on_the_grid_and_not_in_the_past() {
        let epoch = Instant::now();
        let p = Duration::from_secs(10);
        let off = Duration::from_secs(3);
        assert_eq!(next_slot(epoch, off, p, epoch), epoch + off);
        assert_eq!(
            next_slot(epoch, off, p, epoch + Duration::from_secs(3)),
            epoch + off
        );
        assert_eq!(
            next_slot(epoch, off, p, epoch + Duration::from_millis(3_001)),
            epoch + Duration::from_secs(13)
        );
        assert_eq!(
            next_slot(epoch, off, p, epoch + Duration::from_secs(47)),
            epoch + Duration::from_secs(53)
        );
    }

    #[test]
    fn a_node_is_registered_ready_with_realistic_capacity() {
        let n = NodeIdentity::new("hollow", 1);
        let v = node_object(&n, "2026-11-26T16:00:00Z");
        assert_eq!(v["metadata"]["name"], "hollow-0001");
        assert_eq!(v["metadata"]["labels"]["type"], "hollow");
        assert_eq!(
            v["metadata"]["labels"]["kubernetes.io/hostname"],
            "hollow-0001"
        );
        assert_eq!(v["status"]["capacity"]["cpu"], "4");
        assert_eq!(v["status"]["allocatable"]["pods"], "110");
        assert_eq!(v["status"]["nodeInfo"]["kubeletVersion"], KUBELET_VERSION);
        assert_eq!(
            v["status"]["nodeInfo"]["containerRuntimeVersion"],
            "hollow://0"
        );
        let conds = v["status"]["conditions"].as_array().unwrap();
        let ready = conds.iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["reason"], "KubeletReady");
        assert_eq!(ready["lastHeartbeatTime"], "2026-11-26T16:00:00Z");
        for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            let c = conds.iter().find(|c| c["type"] == t).unwrap();
            assert_eq!(c["status"], "False", "{t}");
        }
        assert_eq!(v["status"]["addresses"][0]["address"], "10.160.0.2");
    }

    #[test]
    fn a_lease_is_owned_by_its_node() {
        let l = lease_object("hollow-0001", "u-1", "2026-11-26T16:00:00.000000Z");
        assert_eq!(l["metadata"]["namespace"], LEASE_NAMESPACE);
        assert_eq!(l["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(l["spec"]["holderIdentity"], "hollow-0001");
        assert_eq!(l["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(l["spec"]["renewTime"], "2026-11-26T16:00:00.000000Z");
    }
}
