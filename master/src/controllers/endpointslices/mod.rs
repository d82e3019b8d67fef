//! The EndpointSlice controller: for every Service with a selector,
//! `discovery.k8s.io/v1` EndpointSlices (IPv4, at most 100 endpoints each, owned
//! by the Service, labelled `kubernetes.io/service-name` and managed by
//! `endpointslice-controller.k8s.io`) with each selected pod's address,
//! conditions, node, zone and ports. Slices are updated in place where possible.
//!
//! The slice cache may lag behind this controller's own writes; a sync waits
//! until it has caught up (the `Expectations`), so slices are never created twice.

pub mod compute;
#[cfg(test)]
mod tests;

use super::endpoints::compute::selector;
use super::endpoints::tracker::{self, ServicePods};
use super::informer::{key, split_key};
use super::queue::{resync_every, run_workers, Queue};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, ApiError, Deletion, Kube};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 4;
/// How long a write may take to show in the cache before it is no longer waited for.
const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(10);
const ZONE: &str = "topology.kubernetes.io/zone";

#[derive(Debug, thiserror::Error)]
pub enum SliceError {
    #[error("{what} endpointslices of {key}: {error}")]
    Api {
        what: &'static str,
        key: String,
        error: ApiError,
    },
    #[error("encoding an endpointslice of {key}: {error}")]
    Encode {
        key: String,
        error: serde_json::Error,
    },
    #[error("the endpointslice cache has not caught up with the writes for {0}")]
    Stale(String),
}

/// This controller's writes not yet seen in the slice cache, per service:
/// slice name → the resourceVersion written (None: deleted) and when.
#[derive(Default)]
pub struct Expectations {
    inner: Mutex<HashMap<String, Pending>>,
}

/// Slice name → the resourceVersion written (None: deleted) and when.
type Pending = HashMap<String, (Option<i64>, Instant)>;

fn rv_of(s: &EndpointSlice) -> i64 {
    s.metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, svc: &str, name: &str, rv: Option<i64>) {
        self.lock()
            .entry(svc.to_string())
            .or_default()
            .insert(name.to_string(), (rv, Instant::now()));
    }

    /// True when the cache shows every write recorded for `svc`.
    fn satisfied(&self, svc: &str, cached: impl Fn(&str) -> Option<Arc<EndpointSlice>>) -> bool {
        let mut all = self.lock();
        let Some(m) = all.get_mut(svc) else {
            return true;
        };
        m.retain(|name, (rv, at)| {
            if at.elapsed() > EXPECTATION_TIMEOUT {
                return false;
            }
            let seen = match (rv, cached(name)) {
                (Some(rv), Some(s)) => rv_of(&s) >= *rv,
                (Some(_), None) => false,
                (None, c) => c.is_none(),
            };
            !seen
        });
        let done = m.is_empty();
        if done {
            all.remove(svc);
        }
        done
    }
}

/// The managed slices of the service `ns/name` in the cache.
fn slices_of(informers: &Informers, ns: Option<&str>, name: &str) -> Vec<Arc<EndpointSlice>> {
    informers
        .endpointslices
        .list()
        .into_iter()
        .filter(|s| {
            let labels = s.metadata.labels.as_ref();
            s.metadata.namespace.as_deref() == ns
                && labels
                    .and_then(|l| l.get(compute::SERVICE_NAME))
                    .map(String::as_str)
                    == Some(name)
                && labels
                    .and_then(|l| l.get(compute::MANAGED_BY))
                    .map(String::as_str)
                    == Some(compute::CONTROLLER)
        })
        .collect()
}

/// Starts the controller.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let kube = kube.with_manager("endpointslice-controller");
    let queue = Queue::new();
    let tracker = ServicePods::new(informers.pods.clone());
    tracker::feed(tracker.clone(), informers, queue.clone());
    // A managed slice changed (ours showing up, or someone else's edit): look again.
    let mut slices = informers.endpointslices.subscribe();
    let q = queue.clone();
    tokio::spawn(async move {
        while let Some(c) = slices.recv().await {
            let s = c.object();
            let labels = s.metadata.labels.as_ref();
            if labels
                .and_then(|l| l.get(compute::MANAGED_BY))
                .map(String::as_str)
                != Some(compute::CONTROLLER)
            {
                continue;
            }
            if let Some(svc) = labels.and_then(|l| l.get(compute::SERVICE_NAME)) {
                q.add(key(s.metadata.namespace.as_deref(), svc));
            }
        }
    });
    let t = tracker.clone();
    resync_every(queue.clone(), options.resync, move || t.services());
    let informers = informers.clone();
    let expectations = Arc::new(Expectations::default());
    run_workers(queue, WORKERS, "endpointslice-controller", move |key| {
        let (kube, informers, tracker, exp) = (
            kube.clone(),
            informers.clone(),
            tracker.clone(),
            expectations.clone(),
        );
        async move { sync(&kube, &informers, &tracker, &exp, &key).await }
    });
}

/// Brings the slices of the service `key` in line with its pods.
pub async fn sync(
    kube: &Kube,
    informers: &Informers,
    tracker: &ServicePods,
    expectations: &Expectations,
    svc_key: &str,
) -> Result<(), SliceError> {
    let res = crud_resource("discovery.k8s.io", "endpointslices");
    let (ns, name) = split_key(svc_key);
    if !expectations.satisfied(svc_key, |slice| {
        informers.endpointslices.get(&key(ns, slice))
    }) {
        return Err(SliceError::Stale(svc_key.to_string()));
    }
    let err = |what| {
        move |error| SliceError::Api {
            what,
            key: svc_key.to_string(),
            error,
        }
    };
    let encode = |s: &EndpointSlice| {
        serde_json::to_value(s).map_err(|error| SliceError::Encode {
            key: svc_key.to_string(),
            error,
        })
    };
    let existing = slices_of(informers, ns, name);
    let Some(svc) = informers.services.get(svc_key) else {
        // Also the garbage collector's job (they are owned); no need to wait for it.
        for s in existing {
            let slice = s.metadata.name.as_deref().unwrap_or("");
            match kube.delete(res, ns, slice, Deletion::default()).await {
                Err(e) if e.code != 404 => return Err(err("deleting")(e)),
                _ => expectations.record(svc_key, slice, None),
            }
        }
        return Ok(());
    };
    if selector(&svc).is_none() {
        return Ok(());
    }
    let zone_of = |node: &str| {
        informers
            .nodes
            .get(node)
            .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE).cloned())
    };
    let desired = compute::desired(&svc, &tracker.pods_of(svc_key), zone_of);
    let plan = compute::plan(&svc, desired, &existing, compute::MAX_ENDPOINTS);
    let written = |v: &Value| {
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rv = v
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|r| r.parse().ok());
        expectations.record(svc_key, &name, rv);
    };
    for s in &plan.create {
        let created = kube
            .create(res, ns, encode(s)?)
            .await
            .map_err(err("creating"))?;
        written(&created);
    }
    for s in &plan.update {
        let updated = kube
            .update(res, encode(s)?)
            .await
            .map_err(err("updating"))?;
        written(&updated);
    }
    for slice in &plan.delete {
        match kube.delete(res, ns, slice, Deletion::default()).await {
            Err(e) if e.code != 404 => return Err(err("deleting")(e)),
            _ => expectations.record(svc_key, slice, None),
        }
    }
    Ok(())
}
