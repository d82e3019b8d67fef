//! What the agent's servers see of the node ([`NodeView`]): the kubelet's pods
//! and the runtime's per-pod stats.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::kubelet::Shared;
use crate::runtime::Runtime;
use crate::server::{ContainerStats, NodeView, PodRef, PodStats};

pub struct View {
    pub kubelet: Arc<Shared>,
    pub runtime: Runtime,
}

impl NodeView for View {
    fn pods(&self) -> Vec<Pod> {
        self.kubelet.pods()
    }

    fn pod_stats(&self) -> Vec<(PodRef, PodStats)> {
        let mut out = Vec::new();
        for pod in self.kubelet.pods() {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let Ok(stats) = self.runtime.pod_stats(&uid) else {
                continue;
            };
            let timestamp = stats.timestamp.unwrap_or_else(std::time::SystemTime::now);
            out.push((
                PodRef {
                    namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                    name: pod.metadata.name.clone().unwrap_or_default(),
                    uid,
                },
                PodStats {
                    containers: stats
                        .containers
                        .into_iter()
                        .map(|c| ContainerStats {
                            name: c.name,
                            timestamp,
                            cpu_usage_ns: c.cpu_usage_ns,
                            memory_usage_bytes: c.memory_usage_bytes,
                            memory_working_set_bytes: c.memory_working_set_bytes,
                        })
                        .collect(),
                },
            ));
        }
        out
    }

    fn node_name(&self) -> String {
        self.kubelet.node_name.clone()
    }
}
