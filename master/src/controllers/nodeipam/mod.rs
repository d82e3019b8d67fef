//! Node IPAM, as kube-controller-manager's range allocator: every node gets
//! `spec.podCIDR`/`spec.podCIDRs`, a /24 of the cluster CIDR, when it registers
//! without one, and the /24 is released when the node is deleted.
//!
//! A /24 is never handed out twice, also across restarts and several workers: each
//! is claimed durably in the store (`Kube::claim`, kind `podcidrs`, owner = node
//! name) before it is written to the node. At start the claims are reconciled with
//! the nodes: a node's own podCIDR keeps (or gets) its claim, a claim whose node is
//! gone is released, and a claim whose node still has no podCIDR (a crash between
//! claim and write) is given to that node. Nodes whose podCIDR was set by someone
//! else keep it; this controller never changes a podCIDR.

pub mod allocator;
#[cfg(test)]
mod tests;

use super::informer::{Change, Informer, Object as _};
use super::queue::{run_workers, Queue};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, ApiError, Kube, PatchType};
use allocator::CidrSet;
use k8s_openapi::api::core::v1::Node;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The kind of `Kube::claim` this controller holds.
pub const CLAIM_KIND: &str = "podcidrs";
/// How soon a node that found no free /24 tries again.
const EXHAUSTED_RETRY: Duration = Duration::from_secs(5);

struct State {
    set: CidrSet,
    /// The /24 claimed for each node.
    held: HashMap<String, String>,
    /// Nodes told (by an event) that no /24 is free.
    starved: HashSet<String>,
}

struct Ipam {
    kube: Kube,
    nodes: Arc<Informer<Node>>,
    queue: Arc<Queue>,
    state: Mutex<State>,
}

/// The podCIDR a node has, if any.
fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .filter(|c| !c.is_empty())
}

/// Starts the controller (it logs and does nothing when the cluster CIDR is bad).
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let set = match CidrSet::new(&options.cluster_cidr, options.node_cidr_mask_size) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "node IPAM disabled");
            return;
        }
    };
    let ipam = Arc::new(Ipam {
        kube: kube.with_manager("node-ipam-controller"),
        nodes: informers.nodes.clone(),
        queue: Queue::new(),
        state: Mutex::new(State {
            set,
            held: HashMap::new(),
            starved: HashSet::new(),
        }),
    });
    let resync = options.resync;
    tokio::spawn(async move {
        while let Err(e) = ipam.reconcile().await {
            tracing::warn!(error = %e, "node IPAM: reconciling claims failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut changes = ipam.nodes.subscribe();
        let worker = ipam.clone();
        run_workers(ipam.queue.clone(), 4, "nodeipam", move |key| {
            let ipam = worker.clone();
            async move { ipam.sync(&key).await }
        });
        let ticker = ipam.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(resync).await;
                for n in ticker.nodes.list() {
                    ticker.queue.add(n.cache_key());
                }
            }
        });
        while let Some(change) = changes.recv().await {
            let wanted = match &change {
                Change::Updated { old, new } => {
                    pod_cidr(new).is_none() || pod_cidr(old) != pod_cidr(new)
                }
                _ => true,
            };
            if wanted {
                ipam.queue.add(change.object().cache_key());
            }
        }
    });
}

impl Ipam {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the claims in the store and the nodes in the cache in line.
    async fn reconcile(&self) -> Result<(), ApiError> {
        let claims = self.kube.claims(CLAIM_KIND).await?;
        let nodes = self.nodes.list();
        let node_cidr: HashMap<String, Option<String>> = nodes
            .iter()
            .map(|n| (n.cache_key(), pod_cidr(n).map(str::to_string)))
            .collect();
        let in_use: HashMap<&str, &str> = node_cidr
            .iter()
            .filter_map(|(n, c)| c.as_deref().map(|c| (c, n.as_str())))
            .collect();
        let mut held = HashMap::new();
        let mut claimed = HashSet::new();
        for (cidr, owner) in &claims {
            claimed.insert(cidr.clone());
            if let Some(node) = in_use.get(cidr.as_str()) {
                held.insert(node.to_string(), cidr.clone());
            } else if matches!(node_cidr.get(owner), Some(None)) && !held.contains_key(owner) {
                // Claimed for this node, which never got it written: it is its.
                held.insert(owner.clone(), cidr.clone());
            } else {
                tracing::info!(cidr, owner, "releasing the podCIDR of a node that is gone");
                self.kube.release(CLAIM_KIND, cidr).await?;
                claimed.remove(cidr);
            }
        }
        for (cidr, node) in &in_use {
            if !claimed.contains(*cidr) && !self.kube.claim(CLAIM_KIND, cidr, node).await? {
                tracing::warn!(cidr, node, "podCIDR of a node is claimed by another");
            }
            held.insert(node.to_string(), cidr.to_string());
        }
        let mut st = self.lock();
        for cidr in held.values() {
            st.set.occupy(cidr);
        }
        tracing::info!(
            nodes = held.len(),
            free = st.set.capacity() - st.set.in_use(),
            "node IPAM ready"
        );
        st.held = held;
        Ok(())
    }

    async fn sync(&self, name: &str) -> Result<(), ApiError> {
        let Some(node) = self.nodes.get(name) else {
            return self.release(name).await;
        };
        if let Some(cidr) = pod_cidr(&node) {
            let (ours, previous) = {
                let mut st = self.lock();
                st.starved.remove(name);
                if st.held.get(name).map(String::as_str) == Some(cidr) {
                    return Ok(());
                }
                let ours = st.set.occupy(cidr);
                (ours, st.held.insert(name.to_string(), cidr.to_string()))
            };
            if let Some(prev) = previous {
                // Someone else wrote the node's podCIDR: ours is not needed.
                self.kube.release(CLAIM_KIND, &prev).await?;
                self.lock().set.release(&prev);
            }
            if ours {
                self.kube.claim(CLAIM_KIND, cidr, name).await?;
            }
            return Ok(());
        }
        let held = self.lock().held.get(name).cloned();
        let cidr = match held {
            Some(c) => c,
            None => match self.claim_next(name).await? {
                Some(c) => c,
                None => {
                    let first = self.lock().starved.insert(name.to_string());
                    if first {
                        tracing::warn!(node = name, "no podCIDR is free");
                        let obj = serde_json::to_value(&*node).unwrap_or_default();
                        let msg = format!("Node {name} status is now: CIDRNotAvailable");
                        self.kube
                            .event(&obj, "Normal", "CIDRNotAvailable", &msg)
                            .await;
                    }
                    self.queue.add_after(name, EXHAUSTED_RETRY);
                    return Ok(());
                }
            },
        };
        let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
        match self
            .kube
            .patch(nodes(), None, name, PatchType::Merge, &patch, None)
            .await
        {
            Ok(_) => {
                tracing::info!(node = name, cidr, "assigned podCIDR");
                self.lock().starved.remove(name);
                Ok(())
            }
            Err(e) if e.code == 404 => self.release(name).await,
            Err(e) => Err(e),
        }
    }

    /// Claims the next free /24 for `node`; None when none is left.
    async fn claim_next(&self, node: &str) -> Result<Option<String>, ApiError> {
        loop {
            let Some(cidr) = self.lock().set.allocate() else {
                return Ok(None);
            };
            match self.kube.claim(CLAIM_KIND, &cidr, node).await {
                Ok(true) => {
                    self.lock().held.insert(node.to_string(), cidr.clone());
                    return Ok(Some(cidr));
                }
                // Claimed by someone we did not know of: stays marked used.
                Ok(false) => continue,
                Err(e) => {
                    self.lock().set.release(&cidr);
                    return Err(e);
                }
            }
        }
    }

    /// Releases what `node` held (it is gone).
    async fn release(&self, node: &str) -> Result<(), ApiError> {
        let held = {
            let mut st = self.lock();
            st.starved.remove(node);
            st.held.get(node).cloned()
        };
        if let Some(cidr) = held {
            self.kube.release(CLAIM_KIND, &cidr).await?;
            let mut st = self.lock();
            st.held.remove(node);
            st.set.release(&cidr);
            tracing::info!(node, cidr, "released podCIDR");
            // Someone may be waiting for a /24.
            let waiting: Vec<String> = st.starved.iter().cloned().collect();
            drop(st);
            for n in waiting {
                self.queue.add(n);
            }
        }
        Ok(())
    }
}

fn nodes() -> &'static api::resources::Resource {
    crud_resource("", "nodes")
}
