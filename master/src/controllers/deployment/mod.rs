//! The Deployment controller, as upstream's: each Deployment owns one
//! ReplicaSet per pod template (named `<deployment>-<pod-template-hash>`), rolls
//! from old to new ReplicaSets with the RollingUpdate or Recreate strategy,
//! scales proportionally, keeps `revisionHistoryLimit` old ReplicaSets, and
//! writes the status `kubectl rollout status` reads. Pods are the ReplicaSet
//! controller's business; this controller only sizes ReplicaSets.
//!
//! `rollout`, `revision` and `status` are pure; `sync` applies them through `Kube`.

pub mod revision;
pub mod rollout;
pub mod status;
mod sync;
#[cfg(test)]
mod tests;

use super::informer::{key as obj_key, Change};
use super::queue::{resync_every, run_workers, Queue};
use super::replicaset::pods::{controller_of, labels};
use super::replicaset::selector_of;
use super::{Informers, Options};
use crate::apiserver::Kube;
use crate::controllers::lite::{Meta, Pod};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use std::sync::Arc;

pub use sync::DeploymentError;

const WORKERS: usize = 5;
const MANAGER: &str = "deployment-controller";

struct Controller {
    kube: Kube,
    informers: Arc<Informers>,
    queue: Arc<Queue>,
}

fn meta_key(meta: &impl Meta) -> String {
    obj_key(meta.namespace(), meta.name().unwrap_or(""))
}

/// Starts the Deployment controller on the shared informers.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let ctl = Arc::new(Controller {
        kube: kube.with_manager(MANAGER),
        informers: informers.clone(),
        queue: Queue::new(),
    });
    let mut d_rx = informers.deployments.subscribe();
    let mut rs_rx = informers.replicasets.subscribe();
    let mut pod_rx = informers.pods.subscribe();
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Some(change) = d_rx.recv().await {
            c.queue.add(meta_key(&change.object().metadata));
        }
    });
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Some(change) = rs_rx.recv().await {
            c.on_replica_set(change);
        }
    });
    let c = ctl.clone();
    tokio::spawn(async move {
        while let Some(change) = pod_rx.recv().await {
            if let Change::Deleted(pod) = change {
                c.on_pod_deleted(&pod);
            }
        }
    });
    let c = ctl.clone();
    resync_every(ctl.queue.clone(), options.resync, move || {
        c.informers
            .deployments
            .list()
            .iter()
            .map(|d| meta_key(&d.metadata))
            .collect()
    });
    let queue = ctl.queue.clone();
    run_workers(queue, WORKERS, "deployment", move |key| {
        let c = ctl.clone();
        async move { c.sync(&key).await }
    });
}

impl Controller {
    /// The Deployment that controls `rs`, if it exists.
    fn owner(&self, rs: &ReplicaSet) -> Option<Arc<Deployment>> {
        let r = controller_of(&rs.metadata)?;
        if r.kind != "Deployment" {
            return None;
        }
        let d = self
            .informers
            .deployments
            .get(&obj_key(rs.metadata.namespace.as_deref(), &r.name))?;
        (d.metadata.uid.as_deref() == Some(r.uid.as_str())).then_some(d)
    }

    fn enqueue_owner(&self, rs: &ReplicaSet) {
        if let Some(d) = self.owner(rs) {
            self.queue.add(meta_key(&d.metadata));
        }
    }

    /// Deployments of the namespace whose selector matches an orphan ReplicaSet.
    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let l = labels(&rs.metadata);
        for d in self.informers.deployments.list() {
            if d.metadata.namespace == rs.metadata.namespace
                && selector_of(&d.spec.selector).matches(&l)
            {
                self.queue.add(meta_key(&d.metadata));
            }
        }
    }

    fn on_replica_set(&self, change: Change<ReplicaSet>) {
        match change {
            Change::Added(rs) | Change::Deleted(rs) => {
                if controller_of(&rs.metadata).is_some() {
                    self.enqueue_owner(&rs);
                } else {
                    self.enqueue_matching(&rs);
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let (old_ref, new_ref) =
                    (controller_of(&old.metadata), controller_of(&new.metadata));
                if old_ref != new_ref && old_ref.is_some() {
                    self.enqueue_owner(&old);
                }
                if new_ref.is_some() {
                    self.enqueue_owner(&new);
                } else if old.metadata.labels != new.metadata.labels || old_ref != new_ref {
                    self.enqueue_matching(&new);
                }
            }
        }
    }

    /// A Recreate rollout waits for old pods to be gone: look again when one goes.
    fn on_pod_deleted(&self, pod: &Pod) {
        let Some(r) = controller_of(&pod.metadata).filter(|r| r.kind == "ReplicaSet") else {
            return;
        };
        let Some(rs) = self
            .informers
            .replicasets
            .get(&obj_key(pod.metadata.namespace.as_deref(), &r.name))
        else {
            return;
        };
        if let Some(d) = self.owner(&rs) {
            if rollout::strategy(&d) == rollout::RECREATE {
                self.queue.add(meta_key(&d.metadata));
            }
        }
    }
}
