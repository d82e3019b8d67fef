//! The garbage collector, as upstream's: objects whose owners (by
//! `ownerReferences[].uid`) are all gone are deleted; an owner deleted with
//! `propagationPolicy: Foreground` keeps its `foregroundDeletion` finalizer until
//! its blocking dependents are gone; one deleted with `Orphan` keeps its `orphan`
//! finalizer until its dependents no longer reference it.
//!
//! It keeps a graph of every object of every served kind (`graph`), fed by the
//! shared informers and by metadata-only watches (`source`); decisions are pure
//! (`decide`) and every deletion is checked against the live object first. Deleting
//! a namespace's content is the API server's business, not this one's.

pub mod decide;
pub mod graph;
pub mod source;
#[cfg(test)]
pub(crate) mod tests;

use crate::apiserver::{ApiError, Deletion, Kube, PatchType};
use crate::controllers::queue::{run_workers, Queue};
use crate::controllers::{Informers, Options};
use api::resources::{Resource, RESOURCES};
use decide::{decide, foreground_done, Action, OwnerState};
use graph::{Graph, Node, OwnerRef, Work, FOREGROUND, ORPHAN};
use serde_json::{json, Value};
use source::Sink;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WORKERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("{what} {object}: {error}")]
    Api {
        what: &'static str,
        object: String,
        error: ApiError,
    },
}

fn api_error<'a>(what: &'static str, node: &'a Node) -> impl FnOnce(ApiError) -> GcError + 'a {
    move |error| GcError::Api {
        what,
        object: format!(
            "{} {}/{}",
            node.res.kind,
            node.namespace.as_deref().unwrap_or(""),
            node.name
        ),
        error,
    }
}

/// Starts the collector: it loads every kind into its graph, then works.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let kube = kube.with_manager("garbage-collector");
    let informers = informers.clone();
    let resync = options.resync;
    tokio::spawn(async move { run(kube, informers, resync).await });
}

async fn run(kube: Kube, informers: Arc<Informers>, resync: Duration) {
    let sink = Arc::new(Sink {
        graph: Mutex::new(Graph::default()),
        queue: Queue::new(),
    });
    // Bindings are not stored objects.
    for res in RESOURCES.iter().filter(|r| r.plural != "bindings") {
        if !source::shared(&informers, res, &sink) {
            source::metadata(&kube, res, &sink).await;
        }
    }
    tracing::info!(objects = sink.graph().len(), "garbage collector synced");
    let gc = Arc::new(Collector {
        kube,
        sink: sink.clone(),
    });
    run_workers(
        sink.queue.clone(),
        WORKERS,
        "garbage-collector",
        move |key| {
            let gc = gc.clone();
            async move { gc.handle(&key).await }
        },
    );
    let mut tick = tokio::time::interval(resync);
    tick.tick().await;
    loop {
        tick.tick().await;
        let work = sink.graph().all_work();
        sink.enqueue(work);
    }
}

/// The resource an ownerReference names, if bosun serves it.
fn resolve(r: &OwnerRef) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|res| res.kind == r.kind && res.api_version() == r.api_version)
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn ok_if_gone(r: Result<(), ApiError>) -> Result<(), ApiError> {
    match r {
        // Gone already, or replaced (uid precondition): nothing left to do.
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        other => other,
    }
}

struct Collector {
    kube: Kube,
    sink: Arc<Sink>,
}

impl Collector {
    async fn handle(&self, key: &str) -> Result<(), GcError> {
        match source::parse_key(key) {
            Some(Work::AttemptDelete(uid)) => self.attempt_delete(&uid).await,
            Some(Work::Foreground(uid)) => self.foreground(&uid).await,
            Some(Work::Orphan(uid)) => self.orphan(&uid).await,
            None => Ok(()),
        }
    }

    /// Deletes `uid` if none of its owners holds it (upstream's attemptToDeleteItem).
    async fn attempt_delete(&self, uid: &str) -> Result<(), GcError> {
        let node = {
            let g = self.sink.graph();
            let Some(node) = g.get(uid).cloned() else {
                return Ok(());
            };
            if node.owners.is_empty() || node.deleting {
                if node.foreground {
                    self.sink.enqueue(vec![Work::Foreground(uid.to_string())]);
                }
                return Ok(());
            }
            // The common case answers from the graph alone: every owner is there.
            let all_solid = node.owners.iter().all(|r| {
                g.get(&r.uid)
                    .is_some_and(|o| o.res.kind == r.kind && !o.foreground)
            });
            if all_solid {
                return Ok(());
            }
            node
        };
        // Decide on the live object, not on what the graph may not have seen yet.
        let live = self
            .kube
            .get(node.res, node.namespace.as_deref(), &node.name)
            .await
            .map_err(api_error("reading", &node))?;
        let Some(live) = live else { return Ok(()) };
        let meta = match serde_json::from_value::<graph::Partial>(live) {
            Ok(p) => p.metadata,
            Err(_) => return Ok(()),
        };
        if meta.uid != uid
            || (meta.deletion_timestamp.is_some()
                && !meta.finalizers.iter().any(|f| f == FOREGROUND))
        {
            return Ok(());
        }
        let mut owners = Vec::with_capacity(meta.owner_references.len());
        for r in &meta.owner_references {
            let state = self.owner_state(&node, r).await?;
            owners.push((r.clone(), state));
        }
        let has_dependents = self.sink.graph().has_dependents(uid);
        match decide(&owners, has_dependents, &meta.finalizers) {
            Action::Keep => Ok(()),
            Action::RemoveRefs(uids) => self.remove_refs(&node, uid, &uids).await,
            Action::Delete(policy) => {
                tracing::debug!(kind = node.res.kind, name = %node.name, policy = policy.as_str(), "collecting garbage");
                let r = self
                    .kube
                    .delete(
                        node.res,
                        node.namespace.as_deref(),
                        &node.name,
                        Deletion {
                            propagation: Some(policy.as_str()),
                            uid: Some(uid.to_string()),
                            ..Default::default()
                        },
                    )
                    .await;
                ok_if_gone(r).map_err(api_error("deleting", &node))
            }
        }
    }

    /// The state of the owner `r` of `dependent`: from the graph when it is there,
    /// else from the store (the graph may lag behind).
    async fn owner_state(&self, dependent: &Node, r: &OwnerRef) -> Result<OwnerState, GcError> {
        if let Some(o) = self.sink.graph().get(&r.uid) {
            return Ok(if o.foreground {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            });
        }
        // A kind bosun does not serve: never collect on its account.
        let Some(res) = resolve(r) else {
            return Ok(OwnerState::Solid);
        };
        let ns = if res.namespaced() {
            match dependent.namespace.as_deref() {
                Some(ns) => Some(ns),
                // A cluster-scoped object cannot have a namespaced owner.
                None => return Ok(OwnerState::Dangling),
            }
        } else {
            None
        };
        let live = self
            .kube
            .get(res, ns, &r.name)
            .await
            .map_err(api_error("reading an owner of", dependent))?;
        Ok(match live {
            Some(o) if uid_of(&o) == r.uid => {
                let m = serde_json::from_value::<graph::Partial>(o)
                    .map(|p| p.metadata)
                    .unwrap_or_default();
                if m.deletion_timestamp.is_some() && m.finalizers.iter().any(|f| f == FOREGROUND) {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    /// Drops the references of `dependent` (the object `uid`, checked live) to the
    /// owners `owners`; a list left empty goes altogether, as upstream shows it.
    async fn remove_refs(
        &self,
        dependent: &Node,
        uid: &str,
        owners: &[String],
    ) -> Result<(), GcError> {
        let err = api_error("removing owner references of", dependent);
        let live = match self
            .kube
            .get(
                dependent.res,
                dependent.namespace.as_deref(),
                &dependent.name,
            )
            .await
        {
            Ok(Some(v)) if uid_of(&v) == uid => v,
            Ok(_) => return Ok(()),
            Err(e) => return Err(err(e)),
        };
        let refs = live
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let kept: Vec<Value> = refs
            .iter()
            .filter(|r| {
                !owners
                    .iter()
                    .any(|o| r.get("uid").and_then(Value::as_str) == Some(o))
            })
            .cloned()
            .collect();
        if kept.len() == refs.len() {
            return Ok(());
        }
        // Merge patch with the resourceVersion read: a concurrent change is a 409,
        // and the work comes back.
        let patch = json!({"metadata": {
            "resourceVersion": live.pointer("/metadata/resourceVersion"),
            "ownerReferences": if kept.is_empty() { Value::Null } else { Value::Array(kept) },
        }});
        let r = self
            .kube
            .patch(
                dependent.res,
                dependent.namespace.as_deref(),
                &dependent.name,
                PatchType::Merge,
                &patch,
                None,
            )
            .await;
        match r {
            Err(e) if e.code == 404 => Ok(()),
            other => other.map(|_| ()).map_err(err),
        }
    }

    /// Removes `finalizer` from the object `uid` (checked live).
    async fn remove_finalizer(
        &self,
        node: &Node,
        uid: &str,
        finalizer: &str,
    ) -> Result<(), GcError> {
        let live = self
            .kube
            .get(node.res, node.namespace.as_deref(), &node.name)
            .await
            .map_err(api_error("reading", node))?;
        let Some(live) = live else { return Ok(()) };
        if uid_of(&live) != uid {
            return Ok(());
        }
        let rv = live.pointer("/metadata/resourceVersion").cloned();
        let patch = json!({"metadata": {
            "resourceVersion": rv,
            format!("$deleteFromPrimitiveList/finalizers"): [finalizer],
        }});
        let r = self
            .kube
            .patch(
                node.res,
                node.namespace.as_deref(),
                &node.name,
                PatchType::Strategic,
                &patch,
                None,
            )
            .await
            .map(|_| ());
        match r {
            Err(e) if e.code == 404 => Ok(()),
            other => other.map_err(api_error("removing a finalizer of", node)),
        }
    }

    /// An owner deleted in foreground: its dependents are collected (they see it
    /// waiting); once no blocking dependent is left, its finalizer goes.
    async fn foreground(&self, uid: &str) -> Result<(), GcError> {
        let (node, blocking) = {
            let g = self.sink.graph();
            let Some(node) = g.get(uid).cloned() else {
                return Ok(());
            };
            if !node.foreground {
                return Ok(());
            }
            let blocking: Vec<(String, Node)> = g
                .dependents(uid)
                .into_iter()
                .filter(|(_, d)| !foreground_done(d.ref_to(uid)))
                .collect();
            (node, blocking)
        };
        if blocking.is_empty() {
            tracing::debug!(kind = node.res.kind, name = %node.name, "dependents gone; finishing foreground deletion");
            return self.remove_finalizer(&node, uid, FOREGROUND).await;
        }
        let work = blocking
            .into_iter()
            .filter(|(_, d)| !d.deleting)
            .map(|(d, _)| Work::AttemptDelete(d))
            .collect();
        self.sink.enqueue(work);
        Ok(())
    }

    /// An owner deleted with orphaning: its dependents lose their reference to it,
    /// then its finalizer goes.
    async fn orphan(&self, uid: &str) -> Result<(), GcError> {
        let (node, dependents) = {
            let g = self.sink.graph();
            let Some(node) = g.get(uid).cloned() else {
                return Ok(());
            };
            if !node.orphan {
                return Ok(());
            }
            (node, g.dependents(uid))
        };
        let uids = [uid.to_string()];
        for (dep_uid, d) in &dependents {
            self.remove_refs(d, dep_uid, &uids).await?;
        }
        self.remove_finalizer(&node, uid, ORPHAN).await
    }
}
