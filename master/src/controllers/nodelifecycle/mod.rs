//! Node lifecycle, as kube-controller-manager's node lifecycle controller: a node
//! is healthy while its agent renews its Lease in `kube-node-lease` (or posts a
//! Ready heartbeat). After `node_monitor_grace_period` without either, its Ready
//! and pressure conditions become Unknown and it gets the
//! `node.kubernetes.io/unreachable:NoExecute` taint; a node whose agent reports
//! Ready=False gets `node.kubernetes.io/not-ready:NoExecute`; both go when the
//! agent reports Ready=True again. Every node is checked every monitor period
//! (5 s, less for short grace periods) and on each change of it or its Lease,
//! from the informers only.
//!
//! `eviction` is the taint eviction controller that acts on those taints.

pub mod eviction;
pub mod health;
pub mod taints;
#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use super::informer::{Change, Informer, Object as _};
use super::queue::{run_workers, Queue};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, ApiError, Kube};
use health::Probe;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where node agents keep their Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// How often every node is checked: upstream's `--node-monitor-period` (5 s), or
/// a quarter of a shorter grace period.
pub fn monitor_period(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

struct Lifecycle {
    kube: Kube,
    nodes: Arc<Informer<Node>>,
    leases: Arc<Informer<Lease>>,
    queue: Arc<Queue>,
    grace: Duration,
    probes: Mutex<HashMap<String, Probe>>,
}

/// Starts the node lifecycle and the taint eviction controllers.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    eviction::start(kube, informers, options);
    let lc = Arc::new(Lifecycle {
        kube: kube.with_manager("node-lifecycle-controller"),
        nodes: informers.nodes.clone(),
        leases: informers.leases.clone(),
        queue: Queue::new(),
        grace: options.node_monitor_grace_period,
        probes: Mutex::new(HashMap::new()),
    });
    let mut node_changes = lc.nodes.subscribe();
    let mut lease_changes = lc.leases.subscribe();
    let worker = lc.clone();
    run_workers(lc.queue.clone(), 2, "nodelifecycle", move |key| {
        let lc = worker.clone();
        async move { lc.sync(&key).await }
    });
    let ticker = lc.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(monitor_period(ticker.grace));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for n in ticker.nodes.list() {
                ticker.queue.add(n.cache_key());
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(c) = node_changes.recv() => {
                    if let Change::Deleted(n) = &c {
                        lc.forget(&n.cache_key());
                    } else {
                        lc.queue.add(c.object().cache_key());
                    }
                }
                Some(c) = lease_changes.recv() => {
                    let m = c.object().metadata.clone();
                    if m.namespace.as_deref() == Some(LEASE_NAMESPACE) {
                        if let Some(name) = m.name {
                            lc.queue.add(name);
                        }
                    }
                }
                else => return,
            }
        }
    });
}

impl Lifecycle {
    fn forget(&self, node: &str) {
        self.probes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(node);
    }

    async fn sync(&self, name: &str) -> Result<(), ApiError> {
        let Some(node) = self.nodes.get(name) else {
            self.forget(name);
            return Ok(());
        };
        let lease = self
            .leases
            .get(&super::informer::key(Some(LEASE_NAMESPACE), name));
        let renew = lease
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.renew_time.as_ref())
            .map(|t| t.0);
        let conditions = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let heartbeat = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        let now = Instant::now();
        let probe = {
            let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
            let p = health::observe(probes.get(name), renew, heartbeat, now);
            probes.insert(name.to_string(), p.clone());
            p
        };
        if health::is_silent(&probe, now, self.grace) {
            if let Some(conds) = health::silenced(&conditions, Timestamp::now()) {
                let mut obj = to_value(&node)?;
                obj["status"]["conditions"] = to_json(&conds)?;
                self.kube.update_status(nodes(), obj).await?;
                tracing::info!(node = name, "node stopped posting status: Unknown");
                let involved = to_value(&node)?;
                let msg = format!("Node {name} status is now: NodeNotReady");
                self.kube
                    .event(&involved, "Normal", "NodeNotReady", &msg)
                    .await;
                // The write comes back through the informer and queues the node.
                return Ok(());
            }
        }
        let Some(want) = health::wanted_taint(health::ready_status(&conditions)) else {
            return Ok(());
        };
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if let Some(new) = health::retaint(&taints, want, Timestamp::now()) {
            let mut obj = to_value(&node)?;
            obj["spec"]["taints"] = to_json(&new)?;
            self.kube.update(nodes(), obj).await?;
            tracing::info!(node = name, taint = ?want, "node taints updated");
        }
        Ok(())
    }
}

fn nodes() -> &'static api::resources::Resource {
    crud_resource("", "nodes")
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

fn to_value(node: &Node) -> Result<serde_json::Value, ApiError> {
    to_json(node)
}
