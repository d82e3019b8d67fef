//! Pod GC, as kube-controller-manager's pod garbage collector: every check period
//! it force-deletes (grace 0) terminated pods (Succeeded/Failed) beyond
//! `terminated_pod_gc_threshold`, evicted and oldest first; pods bound to nodes
//! that no longer exist, once the node has been missing for a quarantine period;
//! and terminating pods that were never scheduled. Upstream's quarantine is 40 s
//! and its period 20 s; here the quarantine is `node_monitor_grace_period` (40 s by
//! default) and the period half of it, at most 20 s, so tests can shorten both.

pub mod plan;
#[cfg(test)]
mod tests;

use super::informer::{split_key, Informer, Object as _};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, Deletion, Kube};
use crate::controllers::lite::Pod;
use k8s_openapi::api::core::v1::Node;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct PodGc {
    kube: Kube,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    threshold: usize,
    quarantine: Duration,
    /// Nodes that pods are bound to but that do not exist, since when.
    missing: HashMap<String, Instant>,
}

pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let quarantine = options.node_monitor_grace_period;
    let period = (quarantine / 2).clamp(Duration::from_millis(100), Duration::from_secs(20));
    let mut gc = PodGc {
        kube: kube.with_manager("pod-garbage-collector"),
        pods: informers.pods.clone(),
        nodes: informers.nodes.clone(),
        threshold: options.terminated_pod_gc_threshold,
        quarantine,
        missing: HashMap::new(),
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            gc.pass().await;
        }
    });
}

impl PodGc {
    async fn pass(&mut self) {
        let pods = self.pods.list();
        for key in plan::terminated_over_threshold(&pods, self.threshold) {
            tracing::info!(pod = %key, "deleting a terminated pod over the threshold");
            self.force_delete(&key).await;
        }
        let nodes: HashSet<String> = self.nodes.list().iter().map(|n| n.cache_key()).collect();
        let orphaned = plan::orphaned(&pods, &nodes);
        let now = Instant::now();
        self.missing.retain(|n, _| orphaned.contains_key(n));
        for (node, keys) in orphaned {
            let since = *self.missing.entry(node.clone()).or_insert(now);
            if now.duration_since(since) < self.quarantine {
                continue;
            }
            for key in keys {
                tracing::info!(pod = %key, %node, "deleting a pod bound to a node that does not exist");
                self.force_delete(&key).await;
            }
        }
        for key in plan::unscheduled_terminating(&pods) {
            tracing::info!(pod = %key, "deleting an unscheduled terminating pod");
            self.force_delete(&key).await;
        }
    }

    async fn force_delete(&self, key: &str) {
        let uid = self.pods.get(key).and_then(|p| p.metadata.uid.clone());
        let (ns, name) = split_key(key);
        let opts = Deletion {
            grace_period: Some(0),
            propagation: None,
            uid,
        };
        match self
            .kube
            .delete(crud_resource("", "pods"), ns, name, opts)
            .await
        {
            Ok(()) => {}
            Err(e) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = key, error = %e, "pod GC could not delete"),
        }
    }
}
