//! The pods of all hollow nodes of a process. One list-watch of every bound pod
//! feeds a [`Manager`] that keeps, per pod, what the master says and what this
//! process has reported, and decides what to send: a pod bound to one of its
//! nodes gets an IP from the node's pod CIDR and is reported Running with ready
//! containers; a pod being deleted is reported terminated and deleted for good
//! (grace period 0), and its IP is freed once it is gone.
//!
//! The manager is pure: it returns [`Action`]s and takes [`Outcome`]s, so the
//! decisions are unit-tested; [`run`] performs the actions with bounded
//! parallelism and feeds their outcomes back. Status bodies come from the pure
//! builders [`running_status`] and [`terminated_status`].

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ipam::Allocator;
use super::node::NodeIdentity;
use super::requests::{not_found, Api, Attempts};
use super::watch::{Change, Feed, Versioned};
use super::{progress, rfc3339};

/// The metadata fields the hollow nodes read.
#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub resource_version: String,
    pub deletion_timestamp: Option<String>,
}

/// A container's name and image.
#[derive(Deserialize, Default, Debug, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct Container {
    pub name: String,
    pub image: String,
}

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpecView {
    pub node_name: String,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
}

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct ContainerStatusView {
    pub ready: bool,
}

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct PodStatusView {
    pub phase: String,
    #[serde(rename = "podIP")]
    pub pod_ip: String,
    pub start_time: String,
    pub container_statuses: Vec<ContainerStatusView>,
}

/// The parts of a Pod the hollow nodes need.
#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct PodView {
    pub metadata: Meta,
    pub spec: PodSpecView,
    pub status: PodStatusView,
}

impl Versioned for PodView {
    fn resource_version(&self) -> &str {
        &self.metadata.resource_version
    }
}

#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct NodeSpecView {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
}

/// The parts of a Node the pod manager needs: its pod CIDR.
#[derive(Deserialize, Default, Debug, Clone, PartialEq)]
#[serde(default)]
pub struct NodeView {
    pub metadata: Meta,
    pub spec: NodeSpecView,
}

impl Versioned for NodeView {
    fn resource_version(&self) -> &str {
        &self.metadata.resource_version
    }
}

/// Which pod an action is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    fn path(&self) -> String {
        format!("/api/v1/namespaces/{}/pods/{}", self.namespace, self.name)
    }
}

/// What a Running status is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub pod: PodRef,
    pub containers: Vec<Container>,
    pub init_containers: Vec<Container>,
    pub host_ip: String,
    pub pod_ip: Ipv4Addr,
    /// When the pod started, if it was reported before.
    pub started: Option<String>,
}

/// Something the manager wants sent to the master.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Report the pod Running.
    Run(RunInfo),
    /// Report the pod's containers terminated, then delete it with grace 0.
    Finish(RunInfo),
    /// After a re-list did not show a pod we know: does it still exist?
    Verify(PodRef),
}

/// What came of an [`Action`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Reported Running; the stored resourceVersion and the start time used.
    Ran {
        uid: String,
        version: u64,
        started: String,
    },
    /// Reported terminated and deleted; it may linger while finalizers hold it.
    Finished { uid: String },
    /// The pod does not exist (any more).
    Gone { uid: String },
    /// The pod of a [`Action::Verify`] exists.
    Exists(PodView),
    /// The action failed after its retries; try again later.
    Failed { uid: String },
}

/// Where a pod stands as far as this process is concerned.
#[derive(Debug)]
struct PodEntry {
    pod: PodRef,
    node: usize,
    containers: Vec<Container>,
    init_containers: Vec<Container>,
    deleting: bool,
    /// The IP this process holds for the pod in the node's allocator.
    ip: Option<Ipv4Addr>,
    /// What the master last showed: its podIP, and whether it is Running with
    /// all containers ready.
    seen_ip: Option<Ipv4Addr>,
    seen_running: bool,
    seen_version: u64,
    seen_terminal: bool,
    /// Reported Running, as of resourceVersion `reported_version`.
    reported: bool,
    reported_version: u64,
    started: Option<String>,
    in_flight: bool,
    /// Terminated and deleted by this process: nothing more to do but wait for
    /// it to disappear (finalizers may keep it a while).
    finished: bool,
}

#[derive(Debug)]
struct NodeSlot {
    host_ip: String,
    ipam: Option<Allocator>,
    pods: HashSet<String>,
}

/// Decides, for every pod bound to this process's nodes, what to tell the master.
#[derive(Debug)]
pub struct Manager {
    nodes: Vec<NodeSlot>,
    by_name: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    /// Pods whose last action failed, to be tried again by [`Manager::retry`].
    failed: HashSet<String>,
    running: usize,
}

fn running_and_ready(s: &PodStatusView, containers: usize) -> bool {
    s.phase == "Running"
        && s.container_statuses.len() == containers
        && s.container_statuses.iter().all(|c| c.ready)
}

impl Manager {
    pub fn new(nodes: &[NodeIdentity]) -> Manager {
        Manager {
            nodes: nodes
                .iter()
                .map(|n| NodeSlot {
                    host_ip: n.internal_ip.to_string(),
                    ipam: None,
                    pods: HashSet::new(),
                })
                .collect(),
            by_name: nodes.iter().map(|n| (n.name.clone(), n.index)).collect(),
            pods: HashMap::new(),
            failed: HashSet::new(),
            running: 0,
        }
    }

    /// How many pods are reported Running.
    pub fn running(&self) -> usize {
        self.running
    }

    /// How many pods of this process's nodes exist.
    pub fn pods(&self) -> usize {
        self.pods.len()
    }

    /// The IP held for pod `uid`.
    pub fn ip_of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.pods.get(uid).and_then(|p| p.ip)
    }

    /// A node's pod CIDR as seen on the master; other nodes are ignored.
    pub fn node_seen(&mut self, node: &NodeView) -> Vec<Action> {
        let Some(&n) = self.by_name.get(&node.metadata.name) else {
            return Vec::new();
        };
        let cidr = node.spec.pod_cidr.as_str();
        let slot = &mut self.nodes[n];
        if cidr.is_empty() || slot.ipam.as_ref().is_some_and(|a| a.cidr() == cidr) {
            return Vec::new();
        }
        let mut ipam = match Allocator::new(cidr) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = %node.metadata.name, error = %crate::error_chain(&e), "unusable pod CIDR");
                return Vec::new();
            }
        };
        // A changed CIDR: keep the IPs that still fit, re-address the others.
        let uids: Vec<String> = slot.pods.iter().cloned().collect();
        for uid in &uids {
            if let Some(p) = self.pods.get_mut(uid) {
                if let Some(ip) = p.ip {
                    if !ipam.reserve(ip) {
                        p.ip = None;
                        if p.reported {
                            p.reported = false;
                            self.running -= 1;
                        }
                    }
                }
            }
        }
        self.nodes[n].ipam = Some(ipam);
        for uid in &uids {
            self.adopt(uid);
        }
        self.dispatch_node(n)
    }

    /// A pod was added or changed (watch event).
    pub fn pod_seen(&mut self, pod: PodView) -> Vec<Action> {
        match self.update(pod) {
            Some(uid) => self.dispatch(&uid).into_iter().collect(),
            None => Vec::new(),
        }
    }

    /// A pod is gone from the master.
    pub fn pod_deleted(&mut self, uid: &str) -> Vec<Action> {
        match self.remove(uid) {
            Some(n) => self.dispatch_node(n),
            None => Vec::new(),
        }
    }

    /// Every bound pod after a (re-)list. Known pods missing from it are verified
    /// one by one rather than dropped, since a paginated list is not a snapshot.
    pub fn listed(&mut self, pods: Vec<PodView>) -> Vec<Action> {
        let mut seen = HashSet::new();
        let mut touched = Vec::new();
        for pod in pods {
            seen.insert(pod.metadata.uid.clone());
            if let Some(uid) = self.update(pod) {
                touched.push(uid);
            }
        }
        let mut actions: Vec<Action> = self
            .pods
            .values()
            .filter(|p| !seen.contains(&p.pod.uid))
            .map(|p| Action::Verify(p.pod.clone()))
            .collect();
        // Addresses pods already hold are taken (in `update`) before any is
        // handed out here.
        for uid in touched {
            actions.extend(self.dispatch(&uid));
        }
        actions
    }

    /// What came of an action.
    pub fn outcome(&mut self, outcome: Outcome) -> Vec<Action> {
        match outcome {
            Outcome::Ran {
                uid,
                version,
                started,
            } => {
                let Some(p) = self.pods.get_mut(&uid) else {
                    return Vec::new();
                };
                p.in_flight = false;
                if !p.reported {
                    p.reported = true;
                    self.running += 1;
                }
                p.reported_version = version;
                p.started = Some(started);
                self.dispatch(&uid).into_iter().collect()
            }
            Outcome::Finished { uid } => {
                let Some(p) = self.pods.get_mut(&uid) else {
                    return Vec::new();
                };
                p.in_flight = false;
                p.finished = true;
                if p.reported {
                    p.reported = false;
                    self.running -= 1;
                }
                // The containers are gone, and with them the need for the IP.
                let node = p.node;
                if let (Some(ip), Some(ipam)) = (p.ip.take(), self.nodes[node].ipam.as_mut()) {
                    ipam.release(ip);
                }
                self.dispatch_node(node)
            }
            Outcome::Gone { uid } => self.pod_deleted(&uid),
            Outcome::Exists(pod) => self.pod_seen(pod),
            Outcome::Failed { uid } => {
                if let Some(p) = self.pods.get_mut(&uid) {
                    p.in_flight = false;
                    self.failed.insert(uid);
                }
                Vec::new()
            }
        }
    }

    /// Tries again the pods whose last action failed.
    pub fn retry(&mut self) -> Vec<Action> {
        let uids: Vec<String> = self.failed.drain().collect();
        uids.iter().filter_map(|uid| self.dispatch(uid)).collect()
    }

    /// Records what the master shows of a pod; its uid when it is one of ours.
    fn update(&mut self, pod: PodView) -> Option<String> {
        let &node = self.by_name.get(&pod.spec.node_name)?;
        let uid = pod.metadata.uid.clone();
        let version = pod.metadata.resource_version.parse().unwrap_or(0);
        let seen_ip = pod.status.pod_ip.parse().ok();
        let seen_running = running_and_ready(&pod.status, pod.spec.containers.len());
        let seen_terminal = matches!(pod.status.phase.as_str(), "Succeeded" | "Failed");
        let entry = self.pods.entry(uid.clone()).or_insert_with(|| PodEntry {
            pod: PodRef {
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: uid.clone(),
            },
            node,
            containers: Vec::new(),
            init_containers: Vec::new(),
            deleting: false,
            ip: None,
            seen_ip: None,
            seen_running: false,
            seen_version: 0,
            seen_terminal: false,
            reported: false,
            reported_version: 0,
            started: None,
            in_flight: false,
            finished: false,
        });
        if version != 0 && version < entry.seen_version {
            return Some(uid); // an older view replayed after a newer one
        }
        self.nodes[node].pods.insert(uid.clone());
        entry.containers = pod.spec.containers;
        entry.init_containers = pod.spec.init_containers;
        entry.deleting |= pod.metadata.deletion_timestamp.is_some();
        entry.seen_ip = seen_ip;
        entry.seen_running = seen_running;
        entry.seen_version = version;
        entry.seen_terminal = seen_terminal;
        if entry.started.is_none() && !pod.status.start_time.is_empty() {
            entry.started = Some(pod.status.start_time);
        }
        // Someone else changed the status after our report (e.g. marked it not
        // ready while this process was away): report again.
        let stale = entry.reported
            && version > entry.reported_version
            && (!seen_running || seen_ip != entry.ip);
        if stale && !entry.in_flight {
            entry.reported = false;
            self.running -= 1;
        }
        self.adopt(&uid);
        Some(uid)
    }

    /// Takes the IP a pod already has (reported by an earlier hollow process) when
    /// it is free in the node's pod CIDR; a pod already Running with it counts as
    /// reported.
    fn adopt(&mut self, uid: &str) {
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        let (None, Some(ip), Some(ipam)) = (p.ip, p.seen_ip, self.nodes[p.node].ipam.as_mut())
        else {
            return;
        };
        if ipam.reserve(ip) {
            p.ip = Some(ip);
            if p.seen_running && !p.reported {
                p.reported = true;
                p.reported_version = p.seen_version;
                self.running += 1;
            }
        }
    }

    /// Forgets a pod and frees its IP; the node it was on.
    fn remove(&mut self, uid: &str) -> Option<usize> {
        let p = self.pods.remove(uid)?;
        self.failed.remove(uid);
        if p.reported {
            self.running -= 1;
        }
        let slot = &mut self.nodes[p.node];
        slot.pods.remove(uid);
        if let (Some(ip), Some(ipam)) = (p.ip, slot.ipam.as_mut()) {
            ipam.release(ip);
        }
        Some(p.node)
    }

    /// Dispatches every pod of a node that may now get an address.
    fn dispatch_node(&mut self, n: usize) -> Vec<Action> {
        let waiting: Vec<String> = self.nodes[n]
            .pods
            .iter()
            .filter(|uid| {
                self.pods
                    .get(*uid)
                    .is_some_and(|p| p.ip.is_none() && !p.in_flight)
            })
            .cloned()
            .collect();
        waiting
            .iter()
            .filter_map(|uid| self.dispatch(uid))
            .collect()
    }

    /// The next thing to send for one pod, if any (none while one is under way).
    fn dispatch(&mut self, uid: &str) -> Option<Action> {
        let p = self.pods.get_mut(uid)?;
        if p.in_flight || p.finished {
            return None;
        }
        let slot = &mut self.nodes[p.node];
        if p.deleting {
            p.in_flight = true;
            return Some(Action::Finish(RunInfo {
                pod: p.pod.clone(),
                containers: p.containers.clone(),
                init_containers: p.init_containers.clone(),
                host_ip: slot.host_ip.clone(),
                pod_ip: p.ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
                started: p.started.clone(),
            }));
        }
        if p.reported || p.seen_terminal {
            return None;
        }
        let ipam = slot.ipam.as_mut()?; // no pod CIDR yet
        let ip = match p.ip {
            Some(ip) => ip,
            None => {
                let ip = match p.seen_ip.filter(|ip| ipam.reserve(*ip)) {
                    Some(ip) => ip,
                    None => match ipam.allocate() {
                        Some(ip) => ip,
                        None => {
                            tracing::warn!(pod = %p.pod.name, cidr = %ipam.cidr(), "no free pod IP");
                            return None;
                        }
                    },
                };
                p.ip = Some(ip);
                ip
            }
        };
        p.in_flight = true;
        Some(Action::Run(RunInfo {
            pod: p.pod.clone(),
            containers: p.containers.clone(),
            init_containers: p.init_containers.clone(),
            host_ip: slot.host_ip.clone(),
            pod_ip: ip,
            started: p.started.clone(),
        }))
    }
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

fn image_id(image: &str) -> String {
    format!("hollow://sha256:{}", sha256_hex(&[image]))
}

fn container_id(uid: &str, name: &str) -> String {
    format!("hollow://{}", sha256_hex(&[uid, name]))
}

fn condition(type_: &str, status: &str, now: &str) -> Value {
    json!({"type": type_, "status": status, "lastProbeTime": null, "lastTransitionTime": now})
}

/// One entry of `containerStatuses` (or `initContainerStatuses`).
fn container_status(
    run: &RunInfo,
    c: &Container,
    ready: bool,
    started: bool,
    state: Value,
) -> Value {
    json!({
        "name": c.name,
        "image": c.image,
        "imageID": image_id(&c.image),
        "containerID": container_id(&run.pod.uid, &c.name),
        "ready": ready,
        "started": started,
        "restartCount": 0,
        "state": state,
        "lastState": {},
    })
}

/// The state of a container that ran from `started` and exited 0 at `finished`.
fn completed(run: &RunInfo, c: &Container, started: &str, finished: &str) -> Value {
    json!({"terminated": {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": started,
        "finishedAt": finished,
        "containerID": container_id(&run.pod.uid, &c.name),
    }})
}

/// The status of a pod whose containers all run and are ready, as a merge patch
/// body for `pods/NAME/status`.
pub fn running_status(run: &RunInfo, now: &str) -> Value {
    let started = run.started.as_deref().unwrap_or(now);
    let containers: Vec<Value> = run
        .containers
        .iter()
        .map(|c| {
            container_status(
                run,
                c,
                true,
                true,
                json!({"running": {"startedAt": started}}),
            )
        })
        .collect();
    let mut status = json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers", "True", started),
            condition("Initialized", "True", started),
            condition("Ready", "True", now),
            condition("ContainersReady", "True", now),
            condition("PodScheduled", "True", started),
        ],
        "hostIP": run.host_ip,
        "hostIPs": [{"ip": run.host_ip}],
        "podIP": run.pod_ip.to_string(),
        "podIPs": [{"ip": run.pod_ip.to_string()}],
        "startTime": started,
        "containerStatuses": containers,
    });
    if !run.init_containers.is_empty() {
        status["initContainerStatuses"] = run
            .init_containers
            .iter()
            .map(|c| container_status(run, c, true, false, completed(run, c, started, started)))
            .collect();
    }
    json!({ "status": status })
}

/// The status of a pod whose containers have stopped after a graceful delete,
/// as a merge patch body: phase Succeeded, every container terminated (exit 0).
pub fn terminated_status(run: &RunInfo, now: &str) -> Value {
    let started = run.started.as_deref().unwrap_or(now);
    let containers: Vec<Value> = run
        .containers
        .iter()
        .map(|c| container_status(run, c, false, false, completed(run, c, started, now)))
        .collect();
    let mut ready = condition("Ready", "False", now);
    ready["reason"] = json!("PodCompleted");
    let mut containers_ready = condition("ContainersReady", "False", now);
    containers_ready["reason"] = json!("PodCompleted");
    json!({"status": {
        "phase": "Succeeded",
        "conditions": [
            condition("PodReadyToStartContainers", "False", now),
            condition("Initialized", "True", started),
            ready,
            containers_ready,
            condition("PodScheduled", "True", started),
        ],
        "containerStatuses": containers,
    }})
}

/// Sends one action and says what came of it.
async fn perform(api: Api, action: Action) -> Outcome {
    match action {
        Action::Run(run) => {
            let now = rfc3339(jiff::Timestamp::now());
            let body = running_status(&run, &now);
            let path = format!("{}/status", run.pod.path());
            match api.merge_patch(&path, &body, Attempts(6)).await {
                Ok(v)
                    if v.pointer("/metadata/uid").and_then(Value::as_str) == Some(&run.pod.uid) =>
                {
                    Outcome::Ran {
                        uid: run.pod.uid,
                        version: v
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                        started: run.started.unwrap_or(now),
                    }
                }
                // A pod of the same name that is not ours any more.
                Ok(_) => Outcome::Gone { uid: run.pod.uid },
                Err(e) if not_found(&e) => Outcome::Gone { uid: run.pod.uid },
                Err(e) => {
                    tracing::warn!(pod = %run.pod.name, namespace = %run.pod.namespace, error = %crate::error_chain(&e), "reporting the pod running failed");
                    Outcome::Failed { uid: run.pod.uid }
                }
            }
        }
        Action::Finish(run) => {
            let now = rfc3339(jiff::Timestamp::now());
            let path = run.pod.path();
            // Best effort: the delete below is what matters.
            if let Err(e) = api
                .merge_patch(
                    &format!("{path}/status"),
                    &terminated_status(&run, &now),
                    Attempts(3),
                )
                .await
            {
                tracing::debug!(pod = %run.pod.name, error = %crate::error_chain(&e), "reporting the pod terminated failed");
            }
            let options = json!({
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": run.pod.uid},
            });
            match api.delete_with(&path, &options, Attempts(6)).await {
                Ok(()) => Outcome::Finished { uid: run.pod.uid },
                Err(e) if not_found(&e) => Outcome::Gone { uid: run.pod.uid },
                // The uid precondition failed: the pod of that name is another one.
                Err(e) if e.code() == Some(409) => Outcome::Gone { uid: run.pod.uid },
                Err(e) => {
                    tracing::warn!(pod = %run.pod.name, namespace = %run.pod.namespace, error = %crate::error_chain(&e), "deleting the pod failed");
                    Outcome::Failed { uid: run.pod.uid }
                }
            }
        }
        Action::Verify(pod) => match api.get_as::<PodView>(&pod.path(), Attempts(6)).await {
            Ok(v) if v.metadata.uid == pod.uid => Outcome::Exists(v),
            Ok(_) => Outcome::Gone { uid: pod.uid },
            Err(e) if not_found(&e) => Outcome::Gone { uid: pod.uid },
            Err(_) => Outcome::Failed { uid: pod.uid },
        },
    }
}

/// How often failed actions are tried again and progress is printed.
const TICK: Duration = Duration::from_secs(2);
/// How often the number of running pods is printed (when it changed).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Runs the manager on the node and pod feeds until both end.
pub async fn run(
    api: Api,
    nodes: &[NodeIdentity],
    mut node_feed: mpsc::Receiver<Feed<NodeView>>,
    mut pod_feed: mpsc::Receiver<Feed<PodView>>,
) {
    let mut mgr = Manager::new(nodes);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let mut tick = tokio::time::interval(TICK);
    let mut last_print = tokio::time::Instant::now();
    let mut printed = (usize::MAX, usize::MAX);
    loop {
        let actions = tokio::select! {
            biased;
            Some(o) = done_rx.recv() => mgr.outcome(o),
            Some(f) = node_feed.recv() => match f {
                Feed::Listed(all) => all.iter().flat_map(|n| mgr.node_seen(n)).collect(),
                Feed::Event(Change::Deleted, _) => Vec::new(),
                Feed::Event(_, n) => mgr.node_seen(&n),
            },
            Some(f) = pod_feed.recv() => match f {
                Feed::Listed(all) => mgr.listed(all),
                Feed::Event(Change::Deleted, p) => mgr.pod_deleted(&p.metadata.uid),
                Feed::Event(_, p) => mgr.pod_seen(p),
            },
            _ = tick.tick() => {
                let now = (mgr.running(), mgr.pods());
                if now != printed && last_print.elapsed() >= PROGRESS_EVERY {
                    progress(&format!("{} pods running ({} bound)", now.0, now.1));
                    printed = now;
                    last_print = tokio::time::Instant::now();
                }
                mgr.retry()
            }
            else => return,
        };
        for action in actions {
            let api = api.clone();
            let done = done_tx.clone();
            tokio::spawn(async move {
                let _ = done.send(perform(api, action).await);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeIdentity> {
        (0..2).map(|i| NodeIdentity::new("h", i)).collect()
    }

    fn node(name: &str, cidr: &str) -> NodeView {
        NodeView {
            metadata: Meta {
                name: name.into(),
                ..Meta::default()
            },
            spec: NodeSpecView {
                pod_cidr: cidr.into(),
            },
        }
    }

    fn pod(uid: &str, node: &str, rv: u64) -> PodView {
        PodView {
            metadata: Meta {
                name: format!("p-{uid}"),
                namespace: "default".into(),
                uid: uid.into(),
                resource_version: rv.to_string(),
                deletion_timestamp: None,
            },
            spec: PodSpecView {
                node_name: node.into(),
                containers: vec![Container {
                    name: "c".into(),
                    image: "busybox".into(),
                }],
                init_containers: Vec::new(),
            },
            status: PodStatusView {
                phase: "Pending".into(),
                ..PodStatusView::default()
            },
        }
    }

    fn run_ip(actions: &[Action]) -> Ipv4Addr {
        match actions {
            [Action::Run(r)] => r.pod_ip,
            other => panic!("expected one Run, got {other:?}"),
        }
    }

    fn ran(uid: &str, version: u64) -> Outcome {
        Outcome::Ran {
            uid: uid.into(),
            version,
            started: "2026-11-26T16:00:00Z".into(),
        }
    }

    #[test]
    fn a_pod_waits_for_the_pod_cidr_then_runs_with_an_ip_from_it() {
        let mut m = Manager::new(&nodes());
        assert!(m.pod_seen(pod("a", "h-0001", 5)).is_empty(), "no CIDR yet");
        assert!(m.pod_seen(pod("x", "elsewhere", 5)).is_empty());
        assert_eq!(m.pods(), 1, "pods of other nodes are not tracked");
        let actions = m.node_seen(&node("h-0001", "10.244.1.0/24"));
        let ip = run_ip(&actions);
        assert_eq!(ip, Ipv4Addr::new(10, 244, 1, 2));
        let Action::Run(r) = &actions[0] else {
            unreachable!()
        };
        assert_eq!(r.host_ip, "10.160.0.2");
        // While the report is under way, events change nothing.
        assert!(m.pod_seen(pod("a", "h-0001", 6)).is_empty());
        assert!(m.outcome(ran("a", 7)).is_empty());
        assert_eq!(m.running(), 1);
        // Our own report coming back as an event: nothing to do.
        let mut echo = pod("a", "h-0001", 7);
        echo.status = PodStatusView {
            phase: "Running".into(),
            pod_ip: ip.to_string(),
            start_time: "2026-11-26T16:00:00Z".into(),
            container_statuses: vec![ContainerStatusView { ready: true }],
        };
        assert!(m.pod_seen(echo.clone()).is_empty());
        // Someone marks it not ready later: reported again, same IP.
        echo.metadata.resource_version = "9".into();
        echo.status.container_statuses[0].ready = false;
        assert_eq!(run_ip(&m.pod_seen(echo)), ip);
        assert_eq!(m.running(), 0);
    }

    #[test]
    fn two_live_pods_never_share_an_ip_and_deleted_pods_free_theirs() {
        let mut m = Manager::new(&nodes());
        m.node_seen(&node("h-0000", "10.244.0.0/29"));
        let a = run_ip(&m.pod_seen(pod("a", "h-0000", 1)));
        let b = run_ip(&m.pod_seen(pod("b", "h-0000", 2)));
        assert_ne!(a, b);
        let mut ips = HashSet::from([a, b]);
        for f in ["f1", "f2", "f3"] {
            assert!(ips.insert(run_ip(&m.pod_seen(pod(f, "h-0000", 2)))));
        }
        assert!(
            m.pod_seen(pod("c", "h-0000", 3)).is_empty(),
            "a /29 holds five"
        );
        m.outcome(ran("a", 4));
        // Graceful delete of a: terminate and delete, IP held until it is gone.
        let mut del = pod("a", "h-0000", 5);
        del.metadata.deletion_timestamp = Some("2026-11-26T16:00:30Z".into());
        match m.pod_seen(del).as_slice() {
            [Action::Finish(r)] => assert_eq!(r.pod_ip, a),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.ip_of("a"), Some(a));
        let actions = m.outcome(Outcome::Finished { uid: "a".into() });
        assert_eq!(run_ip(&actions), a, "the waiting pod gets the freed IP");
        // A finalizer keeps it a while: its changes start nothing again.
        let mut lingering = pod("a", "h-0000", 8);
        lingering.metadata.deletion_timestamp = Some("2026-11-26T16:00:30Z".into());
        assert!(m.pod_seen(lingering).is_empty());
        m.pod_deleted("a");
        assert_eq!(m.ip_of("c"), Some(a));
        assert_eq!(m.running(), 0);
        // A watch DELETED event frees the IP just the same.
        m.pod_deleted("b");
        assert_eq!(m.ip_of("b"), None);
        assert_eq!(run_ip(&m.pod_seen(pod("d", "h-0000", 9))), b);
    }

    #[test]
    fn running_pods_found_at_start_keep_their_ips() {
        let mut m = Manager::new(&nodes());
        let mut running = pod("a", "h-0000", 3);
        running.status = PodStatusView {
            phase: "Running".into(),
            pod_ip: "10.244.0.7".into(),
            start_time: "2026-11-26T15:00:00Z".into(),
            container_statuses: vec![ContainerStatusView { ready: true }],
        };
        let pending = pod("b", "h-0000", 4);
        assert!(m.listed(vec![running, pending]).is_empty(), "no CIDR yet");
        let actions = m.node_seen(&node("h-0000", "10.244.0.0/24"));
        let ip = run_ip(&actions);
        assert_ne!(ip, Ipv4Addr::new(10, 244, 0, 7));
        assert_eq!(m.ip_of("a"), Some(Ipv4Addr::new(10, 244, 0, 7)));
        assert_eq!(m.running(), 1, "adopted without a request");
    }

    #[test]
    fn a_relist_verifies_pods_it_no_longer_shows_and_failures_are_retried() {
        let mut m = Manager::new(&nodes());
        m.node_seen(&node("h-0000", "10.244.0.0/24"));
        m.pod_seen(pod("a", "h-0000", 1));
        m.outcome(Outcome::Failed { uid: "a".into() });
        assert_eq!(run_ip(&m.retry()), Ipv4Addr::new(10, 244, 0, 2));
        assert!(m.retry().is_empty());
        m.outcome(ran("a", 2));
        let actions = m.listed(vec![pod("b", "h-0000", 3)]);
        assert!(actions.contains(&Action::Verify(PodRef {
            namespace: "default".into(),
            name: "p-a".into(),
            uid: "a".into()
        })));
        m.outcome(Outcome::Gone { uid: "a".into() });
        assert_eq!(m.pods(), 1);
        assert_eq!(m.running(), 0);
    }

    fn run_info() -> RunInfo {
        RunInfo {
            pod: PodRef {
                namespace: "default".into(),
                name: "web".into(),
                uid: "u1".into(),
            },
            containers: vec![
                Container {
                    name: "app".into(),
                    image: "nginx:1.27".into(),
                },
                Container {
                    name: "side".into(),
                    image: "busybox".into(),
                },
            ],
            init_containers: vec![Container {
                name: "init".into(),
                image: "busybox".into(),
            }],
            host_ip: "10.160.0.2".into(),
            pod_ip: Ipv4Addr::new(10, 244, 1, 5),
            started: None,
        }
    }

    #[test]
    fn the_running_status_has_ready_containers_and_the_ips() {
        let now = "2026-11-26T16:00:00Z";
        let s = &running_status(&run_info(), now)["status"];
        assert_eq!(s["phase"], "Running");
        assert_eq!(s["podIP"], "10.244.1.5");
        assert_eq!(s["podIPs"][0]["ip"], "10.244.1.5");
        assert_eq!(s["hostIP"], "10.160.0.2");
        assert_eq!(s["startTime"], now);
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            let c = s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap();
            assert_eq!(c["status"], "True", "{t}");
        }
        let cs = s["containerStatuses"].as_array().unwrap();
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0]["name"], "app");
        assert_eq!(cs[0]["image"], "nginx:1.27");
        assert_eq!(cs[0]["ready"], true);
        assert_eq!(cs[0]["started"], true);
        assert_eq!(cs[0]["restartCount"], 0);
        assert_eq!(cs[0]["state"]["running"]["startedAt"], now);
        let image_id = cs[0]["imageID"].as_str().unwrap();
        assert!(image_id.starts_with("hollow://sha256:") && image_id.len() == 16 + 64);
        assert!(cs[1]["containerID"]
            .as_str()
            .unwrap()
            .starts_with("hollow://"));
        assert_ne!(cs[0]["containerID"], cs[1]["containerID"]);
        let init = &s["initContainerStatuses"][0];
        assert_eq!(init["state"]["terminated"]["reason"], "Completed");
        assert_eq!(init["state"]["terminated"]["exitCode"], 0);
    }

    #[test]
    fn the_terminated_status_stops_every_container() {
        let mut run = run_info();
        run.started = Some("2026-11-26T15:00:00Z".into());
        let s = &terminated_status(&run, "2026-11-26T16:00:00Z")["status"];
        assert_eq!(s["phase"], "Succeeded");
        for c in s["containerStatuses"].as_array().unwrap() {
            assert_eq!(c["ready"], false);
            assert_eq!(
                c["state"]["terminated"]["startedAt"],
                "2026-11-26T15:00:00Z"
            );
            assert_eq!(
                c["state"]["terminated"]["finishedAt"],
                "2026-11-26T16:00:00Z"
            );
        }
    }

    #[test]
    fn views_decode_from_real_shapes() {
        let p: PodView = serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "d", "uid": "u", "resourceVersion": "4",
                         "deletionTimestamp": "2026-11-26T16:00:00Z", "labels": {"x": "y"}},
            "spec": {"nodeName": "h-0000", "containers": [{"name": "c", "image": "i", "ports": []}]},
            "status": {"phase": "Running", "podIP": "10.244.0.2",
                       "containerStatuses": [{"name": "c", "ready": true}]}
        }))
        .unwrap();
        assert_eq!(p.spec.node_name, "h-0000");
        assert_eq!(p.status.pod_ip, "10.244.0.2");
        assert!(p.metadata.deletion_timestamp.is_some());
        assert!(running_and_ready(&p.status, 1));
        let n: NodeView = serde_json::from_value(
            json!({"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.3.0/24"}}),
        )
        .unwrap();
        assert_eq!(n.spec.pod_cidr, "10.244.3.0/24");
    }
}
