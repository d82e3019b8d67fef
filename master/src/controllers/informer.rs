//! A shared informer: one list-then-watch of a resource straight from the store,
//! kept as a cache of typed objects (k8s-openapi types, or for pods the compact
//! `lite::Pod`: memory per cached pod is in docs/PERF.md), with change
//! notifications for every subscriber. After a watch
//! falls behind (410) it lists again and tells subscribers what changed meanwhile.

use crate::apiserver::Kube;
use crate::controllers::gc::graph::PartialMeta;
use crate::store::{EventType, Revision, StoreError};
use api::resources::Resource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// A change to one cached object.
#[derive(Debug)]
pub enum Change<T> {
    Added(Arc<T>),
    Updated { old: Arc<T>, new: Arc<T> },
    Deleted(Arc<T>),
}

impl<T> Change<T> {
    /// The object as it is now (or was, when deleted).
    pub fn object(&self) -> &Arc<T> {
        match self {
            Change::Added(o) | Change::Deleted(o) => o,
            Change::Updated { new, .. } => new,
        }
    }
}

impl<T> Clone for Change<T> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(o) => Change::Added(o.clone()),
            Change::Updated { old, new } => Change::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Change::Deleted(o) => Change::Deleted(o.clone()),
        }
    }
}

/// What the informer needs of a cached type.
pub trait Object: DeserializeOwned + Send + Sync + 'static {
    fn name(&self) -> Option<&str>;
    fn namespace(&self) -> Option<&str>;
    fn uid(&self) -> Option<&str>;
    fn resource_version(&self) -> Option<&str>;

    /// What the garbage collector keeps of the object.
    fn gc_meta(&self) -> PartialMeta;

    /// Drops what no controller reads before the object is cached, at least its
    /// `managedFields` (half of a typed k8s-openapi pod's memory), as client-go
    /// informers' transforms do.
    fn strip(&mut self);

    /// `namespace/name`, or `name` for cluster-scoped objects: the cache key.
    fn cache_key(&self) -> String {
        key(self.namespace(), self.name().unwrap_or(""))
    }
}

impl<T> Object for T
where
    T: k8s_openapi::Metadata<Ty = ObjectMeta> + DeserializeOwned + Send + Sync + 'static,
{
    fn name(&self) -> Option<&str> {
        self.metadata().name.as_deref()
    }

    fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    fn uid(&self) -> Option<&str> {
        self.metadata().uid.as_deref()
    }

    fn resource_version(&self) -> Option<&str> {
        self.metadata().resource_version.as_deref()
    }

    fn gc_meta(&self) -> PartialMeta {
        PartialMeta::from_meta(self.metadata())
    }

    fn strip(&mut self) {
        self.metadata_mut().managed_fields = None;
    }
}

/// Decodes a stored object for the cache.
fn decode<T: Object>(raw: &[u8]) -> serde_json::Result<T> {
    let mut obj: T = serde_json::from_slice(raw)?;
    obj.strip();
    Ok(obj)
}

/// The key of an object in a namespace, or of a cluster-scoped one.
pub fn key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a cache key into (namespace, name).
pub fn split_key(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

pub struct Informer<T> {
    res: &'static Resource,
    cache: RwLock<HashMap<String, Arc<T>>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change<T>>>>,
    synced: watch::Sender<bool>,
}

impl<T: Object> Informer<T> {
    /// Starts listing and watching `res`.
    pub fn start(kube: Kube, res: &'static Resource) -> Arc<Self> {
        let (synced, _) = watch::channel(false);
        let inf = Arc::new(Self {
            res,
            cache: RwLock::new(HashMap::new()),
            subscribers: Mutex::new(Vec::new()),
            synced,
        });
        let me = inf.clone();
        tokio::spawn(async move { me.run(kube).await });
        inf
    }

    pub fn resource(&self) -> &'static Resource {
        self.res
    }

    /// Waits until the first list is in the cache.
    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Future changes, after an `Added` for every object already cached.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<T>> {
        let (tx, rx) = mpsc::unbounded_channel();
        // Under the subscribers lock, so no change slips between replay and join.
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for obj in self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
        {
            let _ = tx.send(Change::Added(obj.clone()));
        }
        subs.push(tx);
        rx
    }

    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub fn list(&self) -> Vec<Arc<T>> {
        self.cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.cache.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn apply(&self, key: String, new: Option<Arc<T>>) {
        // Held across the cache change and the notification, as in `subscribe`, so
        // a new subscriber sees every change exactly once.
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        let old = {
            let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
            match &new {
                Some(n) => cache.insert(key, n.clone()),
                None => cache.remove(&key),
            }
        };
        let change = match (old, new) {
            (None, Some(n)) => Change::Added(n),
            (Some(o), Some(n)) => Change::Updated { old: o, new: n },
            (Some(o), None) => Change::Deleted(o),
            (None, None) => return,
        };
        subs.retain(|tx| tx.send(change.clone()).is_ok());
    }

    async fn run(self: Arc<Self>, kube: Kube) {
        loop {
            let rev = match self.relist(&kube).await {
                Ok(rev) => rev,
                Err(e) => {
                    tracing::warn!(resource = self.res.plural, error = %e, "informer list failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.synced.send_replace(true);
            if let Err(e) = self.watch_from(&kube, rev).await {
                tracing::debug!(resource = self.res.plural, error = %e, "informer watch ended; listing again");
            }
        }
    }

    /// Lists and brings the cache in line with the store; returns the revision.
    async fn relist(&self, kube: &Kube) -> Result<Revision, crate::apiserver::ApiError> {
        let (items, rev) = kube.list_raw(self.res).await?;
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        for raw in items {
            match decode::<T>(&raw) {
                Ok(obj) => {
                    let key = obj.cache_key();
                    seen.insert(key.clone());
                    let unchanged = self
                        .get(&key)
                        .is_some_and(|o| o.resource_version() == obj.resource_version());
                    if !unchanged {
                        self.apply(key, Some(Arc::new(obj)));
                    }
                }
                Err(e) => {
                    tracing::warn!(resource = self.res.plural, error = %e, "undecodable object")
                }
            }
        }
        let gone: Vec<String> = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.apply(key, None);
        }
        Ok(rev)
    }

    async fn watch_from(&self, kube: &Kube, rev: Revision) -> Result<(), StoreError> {
        let mut watcher = kube.watch(self.res, rev).map_err(|_| StoreError::Closed)?;
        while let Some(ev) = watcher.next().await {
            let ev = ev?;
            let obj: T = match decode(&ev.value) {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(resource = self.res.plural, error = %e, "undecodable event");
                    continue;
                }
            };
            let key = obj.cache_key();
            match ev.event_type {
                EventType::Deleted => self.apply(key, None),
                _ => self.apply(key, Some(Arc::new(obj))),
            }
        }
        Ok(())
    }
}
