//! A compact pod for the shared informer cache. A typed k8s-openapi `Pod` costs
//! about 13 KB in memory (its structs hold every field of the API inline, mostly
//! as empty `Option`s), too much at tens of thousands of pods; this one keeps only
//! what the controllers and the scheduler read, under k8s-openapi's names and
//! nesting so that code reading `pod.spec.as_ref()?.node_name` is the same for
//! both. Unknown fields are ignored when decoding. Nothing writes a cached pod
//! back: write paths build the patch they need.

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, PodIP, ResourceRequirements, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A pod as the informer caches it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: Option<PodSpec>,
    pub status: Option<PodStatus>,
}

/// The part of `spec` the controllers and the scheduler read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    pub node_name: Option<String>,
    pub scheduler_name: Option<String>,
    pub containers: Vec<Container>,
    pub init_containers: Option<Vec<Container>>,
    pub overhead: Option<BTreeMap<String, Quantity>>,
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Boxed: set on few pods, and large.
    pub affinity: Option<Box<Affinity>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub priority: Option<i32>,
    pub restart_policy: Option<String>,
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
    pub phase: Option<String>,
    pub conditions: Option<Vec<PodCondition>>,
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(rename = "podIPs")]
    pub pod_ips: Option<Vec<PodIP>>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<String>,
    pub start_time: Option<Time>,
    pub container_statuses: Option<Vec<ContainerStatus>>,
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
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
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ContainerStatus {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    pub started: Option<bool>,
}

impl super::informer::Object for Pod {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    /// Also gives back the spare capacity of every list (decoding grows them
    /// by doubling: five conditions would hold room for eight).
    fn strip(&mut self) {
        let m = &mut self.metadata;
        m.managed_fields = None;
        shrink(&mut m.owner_references);
        shrink(&mut m.finalizers);
        if let Some(spec) = &mut self.spec {
            spec.containers.shrink_to_fit();
            for c in spec.containers.iter_mut() {
                shrink(&mut c.ports);
            }
            shrink(&mut spec.init_containers);
            for c in spec.init_containers.iter_mut().flatten() {
                shrink(&mut c.ports);
            }
            shrink(&mut spec.tolerations);
        }
        if let Some(status) = &mut self.status {
            shrink(&mut status.conditions);
            shrink(&mut status.pod_ips);
            shrink(&mut status.container_statuses);
            shrink(&mut status.init_container_statuses);
        }
    }
}

fn shrink<T>(list: &mut Option<Vec<T>>) {
    if let Some(l) = list {
        l.shrink_to_fit();
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
                "namespace": m.namespace,
                "uid": m.uid,
                "resourceVersion": m.resource_version,
            },
        })
    }
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
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("True"));
        let cs = &status.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            (cs.name.as_str(), cs.ready, cs.restart_count, cs.started),
            ("app", true, 3, Some(true))
        );
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
