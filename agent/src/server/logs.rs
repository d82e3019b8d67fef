//! `/containerLogs/{ns}/{pod}/{container}` on the authenticated port: finds the
//! pod's uid in the node's pods, checks the container is one of the pod's, and
//! streams the log file (see [`crate::logs`]) as the response body.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::mpsc;

use super::routes::plain;
use super::{Body, Context, NodeView};
use crate::logs::{self, LogOptions};

/// Chunks in flight between the file reader and the connection.
const CHANNEL_CHUNKS: usize = 4;

fn pod_containers(pod: &Pod) -> impl Iterator<Item = &str> {
    let spec = pod.spec.as_ref();
    let main = spec
        .into_iter()
        .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()));
    let init = spec
        .into_iter()
        .flat_map(|s| s.init_containers.iter().flatten().map(|c| c.name.as_str()));
    let eph = spec.into_iter().flat_map(|s| {
        s.ephemeral_containers
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
    });
    main.chain(init).chain(eph)
}

/// Whether the container is still running, as far as the node's view says:
/// false once the pod is gone or the container's state is not running.
fn still_running(view: &dyn NodeView, uid: &str, container: &str) -> bool {
    let pods = view.pods();
    let Some(pod) = pods.iter().find(|p| p.metadata.uid.as_deref() == Some(uid)) else {
        return false;
    };
    let status = pod.status.as_ref().and_then(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|cs| cs.name == container)
    });
    match status.and_then(|cs| cs.state.as_ref()) {
        // Not reported yet: its file exists, so it has started.
        None => true,
        Some(state) => state.running.is_some(),
    }
}

pub(crate) async fn container_logs(
    ctx: &Arc<Context>,
    rest: &str,
    query: Option<&str>,
) -> Response<Body> {
    let parts: Vec<&str> = rest.split('/').collect();
    let [namespace, name, container] = parts[..] else {
        return plain(
            StatusCode::BAD_REQUEST,
            "expected /containerLogs/{namespace}/{pod}/{container}",
        );
    };
    let opts = match LogOptions::from_query(query, jiff::Timestamp::now()) {
        Ok(o) => o,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    let pods = ctx.view.pods();
    let Some(pod) = pods.iter().find(|p| {
        p.metadata.namespace.as_deref() == Some(namespace)
            && p.metadata.name.as_deref() == Some(name)
    }) else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("pod {namespace:?}/{name:?} does not exist"),
        );
    };
    if !pod_containers(pod).any(|c| c == container) {
        return plain(
            StatusCode::NOT_FOUND,
            format!("container {container:?} is not valid for pod {name:?}"),
        );
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    drop(pods);
    let dir = logs::container_dir(&ctx.log_root, namespace, name, &uid, container);
    let file = match logs::locate(&dir, name, container, opts.previous) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return plain(StatusCode::NOT_FOUND, e),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
    };

    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let view = ctx.view.clone();
    let streams = ctx.clone();
    let container = container.to_string();
    streams.log_streams.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let check = {
            let view = view.clone();
            move || still_running(view.as_ref(), &uid, &container)
        };
        if let Err(e) = logs::stream(file, &opts, tx, check).await {
            tracing::warn!(error = %e, "streaming a container log failed");
        }
        streams.log_streams.fetch_sub(1, Ordering::Relaxed);
    });
    let mut resp = Response::new(Body::Channel(rx));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
