//! Where the garbage collector's graph comes from: the shared informers for the
//! kinds that have one, and for every other kind a metadata-only list and watch of
//! the store (each object decoded to its `metadata` alone, nothing else kept).

use super::graph::{Graph, PartialMeta, Work};
use crate::apiserver::{ApiError, Kube};
use crate::controllers::informer::{Change, Informer, Object};
use crate::controllers::queue::Queue;
use crate::controllers::Informers;
use crate::store::{EventType, Revision};
use api::resources::Resource;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The graph and the queue its changes feed.
pub struct Sink {
    pub graph: Mutex<Graph>,
    pub queue: Arc<Queue>,
}

impl Sink {
    pub fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enqueue(&self, work: Vec<Work>) {
        for w in work {
            self.queue.add(key(&w));
        }
    }

    fn upsert(&self, res: &'static Resource, meta: PartialMeta) {
        let work = self.graph().upsert(res, meta);
        self.enqueue(work);
    }

    fn remove(&self, uid: &str) {
        let work = self.graph().remove(uid);
        self.enqueue(work);
    }

    fn change<T: Object>(&self, res: &'static Resource, change: Change<T>) {
        match change {
            Change::Added(o) => self.upsert(res, o.gc_meta()),
            Change::Updated { old, new } => {
                if old.uid() != new.uid() {
                    self.remove(old.uid().unwrap_or(""));
                }
                self.upsert(res, new.gc_meta());
            }
            Change::Deleted(o) => self.remove(o.uid().unwrap_or("")),
        }
    }
}

/// The queue key of a piece of work.
pub fn key(w: &Work) -> String {
    match w {
        Work::AttemptDelete(u) => format!("d:{u}"),
        Work::Foreground(u) => format!("f:{u}"),
        Work::Orphan(u) => format!("o:{u}"),
    }
}

/// The work a queue key stands for.
pub fn parse_key(k: &str) -> Option<Work> {
    let (kind, uid) = k.split_once(':')?;
    let uid = uid.to_string();
    match kind {
        "d" => Some(Work::AttemptDelete(uid)),
        "f" => Some(Work::Foreground(uid)),
        "o" => Some(Work::Orphan(uid)),
        _ => None,
    }
}

/// Feeds `res` from its shared informer, if there is one: what the informer holds
/// is in the graph when this returns. False when `res` has no shared informer.
pub fn shared(informers: &Informers, res: &'static Resource, sink: &Arc<Sink>) -> bool {
    fn feed<T: Object>(inf: &Informer<T>, res: &'static Resource, sink: &Arc<Sink>) {
        let mut rx = inf.subscribe();
        // `subscribe` queued an Added for every cached object before returning.
        while let Ok(c) = rx.try_recv() {
            sink.change(res, c);
        }
        let sink = sink.clone();
        tokio::spawn(async move {
            while let Some(c) = rx.recv().await {
                sink.change(res, c);
            }
        });
    }
    match (res.group, res.plural) {
        ("", "pods") => feed(&informers.pods, res, sink),
        ("", "nodes") => feed(&informers.nodes, res, sink),
        ("", "namespaces") => feed(&informers.namespaces, res, sink),
        ("", "services") => feed(&informers.services, res, sink),
        ("", "endpoints") => feed(&informers.endpoints, res, sink),
        ("apps", "deployments") => feed(&informers.deployments, res, sink),
        ("apps", "replicasets") => feed(&informers.replicasets, res, sink),
        ("discovery.k8s.io", "endpointslices") => feed(&informers.endpointslices, res, sink),
        _ => return false,
    }
    true
}

/// Lists every object of `res` (metadata only).
async fn list(
    kube: &Kube,
    res: &'static Resource,
) -> Result<(Vec<PartialMeta>, Revision), ApiError> {
    let (items, rev) = kube.list_raw(res).await?;
    let metas = items
        .iter()
        .filter_map(|raw| match PartialMeta::decode(raw) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(resource = res.plural, error = %e, "undecodable object");
                None
            }
        })
        .collect();
    Ok((metas, rev))
}

/// Lists `res` into the graph (retrying until the store answers), then keeps it
/// current from a watch in a task of its own.
pub async fn metadata(kube: &Kube, res: &'static Resource, sink: &Arc<Sink>) {
    let rev = relist(kube, res, sink).await;
    let kube = kube.clone();
    let sink = sink.clone();
    tokio::spawn(async move {
        let mut rev = rev;
        loop {
            watch(&kube, res, &sink, rev).await;
            rev = relist(&kube, res, &sink).await;
        }
    });
}

async fn relist(kube: &Kube, res: &'static Resource, sink: &Sink) -> Revision {
    loop {
        match list(kube, res).await {
            Ok((metas, rev)) => {
                let work = sink.graph().replace(res, metas);
                sink.enqueue(work);
                return rev;
            }
            Err(e) => {
                tracing::warn!(resource = res.plural, error = %e, "garbage collector list failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Applies store events of `res` after `rev` until the watch ends (e.g. 410).
async fn watch(kube: &Kube, res: &'static Resource, sink: &Sink, rev: Revision) {
    let mut watcher = match kube.watch(res, rev) {
        Ok(w) => w,
        Err(e) => {
            tracing::debug!(resource = res.plural, error = %e, "garbage collector watch");
            tokio::time::sleep(Duration::from_secs(1)).await;
            return;
        }
    };
    while let Some(Ok(ev)) = watcher.next().await {
        let meta = match PartialMeta::decode(&ev.value) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(resource = res.plural, error = %e, "undecodable event");
                continue;
            }
        };
        match ev.event_type {
            EventType::Deleted => sink.remove(&meta.uid),
            _ => sink.upsert(res, meta),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_round_trip() {
        for w in [
            Work::AttemptDelete("u-1".into()),
            Work::Foreground("u-2".into()),
            Work::Orphan("u-3".into()),
        ] {
            assert_eq!(parse_key(&key(&w)), Some(w));
        }
        assert_eq!(parse_key("x"), None);
    }
}
