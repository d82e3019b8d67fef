//! A compact pod for the shared informer cache. A typed k8s-openapi `Pod` costs
//! about 13 KB in memory (its structs hold every field of the API inline, mostly
//! as empty `Option`s), too much at tens of thousands of pods; this one keeps only
//! what the controllers and the scheduler read, under k8s-openapi's names and
//! nesting so that code reading `pod.spec.as_ref()?.node_name` is the same for
//! both. Unknown fields are ignored when decoding. Nothing writes a cached pod
//! back: write paths build the patch they need.
//!
//! Most of a pod is the same as in its siblings: the pods of one ReplicaSet have
//! one namespace, one label set, one owner, one list of containers and
//! tolerations, and pods that started in the same second the same conditions.
//! Those parts are decoded into shared values ([`Arc`]s handed out by an
//! [`Interner`] while decoding), so 10,000 replicas hold one copy of them; only
//! what differs per pod (name, uid, node, IPs, times) is the pod's own. Memory
//! per cached pod is in docs/PERF.md (bench/scheduler).

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, PodIP, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use serde::{Deserialize, Deserializer};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock, Mutex};

/// A pod as the informer caches it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

/// The part of a pod's metadata the controllers read; what sibling pods share
/// is shared.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: Option<String>,
    #[serde(deserialize_with = "shared_str")]
    pub namespace: Option<Arc<str>>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub creation_timestamp: Option<Time>,
    pub deletion_timestamp: Option<Time>,
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(deserialize_with = "shared")]
    pub labels: Option<Arc<BTreeMap<String, String>>>,
    #[serde(deserialize_with = "shared")]
    pub annotations: Option<Arc<BTreeMap<String, String>>>,
    #[serde(deserialize_with = "shared")]
    pub owner_references: Option<Arc<Vec<OwnerReference>>>,
    pub finalizers: Option<Vec<String>>,
}

/// The part of `spec` the controllers and the scheduler read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub node_name: Option<String>,
    #[serde(deserialize_with = "shared_str")]
    pub scheduler_name: Option<Arc<str>>,
    #[serde(deserialize_with = "shared_vec")]
    pub containers: Arc<Vec<Container>>,
    #[serde(deserialize_with = "shared")]
    pub init_containers: Option<Arc<Vec<Container>>>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    #[serde(deserialize_with = "shared")]
    pub node_selector: Option<Arc<BTreeMap<String, String>>>,
    /// Boxed: set on few pods, and large.
    pub affinity: Option<Box<Affinity>>,
    #[serde(deserialize_with = "shared")]
    pub tolerations: Option<Arc<Vec<Toleration>>>,
    pub priority: Option<i32>,
    #[serde(deserialize_with = "shared_str")]
    pub restart_policy: Option<Arc<str>>,
    pub hostname: Option<String>,
    pub subdomain: Option<String>,
}

/// The part of a container the controllers and the scheduler read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    pub ports: Option<Vec<ContainerPort>>,
    pub resources: Option<ResourceRequirements>,
    /// `Always` for sidecars (init containers that keep running).
    pub restart_policy: Option<String>,
}

/// The part of `status` the controllers and the scheduler read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodStatus {
    #[serde(deserialize_with = "shared_str")]
    pub phase: Option<Arc<str>>,
    #[serde(deserialize_with = "shared")]
    pub conditions: Option<Arc<Vec<PodCondition>>>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
    #[serde(rename = "hostIP", deserialize_with = "shared_str")]
    pub host_ip: Option<Arc<str>>,
    pub start_time: Option<Time>,
    #[serde(deserialize_with = "shared")]
    pub container_statuses: Option<Arc<Vec<ContainerStatus>>>,
    #[serde(deserialize_with = "shared")]
    pub init_container_statuses: Option<Arc<Vec<ContainerStatus>>>,
    pub reason: Option<String>,
    pub nominated_node_name: Option<String>,
}

/// A pod condition without its `lastProbeTime` and `observedGeneration`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<Time>,
}

/// The part of a container's status the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    pub started: Option<bool>,
}

/// Reading the metadata of a cached pod and of a typed k8s-openapi object alike,
/// for the helpers that take either.
pub trait Meta {
    fn name(&self) -> Option<&str>;
    fn namespace(&self) -> Option<&str>;
    fn uid(&self) -> Option<&str>;
    fn resource_version(&self) -> Option<&str>;
    fn labels(&self) -> Option<&BTreeMap<String, String>>;
    fn owner_references(&self) -> &[OwnerReference];
}

impl Meta for ObjectMeta {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.labels.as_deref()
    }
    fn owner_references(&self) -> &[OwnerReference] {
        self.owner_references.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl Meta for k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }
    fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }
    fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.labels.as_ref()
    }
    fn owner_references(&self) -> &[OwnerReference] {
        self.owner_references.as_deref().unwrap_or(&[])
    }
}

impl super::informer::Object for Pod {
    fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    fn uid(&self) -> Option<&str> {
        self.metadata.uid.as_deref()
    }

    fn resource_version(&self) -> Option<&str> {
        self.metadata.resource_version.as_deref()
    }

    fn gc_meta(&self) -> crate::controllers::gc::graph::PartialMeta {
        let m = &self.metadata;
        crate::controllers::gc::graph::PartialMeta::new(
            m.name.as_deref(),
            m.namespace.as_deref(),
            m.uid.as_deref(),
            m.owner_references.as_deref().map(Vec::as_slice),
            m.finalizers.as_deref(),
            m.deletion_timestamp.is_some(),
        )
    }

    /// Gives back the spare capacity of the lists that are the pod's own
    /// (decoding grows them by doubling); the shared ones were shrunk when they
    /// were interned.
    fn strip(&mut self) {
        if let Some(f) = &mut self.metadata.finalizers {
            f.shrink_to_fit();
        }
        if let Some(ips) = self.status.as_mut().and_then(|s| s.pod_ips.as_mut()) {
            ips.shrink_to_fit();
        }
    }
}

impl Pod {
    /// The pod as an event's involved object: `apiVersion`, `kind` and the
    /// identifying metadata (what `Kube::event` reads).
    pub fn reference(&self) -> serde_json::Value {
        let m = &self.metadata;
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": m.name,
                "namespace": m.namespace.as_deref(),
                "uid": m.uid,
                "resourceVersion": m.resource_version,
            },
        })
    }
}

/// A table of shared values of one type: [`Interner::intern`] hands out the
/// `Arc` of an equal value already held, or keeps the new one. Values are found
/// by a fingerprint (a hash of some or all of their fields, see [`Internable`])
/// and compared in full, so two values share an `Arc` only when they are equal.
/// Values no pod holds any more are dropped on a sweep, run whenever the table
/// has doubled since the last one (amortised O(1) per call).
pub struct Interner<T: ?Sized> {
    table: Mutex<Table<T>>,
}

struct Table<T: ?Sized> {
    buckets: HashMap<u64, Vec<Arc<T>>>,
    len: usize,
    sweep_at: usize,
}

/// Entries a table holds before its first sweep.
const FIRST_SWEEP: usize = 1024;

impl<T: ?Sized + PartialEq> Interner<T> {
    pub fn new() -> Self {
        Self {
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                len: 0,
                sweep_at: FIRST_SWEEP,
            }),
        }
    }

    /// The shared copy of `value`: an equal one already held (`same` compares
    /// in full), or `value` itself, made shareable by `make` and kept.
    pub fn intern_by<V>(
        &self,
        value: V,
        fingerprint: u64,
        same: impl Fn(&T, &V) -> bool,
        make: impl FnOnce(V) -> Arc<T>,
    ) -> Arc<T> {
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = t
            .buckets
            .get(&fingerprint)
            .and_then(|b| b.iter().find(|held| same(held, &value)))
        {
            return found.clone();
        }
        if t.len >= t.sweep_at {
            t.sweep();
        }
        let shared = make(value);
        t.buckets
            .entry(fingerprint)
            .or_default()
            .push(shared.clone());
        t.len += 1;
        shared
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(|e| e.into_inner()).len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: ?Sized + PartialEq> Default for Interner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: ?Sized> Table<T> {
    /// Drops the values only the table holds.
    fn sweep(&mut self) {
        self.buckets.retain(|_, b| {
            b.retain(|v| Arc::strong_count(v) > 1);
            !b.is_empty()
        });
        self.len = self.buckets.values().map(Vec::len).sum();
        self.sweep_at = (self.len * 2).max(FIRST_SWEEP);
    }
}

/// A type whose values the cache shares between pods.
pub trait Internable: PartialEq + Sized + 'static {
    fn interner() -> &'static Interner<Self>;
    /// A hash of enough of the value to tell most unequal values apart.
    fn fingerprint(&self) -> u64;
    /// Gives back spare capacity before the value is kept.
    fn shrink(&mut self) {}
}

pub fn hash_of(v: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

/// The shared copy of `value`.
pub fn intern<T: Internable>(value: T) -> Arc<T> {
    let fp = value.fingerprint();
    T::interner().intern_by(
        value,
        fp,
        |held, v| held == v,
        |mut v| {
            v.shrink();
            Arc::new(v)
        },
    )
}

/// The shared copy of a string (namespaces, phases, node addresses).
pub fn intern_str(s: &str) -> Arc<str> {
    static STRINGS: LazyLock<Interner<str>> = LazyLock::new(Interner::new);
    STRINGS.intern_by(s, hash_of(&s), |held, v| held == *v, Arc::from)
}

macro_rules! interner {
    ($t:ty) => {
        fn interner() -> &'static Interner<Self> {
            static TABLE: LazyLock<Interner<$t>> = LazyLock::new(Interner::new);
            &TABLE
        }
    };
}

impl Internable for BTreeMap<String, String> {
    interner!(BTreeMap<String, String>);
    fn fingerprint(&self) -> u64 {
        hash_of(self)
    }
}

impl Internable for Vec<OwnerReference> {
    interner!(Vec<OwnerReference>);
    fn fingerprint(&self) -> u64 {
        hash_of(&self.iter().map(|o| o.uid.as_str()).collect::<Vec<_>>())
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

impl Internable for Vec<Container> {
    interner!(Vec<Container>);
    fn fingerprint(&self) -> u64 {
        hash_of(
            &self
                .iter()
                .map(|c| (c.name.as_str(), c.image.as_deref()))
                .collect::<Vec<_>>(),
        )
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
        for c in self.iter_mut() {
            if let Some(p) = &mut c.ports {
                p.shrink_to_fit();
            }
        }
    }
}

impl Internable for Vec<Toleration> {
    interner!(Vec<Toleration>);
    fn fingerprint(&self) -> u64 {
        hash_of(
            &self
                .iter()
                .map(|t| (t.key.as_deref(), t.effect.as_deref(), t.toleration_seconds))
                .collect::<Vec<_>>(),
        )
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

impl Internable for Vec<PodCondition> {
    interner!(Vec<PodCondition>);
    fn fingerprint(&self) -> u64 {
        hash_of(
            &self
                .iter()
                .map(|c| {
                    (
                        c.type_.as_str(),
                        c.status.as_str(),
                        c.last_transition_time.as_ref().map(|t| t.0.as_nanosecond()),
                    )
                })
                .collect::<Vec<_>>(),
        )
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

impl Internable for Vec<ContainerStatus> {
    interner!(Vec<ContainerStatus>);
    fn fingerprint(&self) -> u64 {
        hash_of(self)
    }
    fn shrink(&mut self) {
        self.shrink_to_fit();
    }
}

/// Decodes an optional value into its shared copy.
fn shared<'de, D, T>(d: D) -> Result<Option<Arc<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Internable + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.map(intern))
}

/// Decodes a list (null: empty) into its shared copy.
fn shared_vec<'de, D, T>(d: D) -> Result<Arc<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    Vec<T>: Internable + Deserialize<'de>,
{
    Ok(intern(
        Option::<Vec<T>>::deserialize(d)?.unwrap_or_default(),
    ))
}

/// Decodes an optional string into its shared copy.
fn shared_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Arc<str>>, D::Error> {
    Ok(Option::<std::borrow::Cow<'de, str>>::deserialize(d)?.map(|s| intern_str(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::informer::Object as _;

    /// A pod as stored at bench scale (a Deployment's replica on a hollow node,
    /// managedFields removed), with a container port added.
    const STORED: &str = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"creationTimestamp": "2026-11-26T17:13:12Z", "generateName": "bench-0-775b94bb69-", "generation": 1, "labels": {"app": "bench-0", "pod-template-hash": "775b94bb69"}, "name": "bench-0-775b94bb69-2245l", "namespace": "default", "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true, "kind": "ReplicaSet", "name": "bench-0-775b94bb69", "uid": "5c229378-dc1b-4c35-9db8-c40af740517c"}], "resourceVersion": "10503", "uid": "a9e5e10c-24dc-400b-97c4-fede1cf83cce"},
      "spec": {"containers": [{"image": "registry.local/app:1", "imagePullPolicy": "IfNotPresent", "name": "app", "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}], "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}], "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "b-0622", "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always", "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": "default", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30, "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300}, {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}]},
      "status": {"conditions": [{"lastTransitionTime": "2026-11-26T17:13:12Z", "status": "True", "type": "PodReadyToStartContainers"}, {"lastTransitionTime": "2026-11-26T17:13:12Z", "status": "True", "type": "Initialized"}, {"lastTransitionTime": "2026-11-26T17:13:12Z", "status": "True", "type": "Ready"}, {"lastTransitionTime": "2026-11-26T17:13:12Z", "status": "True", "type": "ContainersReady"}, {"lastTransitionTime": "2026-11-26T17:13:12Z", "status": "True", "type": "PodScheduled"}], "containerStatuses": [{"containerID": "hollow://6c9d6b67ba92702960386a23f3259e81357b72f55b6d2418905498ef31f16512", "image": "registry.local/app:1", "imageID": "hollow://sha256:4db7862e023af7f7c5b6067e514c517c444932ff2a95fe53a579d076b95dc2c6", "lastState": {}, "name": "app", "ready": true, "restartCount": 3, "started": true, "state": {"running": {"startedAt": "2026-11-26T17:13:12Z"}}}], "hostIP": "10.160.2.111", "hostIPs": [{"ip": "10.160.2.111"}], "phase": "Running", "podIP": "10.3.55.2", "podIPs": [{"ip": "10.3.55.2"}], "qosClass": "Burstable", "startTime": "2026-11-26T17:13:12Z"}}"#;

    #[test]
    fn decodes_what_the_controllers_read() {
        let p: Pod = serde_json::from_str(STORED).unwrap();
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("ReplicaSet", Some(true))
        );
        assert_eq!(p.metadata.labels.as_ref().unwrap()["app"], "bench-0");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("b-0622"));
        assert_eq!(spec.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(spec.priority, Some(0));
        let c = &spec.containers[0];
        assert_eq!(
            (c.name.as_str(), c.image.as_deref()),
            ("app", Some("registry.local/app:1"))
        );
        let requests = c.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "10m");
        assert_eq!(requests["memory"].0, "16Mi");
        let port = &c.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 8080)
        );
        let tolerations = spec.tolerations.as_ref().unwrap();
        assert_eq!(tolerations.len(), 2);
        assert_eq!(
            tolerations[1].key.as_deref(),
            Some("node.kubernetes.io/unreachable")
        );
        assert_eq!(tolerations[1].toleration_seconds, Some(300));
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.3.55.2"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[0].ip, "10.3.55.2");
        assert_eq!(status.host_ip.as_deref(), Some("10.160.2.111"));
        assert!(status.start_time.is_some());
        let ready = status
            .conditions
            .as_deref()
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("True"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            (cs.name.as_str(), cs.ready, cs.restart_count, cs.started),
            ("app", true, 3, Some(true))
        );
    }

    #[test]
    fn sibling_pods_share_what_is_the_same() {
        let a: Pod = serde_json::from_str(STORED).unwrap();
        let other = STORED
            .replace("bench-0-775b94bb69-2245l", "bench-0-775b94bb69-x9z2q")
            .replace(
                "a9e5e10c-24dc-400b-97c4-fede1cf83cce",
                "0b1e7c2a-0000-4000-8000-000000000001",
            )
            .replace("\"nodeName\": \"b-0622\"", "\"nodeName\": \"b-0007\"");
        let b: Pod = serde_json::from_str(&other).unwrap();
        let (ma, mb) = (&a.metadata, &b.metadata);
        assert!(Arc::ptr_eq(
            ma.labels.as_ref().unwrap(),
            mb.labels.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            ma.owner_references.as_ref().unwrap(),
            mb.owner_references.as_ref().unwrap()
        ));
        assert!(Arc::ptr_eq(
            ma.namespace.as_ref().unwrap(),
            mb.namespace.as_ref().unwrap()
        ));
        let (sa, sb) = (a.spec.as_ref().unwrap(), b.spec.as_ref().unwrap());
        assert!(Arc::ptr_eq(&sa.containers, &sb.containers));
        assert!(Arc::ptr_eq(
            sa.tolerations.as_ref().unwrap(),
            sb.tolerations.as_ref().unwrap()
        ));
        let (ta, tb) = (a.status.as_ref().unwrap(), b.status.as_ref().unwrap());
        assert!(Arc::ptr_eq(
            ta.conditions.as_ref().unwrap(),
            tb.conditions.as_ref().unwrap()
        ));
        // What differs stays the pod's own.
        assert_ne!(ma.uid, mb.uid);
        assert_eq!(sb.node_name.as_deref(), Some("b-0007"));
    }

    #[test]
    fn interning_never_merges_unequal_values_and_sweeps_unheld_ones() {
        let table: Interner<String> = Interner::new();
        let same_fp = |v: &str| table.intern_by(v.to_string(), 7, |h, v| h == v, Arc::new);
        let a = same_fp("a");
        let b = same_fp("b");
        assert_eq!((a.as_str(), b.as_str()), ("a", "b"));
        assert!(Arc::ptr_eq(&a, &same_fp("a")));
        assert_eq!(table.len(), 2);
        drop(b);
        // Filling the table past its first sweep drops "b", which nobody holds.
        let held: Vec<_> = (0..FIRST_SWEEP)
            .map(|i| same_fp(&format!("v{i}")))
            .collect();
        let again = same_fp("b");
        assert_eq!(
            table.len(),
            FIRST_SWEEP + 2,
            "a, the held values and the new b"
        );
        assert!(
            Arc::ptr_eq(&a, &same_fp("a")),
            "a held value survives the sweep"
        );
        assert_eq!((held.len(), again.as_str()), (FIRST_SWEEP, "b"));
    }

    /// Resident memory of this process in KB (0 where /proc is missing).
    fn rss_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Prints (does not assert: other tests run in the same process) what 10,000
    /// decoded pods of each kind add to the resident memory; run it alone with
    /// `cargo test -p bosun-master --lib lite::tests::memory -- --nocapture`.
    #[test]
    fn memory_of_ten_thousand_pods() {
        const N: usize = 10_000;
        let before = rss_kb();
        let lite: Vec<Pod> = (0..N)
            .map(|_| {
                let mut p: Pod = serde_json::from_str(STORED).unwrap();
                p.strip();
                p
            })
            .collect();
        let mid = rss_kb();
        let full: Vec<k8s_openapi::api::core::v1::Pod> = (0..N)
            .map(|_| serde_json::from_str(STORED).unwrap())
            .collect();
        let after = rss_kb();
        println!(
            "{N} pods: lite {} MB ({} B/pod, Pod {} B inline), k8s-openapi {} MB ({} B/pod, Pod {} B inline)",
            (mid - before) / 1024,
            (mid - before) * 1024 / N as u64,
            std::mem::size_of::<Pod>(),
            (after - mid) / 1024,
            (after - mid) * 1024 / N as u64,
            std::mem::size_of::<k8s_openapi::api::core::v1::Pod>(),
        );
        assert_eq!((lite.len(), full.len()), (N, N));
    }
}
