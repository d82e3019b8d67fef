//! The taint eviction controller: deletes pods from nodes with NoExecute taints
//! they do not tolerate (at once, or when their `tolerationSeconds` run out,
//! counted from the taint's timeAdded), with a `TaintManagerEviction` event. The
//! deletion is graceful; since an unreachable node never finishes it, a pod still
//! terminating on a node whose Ready condition is Unknown is force-deleted once
//! its deletion deadline (deletionTimestamp) has passed.

use super::health;
use super::taints::{eviction, Eviction};
use crate::apiserver::{crud_resource, ApiError, Deletion, Kube};
use crate::controllers::informer::{split_key, Change, Informer, Object as _};
use crate::controllers::lite::Pod;
use crate::controllers::queue::{run_workers, Queue};
use crate::controllers::{Informers, Options};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct TaintEviction {
    kube: Kube,
    pods: Arc<Informer<Pod>>,
    nodes: Arc<Informer<Node>>,
    queue: Arc<Queue>,
    /// Pod keys by node name.
    by_node: Mutex<HashMap<String, HashSet<String>>>,
    /// When taints without a timeAdded were first seen, by (node, key, value).
    first_seen: Mutex<HashMap<(String, String, String), Timestamp>>,
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == health::NO_EXECUTE)
        .cloned()
        .collect()
}

fn ready(node: &Node) -> Option<String> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .and_then(health::ready_status)
        .map(str::to_string)
}

/// Whether a pod change may change its eviction.
fn pod_changed(old: &Pod, new: &Pod) -> bool {
    node_of(old) != node_of(new)
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || old.spec.as_ref().map(|s| &s.tolerations) != new.spec.as_ref().map(|s| &s.tolerations)
}

pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let te = Arc::new(TaintEviction {
        kube: kube.with_manager("taint-eviction-controller"),
        pods: informers.pods.clone(),
        nodes: informers.nodes.clone(),
        queue: Queue::new(),
        by_node: Mutex::new(HashMap::new()),
        first_seen: Mutex::new(HashMap::new()),
    });
    let mut pod_changes = te.pods.subscribe();
    let mut node_changes = te.nodes.subscribe();
    let worker = te.clone();
    run_workers(te.queue.clone(), 4, "taint-eviction", move |key| {
        let te = worker.clone();
        async move { te.sync(&key).await }
    });
    let resync = options.resync;
    let ticker = te.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(resync).await;
            for p in ticker.pods.list() {
                ticker.queue.add(p.cache_key());
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(c) = pod_changes.recv() => te.pod_change(c),
                Some(c) = node_changes.recv() => te.node_change(c),
                else => return,
            }
        }
    });
}

impl TaintEviction {
    fn pod_change(&self, c: Change<Pod>) {
        let key = c.object().cache_key();
        let mut by_node = self.by_node.lock().unwrap_or_else(|e| e.into_inner());
        let mut unindex = |pod: &Pod| {
            if let Some(n) = node_of(pod) {
                if let Some(set) = by_node.get_mut(n) {
                    set.remove(&key);
                    if set.is_empty() {
                        by_node.remove(n);
                    }
                }
            }
        };
        let queue = match &c {
            Change::Added(_) => true,
            Change::Updated { old, new } => {
                unindex(old);
                pod_changed(old, new)
            }
            Change::Deleted(old) => {
                unindex(old);
                return;
            }
        };
        if let Some(n) = node_of(c.object()) {
            by_node
                .entry(n.to_string())
                .or_default()
                .insert(key.clone());
            drop(by_node);
            if queue {
                self.queue.add(key);
            }
        }
    }

    fn node_change(&self, c: Change<Node>) {
        let node = c.object();
        let name = node.cache_key();
        let relevant = match &c {
            Change::Added(n) => !no_execute(n).is_empty(),
            Change::Updated { old, new } => {
                no_execute(old) != no_execute(new) || ready(old) != ready(new)
            }
            Change::Deleted(_) => false,
        };
        {
            let current = match &c {
                Change::Deleted(_) => Vec::new(),
                _ => no_execute(node),
            };
            let mut seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|(n, k, v), _| {
                n != &name
                    || current
                        .iter()
                        .any(|t| &t.key == k && t.value.as_deref().unwrap_or("") == v)
            });
        }
        if !relevant {
            return;
        }
        let keys: Vec<String> = self
            .by_node
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&name)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for k in keys {
            self.queue.add(k);
        }
    }

    /// When `taint` counts from: its timeAdded, else when it was first seen.
    fn since(&self, node: &str, taint: &Taint, now: Timestamp) -> Timestamp {
        if let Some(t) = &taint.time_added {
            return t.0;
        }
        let id = (
            node.to_string(),
            taint.key.clone(),
            taint.value.clone().unwrap_or_default(),
        );
        *self
            .first_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_insert(now)
    }

    async fn sync(&self, key: &str) -> Result<(), ApiError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        let Some(node) = node_of(&pod).and_then(|n| self.nodes.get(n)) else {
            return Ok(());
        };
        let (ns, name) = split_key(key);
        let now = Timestamp::now();
        let uid = pod.metadata.uid.clone();
        if let Some(deadline) = &pod.metadata.deletion_timestamp {
            // Terminating: an unreachable node will never finish the delete.
            if ready(&node).as_deref() != Some("Unknown") {
                return Ok(());
            }
            if deadline.0 > now {
                self.queue.add_after(key, until(now, deadline.0));
                return Ok(());
            }
            tracing::info!(
                pod = key,
                "force-deleting a pod terminating on an unreachable node"
            );
            return self.delete(ns, name, Some(0), uid).await;
        }
        let taints = no_execute(&node);
        if taints.is_empty() {
            return Ok(());
        }
        let node_name = node.cache_key();
        let timed: Vec<(&Taint, Timestamp)> = taints
            .iter()
            .map(|t| (t, self.since(&node_name, t, now)))
            .collect();
        let tolerations = pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.clone())
            .unwrap_or_default();
        match eviction(&timed, &tolerations) {
            Eviction::Never => Ok(()),
            Eviction::At(t) if t > now => {
                self.queue.add_after(key, until(now, t));
                Ok(())
            }
            _ => {
                let involved = pod.reference();
                let msg = format!("Marking for deletion Pod {}/{name}", ns.unwrap_or(""));
                tracing::info!(pod = key, node = %node_name, "evicting a pod for a NoExecute taint");
                self.kube
                    .event(&involved, "Normal", "TaintManagerEviction", &msg)
                    .await;
                self.delete(ns, name, None, uid).await
            }
        }
    }

    async fn delete(
        &self,
        ns: Option<&str>,
        name: &str,
        grace_period: Option<i64>,
        uid: Option<String>,
    ) -> Result<(), ApiError> {
        let opts = Deletion {
            grace_period,
            propagation: None,
            uid,
        };
        match self
            .kube
            .delete(crud_resource("", "pods"), ns, name, opts)
            .await
        {
            // Gone, or another pod of that name now: nothing left to do.
            Err(e) if e.code == 404 || e.code == 409 => Ok(()),
            other => other,
        }
    }
}

/// How long from `now` until `t` (a little after, so the deadline has passed).
fn until(now: Timestamp, t: Timestamp) -> Duration {
    let d = t.duration_since(now);
    Duration::try_from(d).unwrap_or_default() + Duration::from_millis(20)
}
