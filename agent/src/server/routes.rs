//! Request routing of both ports. Everything is a read: other methods get 405,
//! unknown paths 404, and the log/exec/run endpoints 403 on the read-only port.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Incoming;
use hyper::Request;

use super::host::{NodeSample, ProcessSample};
use super::summary::{summary, SummaryInput};
use super::{machine, metrics, Body, Context, Port};

pub(crate) fn text(
    code: StatusCode,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = code;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    resp
}

pub(crate) fn plain(code: StatusCode, msg: impl std::fmt::Display) -> Response<Body> {
    text(code, "text/plain; charset=utf-8", format!("{msg}\n"))
}

fn json(value: &impl serde::Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => text(StatusCode::OK, "application/json", body),
        Err(e) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding JSON: {e}"),
        ),
    }
}

/// Runs blocking host reads off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// The endpoints that exist, by path.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Healthz,
    Pods,
    Spec,
    Summary,
    Metrics,
    ResourceMetrics,
    ContainerLogs(&'a str),
    /// exec, run, attach, portForward, logs of the node: never on this agent's
    /// read-only port, and not (yet) on the authenticated one.
    Privileged,
    NotFound,
}

fn route(path: &str) -> Route<'_> {
    match path.trim_end_matches('/') {
        "/healthz" => Route::Healthz,
        "/pods" => Route::Pods,
        "/spec" => Route::Spec,
        "/stats/summary" => Route::Summary,
        "/metrics" => Route::Metrics,
        "/metrics/resource" => Route::ResourceMetrics,
        p => {
            if let Some(rest) = p.strip_prefix("/containerLogs/") {
                Route::ContainerLogs(rest)
            } else if [
                "/exec/",
                "/run/",
                "/attach/",
                "/portForward/",
                "/logs/",
                "/debug/",
            ]
            .iter()
            .any(|pre| p.starts_with(pre) || format!("{p}/") == *pre)
            {
                Route::Privileged
            } else {
                Route::NotFound
            }
        }
    }
}

/// Answers one request that came in on `port`.
pub(crate) async fn handle(
    ctx: &Arc<Context>,
    port: Port,
    req: Request<Incoming>,
) -> Response<Body> {
    if port == Port::Denied {
        return plain(
            StatusCode::FORBIDDEN,
            "Forbidden: only the master (group system:masters) may use this port",
        );
    }
    let route = route(req.uri().path());
    if route == Route::NotFound {
        return plain(StatusCode::NOT_FOUND, "404 page not found");
    }
    if port == Port::ReadOnly && matches!(route, Route::ContainerLogs(_) | Route::Privileged) {
        return plain(StatusCode::FORBIDDEN, "this port is read-only");
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let ctx = ctx.clone();
    match route {
        Route::Healthz => text(StatusCode::OK, "text/plain; charset=utf-8", "ok"),
        Route::Pods => {
            let items = ctx.view.pods();
            json(&serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            }))
        }
        Route::Spec => match blocking(move || machine::machine_info(&ctx.host)).await {
            Some(info) => json(&info),
            None => plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading machine info failed",
            ),
        },
        Route::Summary => {
            let built = blocking(move || {
                let node = NodeSample::read(&ctx.host);
                let statfs = |i: usize| {
                    let path = ctx.host.filesystems.get(i)?;
                    ctx.host.statfs.as_ref()?(path)
                };
                let pods = ctx.view.pods();
                let stats = ctx.view.pod_stats();
                let name = ctx.view.node_name();
                let input = SummaryInput {
                    node_name: &name,
                    node: &node,
                    node_fs: statfs(0),
                    image_fs: statfs(1),
                    pods: &pods,
                    stats: &stats,
                };
                summary(&input, &ctx.state)
            })
            .await;
            match built {
                Some(v) => json(&v),
                None => plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "building the summary failed",
                ),
            }
        }
        Route::Metrics => {
            let pods = ctx.view.pods();
            let process = blocking(move || ProcessSample::read(&ctx.host))
                .await
                .unwrap_or_default();
            text(
                StatusCode::OK,
                metrics::CONTENT_TYPE,
                metrics::agent_metrics(&pods, &process),
            )
        }
        Route::ResourceMetrics => {
            let body = blocking(move || {
                let node = NodeSample::read(&ctx.host);
                metrics::resource_metrics(&node, &ctx.view.pods(), &ctx.view.pod_stats())
            })
            .await
            .unwrap_or_default();
            text(StatusCode::OK, metrics::CONTENT_TYPE, body)
        }
        Route::ContainerLogs(rest) => {
            super::logs::container_logs(&ctx, rest, req.uri().query()).await
        }
        // exec/run/attach are not served by this agent yet.
        Route::Privileged | Route::NotFound => plain(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_known_paths() {
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/spec/"), Route::Spec);
        assert_eq!(route("/stats/summary"), Route::Summary);
        assert_eq!(route("/metrics/resource"), Route::ResourceMetrics);
        assert_eq!(
            route("/containerLogs/ns/p/c"),
            Route::ContainerLogs("ns/p/c")
        );
        assert_eq!(route("/exec/ns/p/c"), Route::Privileged);
        assert_eq!(route("/run"), Route::Privileged);
        assert_eq!(route("/nope"), Route::NotFound);
        assert_eq!(route("/metrics/cadvisor"), Route::NotFound);
    }
}
