//! The controller manager: controllers that watch the API through shared
//! informers and act through the in-process `Kube` client, each with a work queue,
//! retries and periodic resync, started once this master holds the
//! `kube-system/bosun-controller-manager` Lease.
//!
//! This module owns the runtime (informers, queues, leader election) and the list
//! of controllers; each controller is a file of its own.

pub mod deployment;
pub mod endpoints;
pub mod endpointslices;
pub mod gc;
pub mod informer;
pub mod leader;
pub mod lite;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod queue;
pub mod replicaset;

use crate::apiserver::{crud_resource, Kube, Server};
use informer::Informer;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lite::Pod;
use std::sync::Arc;
use std::time::Duration;

/// Settings of the controllers (flags of `bosun master`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Pods' addresses; each node gets a `/node_cidr_mask_size` of it.
    pub cluster_cidr: String,
    /// The prefix length of each node's podCIDR (upstream's default: 24).
    pub node_cidr_mask_size: u8,
    /// How long a node may go without renewing its Lease before it is Unknown.
    pub node_monitor_grace_period: Duration,
    /// The default tolerationSeconds for not-ready/unreachable taints.
    pub default_unreachable_toleration_seconds: i64,
    /// Terminated pods kept before pod GC deletes the oldest.
    pub terminated_pod_gc_threshold: usize,
    /// How often every object is queued again even without changes.
    pub resync: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cluster_cidr: "10.244.0.0/16".into(),
            node_cidr_mask_size: nodeipam::allocator::NODE_MASK,
            node_monitor_grace_period: Duration::from_secs(40),
            default_unreachable_toleration_seconds: 300,
            terminated_pod_gc_threshold: 12500,
            resync: Duration::from_secs(300),
        }
    }
}

/// The shared informers every controller reads from (one list+watch each).
pub struct Informers {
    pub pods: Arc<Informer<Pod>>,
    pub nodes: Arc<Informer<Node>>,
    pub namespaces: Arc<Informer<Namespace>>,
    pub services: Arc<Informer<Service>>,
    pub deployments: Arc<Informer<Deployment>>,
    pub replicasets: Arc<Informer<ReplicaSet>>,
    /// Every Lease (nodes' in `kube-node-lease`, leader election's).
    pub leases: Arc<Informer<Lease>>,
    pub endpoints: Arc<Informer<Endpoints>>,
    pub endpointslices: Arc<Informer<EndpointSlice>>,
}

impl Informers {
    pub fn start(kube: &Kube) -> Arc<Self> {
        let k = || kube.with_manager("bosun-informer");
        Arc::new(Self {
            pods: Informer::start(k(), crud_resource("", "pods")),
            nodes: Informer::start(k(), crud_resource("", "nodes")),
            namespaces: Informer::start(k(), crud_resource("", "namespaces")),
            services: Informer::start(k(), crud_resource("", "services")),
            deployments: Informer::start(k(), crud_resource("apps", "deployments")),
            replicasets: Informer::start(k(), crud_resource("apps", "replicasets")),
            leases: Informer::start(k(), crud_resource("coordination.k8s.io", "leases")),
            endpoints: Informer::start(k(), crud_resource("", "endpoints")),
            endpointslices: Informer::start(
                k(),
                crud_resource("discovery.k8s.io", "endpointslices"),
            ),
        })
    }

    pub async fn wait_synced(&self) {
        self.pods.wait_synced().await;
        self.nodes.wait_synced().await;
        self.namespaces.wait_synced().await;
        self.services.wait_synced().await;
        self.deployments.wait_synced().await;
        self.replicasets.wait_synced().await;
        self.leases.wait_synced().await;
        self.endpoints.wait_synced().await;
        self.endpointslices.wait_synced().await;
    }
}

/// Waits for leadership, then starts every controller. Returns when leadership
/// is lost (the caller exits, as upstream's controller manager does).
pub async fn run(server: Arc<Server>, options: Options, identity: String) {
    let kube = Kube::new(server, "bosun-controller-manager");
    let mut leading = leader::acquire(kube.clone(), "bosun-controller-manager", identity).await;
    let informers = Informers::start(&kube);
    informers.wait_synced().await;
    tracing::info!("controllers starting");
    start_controllers(&kube, &informers, &options);
    let _ = leading.wait_for(|l| !*l).await;
}

/// Every controller, each on its own queue and workers.
fn start_controllers(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    nodeipam::start(kube, informers, options);
    nodelifecycle::start(kube, informers, options);
    podgc::start(kube, informers, options);
    crate::scheduler::start(kube, informers, options);
    gc::start(kube, informers, options);
    endpoints::start(kube, informers, options);
    endpointslices::start(kube, informers, options);
    replicaset::start(kube, informers, options);
    deployment::start(kube, informers, options);
}
