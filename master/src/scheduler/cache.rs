//! The scheduler's cache: every node as a compact `NodeInfo` (allocatable,
//! labels, taints, readiness) with what its pods use (requests, pod count, host
//! ports, pods per controller). Pods enter it from the informer once bound, or are
//! "assumed" on a node the moment the scheduler picks it, so the next pod sees the
//! usage before the watch confirms the binding; an assumed pod whose binding fails
//! is forgotten. Pure data structure, no I/O.

use super::pod::{HostPort, PodInfo, Resources, Taint};
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The node's Ready condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Ready=False, or no Ready condition yet.
    NotReady,
    /// Ready=Unknown: the node stopped reporting.
    Unknown,
}

/// What the pods on a node use.
#[derive(Clone, Debug, Default)]
pub struct Usage {
    pub requested: Resources,
    pub non_zero_requested: Resources,
    pub pods: i64,
    pub host_ports: Vec<HostPort>,
    /// Pods per owning controller uid.
    pub owners: HashMap<Arc<str>, u32>,
}

/// What a pod counts for on its node: all the cache keeps of a bound or assumed
/// pod (its node selector, affinity and tolerations mattered only until then).
#[derive(Clone, Debug, Default)]
struct Counted {
    requests: Resources,
    non_zero: Resources,
    host_ports: Vec<HostPort>,
    /// The controller's uid, shared with the node's `Usage::owners` key.
    owner: Option<Arc<str>>,
}

impl Counted {
    fn of(p: &PodInfo) -> Self {
        Self {
            requests: p.requests,
            non_zero: p.non_zero,
            host_ports: p.host_ports.clone(),
            owner: p.owner.as_deref().map(crate::controllers::lite::intern_str),
        }
    }
}

impl Usage {
    fn add(&mut self, p: &Counted) {
        self.requested.add(&p.requests);
        self.non_zero_requested.add(&p.non_zero);
        self.pods += 1;
        self.host_ports.extend(p.host_ports.iter().cloned());
        if let Some(o) = &p.owner {
            *self.owners.entry(o.clone()).or_default() += 1;
        }
    }

    fn remove(&mut self, p: &Counted) {
        self.requested.sub(&p.requests);
        self.non_zero_requested.sub(&p.non_zero);
        self.pods -= 1;
        for hp in &p.host_ports {
            if let Some(i) = self.host_ports.iter().position(|x| x == hp) {
                self.host_ports.swap_remove(i);
            }
        }
        if let Some(o) = &p.owner {
            if let Some(n) = self.owners.get_mut(o) {
                *n -= 1;
                if *n == 0 {
                    self.owners.remove(o);
                }
            }
        }
    }

    /// Pods of the controller `owner` on the node.
    pub fn owned_by(&self, owner: &str) -> u32 {
        self.owners.get(owner).copied().unwrap_or(0)
    }
}

/// A node as the scheduler sees it.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    pub allowed_pods: i64,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub readiness: Readiness,
    pub usage: Usage,
}

impl NodeInfo {
    /// The scheduling properties of `node` (no usage).
    pub fn from_node(node: &Node) -> Self {
        let status = node.status.as_ref();
        let alloc = status
            .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
            .cloned()
            .unwrap_or_default();
        let allowed_pods = alloc
            .get("pods")
            .and_then(|q| api::quantity::Quantity::parse(&q.0).ok())
            .map_or(0, |q| q.value().clamp(0, i64::MAX as i128) as i64);
        let readiness = match status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str())
        {
            Some("True") => Readiness::Ready,
            Some("Unknown") => Readiness::Unknown,
            _ => Readiness::NotReady,
        };
        let spec = node.spec.as_ref();
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable: Resources::from_list(&alloc),
            allowed_pods,
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .into_iter()
                .flatten()
                .map(|t| Taint {
                    key: t.key.clone(),
                    value: t.value.clone().unwrap_or_default(),
                    effect: t.effect.clone(),
                })
                .collect(),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            readiness,
            usage: Usage::default(),
        }
    }

    /// Whether the two describe the same node for scheduling (usage aside).
    pub fn same_properties(&self, o: &NodeInfo) -> bool {
        self.labels == o.labels
            && self.allocatable == o.allocatable
            && self.allowed_pods == o.allowed_pods
            && self.taints == o.taints
            && self.unschedulable == o.unschedulable
            && self.readiness == o.readiness
    }
}

/// A pod in the cache, by uid. The node name is shared by the node's pods.
struct PodEntry {
    counted: Counted,
    node: Arc<str>,
    assumed: bool,
}

/// Nodes and the pods bound or assumed on them.
#[derive(Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Usage on nodes the cache has no Node object for (yet, or any more).
    orphans: HashMap<String, Usage>,
    pods: HashMap<String, PodEntry>,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }

    /// Adds or updates a node; true when it is new or its scheduling properties
    /// changed (a reason to retry unschedulable pods).
    pub fn upsert_node(&mut self, node: &Node) -> bool {
        let mut info = NodeInfo::from_node(node);
        match self.index.get(&info.name) {
            Some(&i) => {
                let old = &mut self.nodes[i];
                if old.same_properties(&info) {
                    return false;
                }
                info.usage = std::mem::take(&mut old.usage);
                *old = info;
                true
            }
            None => {
                info.usage = self.orphans.remove(&info.name).unwrap_or_default();
                self.index.insert(info.name.clone(), self.nodes.len());
                self.nodes.push(info);
                true
            }
        }
    }

    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        let gone = self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
        if gone.usage.pods > 0 {
            self.orphans.insert(gone.name, gone.usage);
        }
    }

    fn usage_mut(&mut self, node: &str) -> &mut Usage {
        match self.index.get(node) {
            Some(&i) => &mut self.nodes[i].usage,
            None => self.orphans.entry(node.to_string()).or_default(),
        }
    }

    fn unaccount(&mut self, entry: &PodEntry) {
        let usage = self.usage_mut(&entry.node);
        usage.remove(&entry.counted);
        if usage.pods == 0 && !self.index.contains_key(&*entry.node) {
            self.orphans.remove(&*entry.node);
        }
    }

    fn insert(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) {
        if let Some(old) = self.pods.remove(&info.uid) {
            self.unaccount(&old);
        }
        let counted = Counted::of(&info);
        self.usage_mut(node).add(&counted);
        self.pods.insert(
            info.uid.clone(),
            PodEntry {
                counted,
                node: crate::controllers::lite::intern_str(node),
                assumed,
            },
        );
    }

    /// Counts `pod` on `node` before its binding is confirmed.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.insert(pod, node, true);
    }

    /// Undoes `assume` after a failed binding; a confirmed pod stays.
    pub fn forget(&mut self, uid: &str) {
        if self.pods.get(uid).is_some_and(|e| e.assumed) {
            if let Some(e) = self.pods.remove(uid) {
                self.unaccount(&e);
            }
        }
    }

    /// A pod the API says is bound to `node` (added or updated): confirms an
    /// assumed pod, or replaces what was counted for it.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.insert(pod, node, false);
    }

    /// A bound pod that is gone or terminated.
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(e) = self.pods.remove(uid) {
            self.unaccount(&e);
        }
    }

    /// Whether `uid` is assumed and not yet confirmed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|e| e.assumed)
    }

    /// Whether the cache counts `uid` on some node.
    pub fn contains_pod(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn node(name: &str, cpu: &str, mem: &str, pods: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .unwrap()
    }

    pub fn pod_info(uid: &str, cpu: i64, mem: i64) -> Arc<PodInfo> {
        Arc::new(PodInfo {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            requests: Resources {
                milli_cpu: cpu,
                memory: mem,
                ephemeral: 0,
            },
            non_zero: Resources {
                milli_cpu: cpu,
                memory: mem,
                ephemeral: 0,
            },
            owner: Some("rs".into()),
            ..Default::default()
        })
    }

    #[test]
    fn node_properties_are_read_once() {
        let mut c = Cache::new();
        assert!(c.upsert_node(&node("n1", "2", "4Gi", "110")));
        let n = c.node("n1").unwrap();
        assert_eq!(n.allocatable.milli_cpu, 2000);
        assert_eq!(n.allocatable.memory, 4 << 30);
        assert_eq!(n.allowed_pods, 110);
        assert_eq!(n.readiness, Readiness::Ready);
        // The same node again (a heartbeat) is no scheduling change.
        assert!(!c.upsert_node(&node("n1", "2", "4Gi", "110")));
        assert!(c.upsert_node(&node("n1", "4", "4Gi", "110")));
    }

    #[test]
    fn assume_confirm_and_forget() {
        let mut c = Cache::new();
        c.upsert_node(&node("n1", "2", "4Gi", "110"));
        c.assume(pod_info("a", 500, 100), "n1");
        c.assume(pod_info("b", 300, 100), "n1");
        let u = &c.node("n1").unwrap().usage;
        assert_eq!(
            (u.requested.milli_cpu, u.pods, u.owned_by("rs")),
            (800, 2, 2)
        );
        // The watch confirms a: counted once.
        c.add_pod(pod_info("a", 500, 100), "n1");
        assert!(!c.is_assumed("a"));
        assert_eq!(c.node("n1").unwrap().usage.requested.milli_cpu, 800);
        // b's binding failed.
        c.forget("b");
        let u = &c.node("n1").unwrap().usage;
        assert_eq!(
            (u.requested.milli_cpu, u.pods, u.owned_by("rs")),
            (500, 1, 1)
        );
        // Forgetting a confirmed pod does nothing; removing it does.
        c.forget("a");
        assert_eq!(c.node("n1").unwrap().usage.pods, 1);
        c.remove_pod("a");
        let u = &c.node("n1").unwrap().usage;
        assert_eq!((u.requested.milli_cpu, u.pods, u.owners.len()), (0, 0, 0));
    }

    #[test]
    fn pods_seen_before_their_node_are_counted_when_it_arrives() {
        let mut c = Cache::new();
        c.add_pod(pod_info("a", 500, 100), "n1");
        c.upsert_node(&node("n1", "2", "4Gi", "110"));
        assert_eq!(c.node("n1").unwrap().usage.requested.milli_cpu, 500);
        c.upsert_node(&node("n2", "2", "4Gi", "110"));
        c.remove_node("n1");
        assert_eq!(c.nodes().len(), 1);
        assert_eq!(c.node("n2").unwrap().name, "n2");
        c.remove_pod("a");
        assert!(c.orphans.is_empty());
    }
}
