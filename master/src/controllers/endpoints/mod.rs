//! The endpoints controller: for every Service with a selector, an `Endpoints`
//! object of the same name listing the selected pods' addresses (ready ones in
//! `addresses`, the others in `notReadyAddresses`) per resolved port set. Services
//! without a selector are left to their users; a deleted Service's Endpoints go.
//! Writes only when the object would change.

pub mod compute;
#[cfg(test)]
pub(crate) mod tests;
pub mod tracker;

use super::informer::split_key;
use super::queue::{resync_every, run_workers, Queue};
use super::{Informers, Options};
use crate::apiserver::{crud_resource, ApiError, Deletion, Kube};
use std::sync::Arc;
use tracker::ServicePods;

const WORKERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("{what} endpoints {key}: {error}")]
    Api {
        what: &'static str,
        key: String,
        error: ApiError,
    },
    #[error("encoding endpoints {key}: {error}")]
    Encode {
        key: String,
        error: serde_json::Error,
    },
}

/// Starts the controller.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) {
    let kube = kube.with_manager("endpoint-controller");
    let queue = Queue::new();
    let tracker = ServicePods::new(informers.pods.clone());
    tracker::feed(tracker.clone(), informers, queue.clone());
    // Someone deleted an Endpoints object this controller keeps: write it again.
    let mut endpoints = informers.endpoints.subscribe();
    let (q, t) = (queue.clone(), tracker.clone());
    tokio::spawn(async move {
        while let Some(c) = endpoints.recv().await {
            if let super::informer::Change::Deleted(e) = c {
                let k = super::informer::key(
                    e.metadata.namespace.as_deref(),
                    e.metadata.name.as_deref().unwrap_or(""),
                );
                if t.has_selector(&k) {
                    q.add(k);
                }
            }
        }
    });
    let t = tracker.clone();
    resync_every(queue.clone(), options.resync, move || t.services());
    let informers = informers.clone();
    run_workers(queue, WORKERS, "endpoint-controller", move |key| {
        let (kube, informers, tracker) = (kube.clone(), informers.clone(), tracker.clone());
        async move { sync(&kube, &informers, &tracker, &key).await }
    });
}

/// Brings the Endpoints of the service `key` in line with its pods.
pub async fn sync(
    kube: &Kube,
    informers: &Informers,
    tracker: &ServicePods,
    key: &str,
) -> Result<(), EndpointsError> {
    let res = crud_resource("", "endpoints");
    let (ns, name) = split_key(key);
    let err = |what| {
        move |error| EndpointsError::Api {
            what,
            key: key.to_string(),
            error,
        }
    };
    let Some(svc) = informers.services.get(key) else {
        if informers.endpoints.get(key).is_some() {
            match kube.delete(res, ns, name, Deletion::default()).await {
                Err(e) if e.code != 404 => return Err(err("deleting")(e)),
                _ => {}
            }
        }
        return Ok(());
    };
    if compute::selector(&svc).is_none() {
        return Ok(());
    }
    let want = compute::desired(&svc, &tracker.pods_of(key));
    let encode = |e| {
        serde_json::to_value(e).map_err(|error| EndpointsError::Encode {
            key: key.to_string(),
            error,
        })
    };
    match informers.endpoints.get(key) {
        None => {
            kube.create(res, ns, encode(&want)?)
                .await
                .map_err(err("creating"))?;
        }
        Some(current) if compute::up_to_date(&current, &want) => {}
        Some(current) => {
            let updated = compute::merged(&current, &want);
            kube.update(res, encode(&updated)?)
                .await
                .map_err(err("updating"))?;
        }
    }
    Ok(())
}
