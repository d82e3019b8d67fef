//! The kubelet: makes this host run the pods the master bound to it. One
//! list-watch of the node's own pods (`fieldSelector=spec.nodeName=<node>`)
//! feeds a worker per pod ([`worker`]), which drives the container runtime
//! through the [`cri::Cri`] seam and writes pods/status.
//!
//! - [`plan`], [`status`], [`backoff`], [`env`]: pure decisions.
//! - [`images`]: pull policy, image pull back-off and events.
//! - [`volumes`]: the pod's volumes as files on the host.
//! - [`model`]: what is known about each container.
//!
//! On start it adopts what an earlier agent left running ([`cri::Cri::list`]):
//! pods still bound here keep their containers; the rest are removed.

pub mod backoff;
pub mod cri;
pub mod env;
pub mod images;
pub mod model;
pub mod plan;
pub mod status;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::{mpsc, Semaphore};

use crate::hollow::requests::Api;
use crate::hollow::watch::{list_watch, query_escape, Change, Feed, Versioned};
use cri::{Cri, FoundPod};
use worker::Msg;

/// What every worker shares.
pub struct Shared {
    pub api: Api,
    pub cri: Arc<dyn Cri>,
    pub node_name: String,
    /// The node's address: hostIP of every pod, podIP of host-network pods.
    pub host_ip: String,
    /// The node's allocatable cpu (millicores) and memory (bytes), for
    /// `resourceFieldRef` limits that a container does not set.
    pub node_cpu_millis: i128,
    pub node_memory: i128,
    /// Where the runtime keeps each pod (`<pods_dir>/<uid>`), for volumes.
    pub pods_dir: PathBuf,
    /// How many container starts may run at once.
    pub starts: Arc<Semaphore>,
    /// Pulls images from registries; `None`: only images already in the store run.
    pub puller: Option<Arc<crate::image::Puller>>,
    /// The node's pods as last written, for the agent's servers.
    pods: Mutex<HashMap<String, Arc<Pod>>>,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        api: Api,
        cri: Arc<dyn Cri>,
        node_name: String,
        host_ip: String,
        node_cpu_millis: i128,
        node_memory: i128,
        pods_dir: PathBuf,
    ) -> Shared {
        Shared {
            api,
            cri,
            node_name,
            host_ip,
            node_cpu_millis,
            node_memory,
            pods_dir,
            starts: Arc::new(Semaphore::new(4)),
            puller: None,
            pods: Mutex::new(HashMap::new()),
        }
    }

    /// Lets the kubelet pull images (pull policy, ImagePullBackOff, events).
    pub fn with_puller(mut self, puller: Arc<crate::image::Puller>) -> Shared {
        self.puller = Some(puller);
        self
    }

    /// The node's pods, with the status this kubelet last wrote.
    pub fn pods(&self) -> Vec<Pod> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.values().map(|p| Pod::clone(p)).collect()
    }

    fn remember(&self, uid: &str, pod: Arc<Pod>) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.insert(uid.to_string(), pod);
    }

    fn forget(&self, uid: &str) {
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.remove(uid);
    }
}

/// What the kubelet keeps of a pod: everything but its managedFields and the
/// client-side apply annotation (a copy of the whole manifest), which it never
/// reads.
pub fn slim(mut pod: Pod) -> Pod {
    pod.metadata.managed_fields = None;
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        if a.is_empty() {
            pod.metadata.annotations = None;
        }
    }
    pod
}

impl Versioned for Pod {
    fn resource_version(&self) -> &str {
        self.metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
    }
}

/// Runs the kubelet until the pod feed ends (it does not, short of the process
/// ending). Containers keep running when it stops.
pub async fn run(shared: Arc<Shared>) {
    let cri = shared.cri.clone();
    let found = match tokio::task::spawn_blocking(move || cri.list()).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reading the pods on disk; starting without them");
            Vec::new()
        }
        Err(e) => {
            tracing::warn!(error = %e, "reading the pods on disk");
            Vec::new()
        }
    };
    let mut found: HashMap<String, FoundPod> =
        found.into_iter().map(|p| (p.uid.clone(), p)).collect();
    let uids: Vec<&str> = found.keys().map(String::as_str).collect();
    tracing::info!(pods = found.len(), uids = ?uids, "pods found on disk");

    let (tx, mut rx) = mpsc::channel(64);
    let query = format!(
        "fieldSelector={}",
        query_escape(&format!("spec.nodeName={}", shared.node_name))
    );
    tokio::spawn(list_watch::<Pod>(
        shared.api.clone(),
        "/api/v1/pods".to_string(),
        query,
        tx,
    ));

    let mut workers: HashMap<String, mpsc::Sender<Msg>> = HashMap::new();
    let mut first_list = true;
    while let Some(feed) = rx.recv().await {
        match feed {
            Feed::Listed(pods) => {
                let uids: HashSet<String> =
                    pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
                for (uid, w) in &workers {
                    if !uids.contains(uid) {
                        let _ = w.send(Msg::Deleted).await;
                    }
                }
                if first_list {
                    first_list = false;
                    let leftovers: Vec<String> = found
                        .keys()
                        .filter(|uid| !uids.contains(*uid))
                        .cloned()
                        .collect();
                    for uid in leftovers {
                        found.remove(&uid);
                        remove_leftover(&shared, uid);
                    }
                }
                for pod in pods {
                    dispatch(&shared, &mut workers, &mut found, pod).await;
                }
            }
            Feed::Event(Change::Deleted, pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(w) = workers.remove(&uid) {
                    let _ = w.send(Msg::Deleted).await;
                } else if found.remove(&uid).is_some() {
                    remove_leftover(&shared, uid);
                }
            }
            Feed::Event(_, pod) => dispatch(&shared, &mut workers, &mut found, pod).await,
        }
    }
}

async fn dispatch(
    shared: &Arc<Shared>,
    workers: &mut HashMap<String, mpsc::Sender<Msg>>,
    found: &mut HashMap<String, FoundPod>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(w) = workers.get(&uid) {
        if !w.is_closed() {
            let _ = w.send(Msg::Update(Box::new(pod))).await;
            return;
        }
        // That worker finished (the pod was terminated): an update of a pod being
        // deleted needs no new one; anything else starts over.
        workers.remove(&uid);
        if pod.metadata.deletion_timestamp.is_some() {
            return;
        }
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(worker::run(
        shared.clone(),
        Arc::new(slim(pod)),
        found.remove(&uid),
        tx.clone(),
        rx,
    ));
    workers.insert(uid, tx);
}

fn remove_leftover(shared: &Arc<Shared>, uid: String) {
    let cri = shared.cri.clone();
    tokio::task::spawn_blocking(move || {
        tracing::info!(pod = %uid, "removing a pod that is no longer bound here");
        if let Err(e) = cri.remove_sandbox(&uid) {
            tracing::warn!(pod = %uid, error = %e, "removing a leftover pod");
        }
    });
}
