//! The Kubernetes-compatible API server: HTTPS (HTTP/1.1 and HTTP/2) on one port,
//! every request authenticated, routed by path to discovery, health, metrics or the
//! verbs on resources. Objects live in a `Store`; this module owns what the API means
//! (defaults, validation, semantics), the store owns durability and revisions.

mod crud;
mod defaults;
mod discovery;
mod http;
mod internal;
mod join;
mod metrics;
mod namespaces;
mod objects;
mod podlogs;
mod protobuf;
mod route;
mod status;
mod subresources;
pub mod table;
mod watch;

pub use self::http::MAX_BODY;
pub use api::cidr::Cidr;
pub use crud::PatchType;
pub use discovery::{KUBE_MAJOR, KUBE_MINOR};
pub use internal::{Deletion, Kube};
pub use metrics::CommitStats;
pub use status::ApiError;

use self::http::{bytes_response, error_response, json_response, read_body, Body};
use ::http::{header, Method, Request, Response};
use api::resources::{self, Resource};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use route::{Query, Route, Target};
use rustls::pki_types::CertificateDer;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

use crate::store::Store;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the API server.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address clients are told to use (`host:port`).
    pub advertise: String,
    pub service_cidr: Cidr,
    /// bosun's own version, shown in `/version`.
    pub version: String,
}

/// Decides who sent a request: from the client certificates of its connection and
/// its `Authorization` header. None means unauthenticated.
pub type Authenticate =
    Arc<dyn Fn(Option<&[CertificateDer<'static>]>, Option<&str>) -> Option<String> + Send + Sync>;

/// Returns the store's commit statistics for `/metrics`.
pub type StoreStats = Arc<dyn Fn() -> (CommitStats, u64) + Send + Sync>;

pub struct Server {
    store: Arc<dyn Store>,
    metrics: metrics::Metrics,
    config: Config,
    store_stats: Option<StoreStats>,
    /// tolerationSeconds of the not-ready/unreachable tolerations new pods get.
    toleration_seconds: std::sync::atomic::AtomicI64,
    /// Join signing and the TLS client toward agents, once set.
    nodes: std::sync::OnceLock<Arc<crate::auth::NodeAuthority>>,
    me: Weak<Server>,
}

/// A resource of the table by group and plural (a programming error if absent).
pub fn crud_resource(group: &str, plural: &str) -> &'static Resource {
    resources::RESOURCES
        .iter()
        .find(|r| r.group == group && r.plural == plural)
        .expect("resource is in the table")
}

impl Server {
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        store_stats: Option<StoreStats>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            store,
            metrics: metrics::Metrics::default(),
            config,
            store_stats,
            toleration_seconds: 300.into(),
            nodes: std::sync::OnceLock::new(),
            me: me.clone(),
        })
    }

    /// Sets the tolerationSeconds of the not-ready/unreachable tolerations that
    /// new pods get (`--default-unreachable-toleration-seconds`, 300 unless set).
    pub fn set_default_toleration_seconds(&self, seconds: i64) {
        self.toleration_seconds
            .store(seconds, std::sync::atomic::Ordering::Relaxed);
    }

    /// Enables `/bosun/v1/` (node join) and proxying pod logs to agents, with
    /// `nodes` signing and connecting. Only the first call has an effect.
    pub fn set_node_authority(&self, nodes: Arc<crate::auth::NodeAuthority>) {
        let _ = self.nodes.set(nodes);
    }

    fn node_authority(&self) -> Option<&crate::auth::NodeAuthority> {
        self.nodes.get().map(|n| &**n)
    }

    fn default_toleration_seconds(&self) -> i64 {
        self.toleration_seconds
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Serves HTTPS on `listener` until the task is dropped.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        authenticate: Authenticate,
    ) -> std::io::Result<()> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let server = self.clone();
            let authenticate = authenticate.clone();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
                let certs: Option<Vec<CertificateDer<'static>>> =
                    tls.get_ref().1.peer_certificates().map(|c| c.to_vec());
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let server = server.clone();
                    let auth_header = req
                        .headers()
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let user = authenticate(certs.as_deref(), auth_header.as_deref());
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req, user).await) }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(1000)
                    .keep_alive_interval(Some(Duration::from_secs(30)));
                if let Err(e) = builder
                    .serve_connection_with_upgrades(TokioIo::new(tls), service)
                    .await
                {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
            });
        }
    }

    /// Answers one request from an authenticated (or not) user.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        user: Option<String>,
    ) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let route = route::parse(&path);
        let q = Query::parse(req.uri().query());
        let (verb, resource) = metric_labels(&method, &route, &q);
        if path.starts_with(join::PREFIX) {
            // Node join: partly unauthenticated, so before the check below.
            let resp = self.bosun_v1(req, user, &q).await;
            self.metrics
                .observe(verb, &resource, resp.status().as_u16(), started.elapsed());
            return resp;
        }
        let resp = match user {
            None => error_response(&ApiError::unauthorized()),
            Some(user) => {
                tracing::debug!(%method, %path, %user, "request");
                match self.route(req, route, &q).await {
                    Ok(r) => r,
                    Err(e) => error_response(&e),
                }
            }
        };
        self.metrics
            .observe(verb, &resource, resp.status().as_u16(), started.elapsed());
        resp
    }

    async fn route(
        &self,
        req: Request<Incoming>,
        route: Route,
        q: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let get_only = |m: &Method| {
            if m == Method::GET || m == Method::HEAD {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed())
            }
        };
        match route {
            Route::Version => {
                get_only(req.method())?;
                Ok(json_response(
                    200,
                    &discovery::version(&self.config.version),
                ))
            }
            Route::Healthz(which) => {
                get_only(req.method())?;
                if which == "readyz" {
                    // Ready when the store answers.
                    self.store
                        .get("/bosun/readyz")
                        .await
                        .map_err(|e| ApiError::unavailable(format!("store: {e}")))?;
                }
                Ok(bytes_response(200, "text/plain; charset=utf-8", "ok"))
            }
            Route::Metrics => {
                get_only(req.method())?;
                let (stats, watchers) = match &self.store_stats {
                    Some(f) => {
                        let (s, w) = f();
                        (Some(s), Some(w))
                    }
                    None => (None, None),
                };
                Ok(bytes_response(
                    200,
                    "text/plain; version=0.0.4",
                    self.metrics.render(stats, watchers),
                ))
            }
            Route::OpenApiV2 => {
                get_only(req.method())?;
                Ok(bytes_response(
                    200,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    Bytes::new(),
                ))
            }
            Route::OpenApiV3 | Route::NotFound => Err(ApiError::path_not_found()),
            Route::CoreVersions => {
                get_only(req.method())?;
                match discovery::wants_aggregated(&accept) {
                    Some(v) => Ok(aggregated_response(discovery::aggregated(true, v), v)),
                    None => Ok(json_response(
                        200,
                        &discovery::core_versions(&self.config.advertise),
                    )),
                }
            }
            Route::Groups => {
                get_only(req.method())?;
                match discovery::wants_aggregated(&accept) {
                    Some(v) => Ok(aggregated_response(discovery::aggregated(false, v), v)),
                    None => Ok(json_response(200, &discovery::group_list())),
                }
            }
            Route::Group(g) => {
                get_only(req.method())?;
                discovery::group(&g)
                    .map(|d| json_response(200, &d))
                    .ok_or_else(ApiError::path_not_found)
            }
            Route::ResourceList { group, version } => {
                get_only(req.method())?;
                Ok(json_response(
                    200,
                    &discovery::resource_list(&group, &version),
                ))
            }
            Route::Resource(t) => self.resource(req, t, q, &accept).await,
        }
    }

    async fn resource(
        &self,
        req: Request<Incoming>,
        t: Target,
        q: &Query,
        accept: &str,
    ) -> Result<Response<Body>, ApiError> {
        let method = req.method().clone();
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let table = table::wants_table(accept);
        let ct = content_type.as_deref();
        let watching = t.watch_prefix || q.flag("watch");
        let writes = matches!(
            method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        );
        if writes && crud::dry_run(q) {
            return Err(ApiError::bad_request(
                "dryRun is not supported by bosun yet",
            ));
        }
        let Some(server) = self.me.upgrade() else {
            return Err(ApiError::unavailable("the server is shutting down"));
        };
        match (t.name.clone(), t.subresource.clone()) {
            (None, None) => match method {
                Method::GET if watching => watch::serve(server, &t, q, table).await,
                Method::GET => self.list(&t, q, table).await,
                Method::POST if t.res.plural == "bindings" => {
                    let body = read_body(req.into_body()).await?;
                    let v = self::http::parse_object(&body, ct)?;
                    let name = objects::name_of(&v).to_string();
                    let ns = t.namespace.clone().unwrap_or_default();
                    self.bind(&ns, &name, body, ct).await
                }
                Method::POST => {
                    let body = read_body(req.into_body()).await?;
                    self.create(&t, q, body, ct, &user_agent).await
                }
                Method::DELETE => {
                    let body = read_body(req.into_body()).await?;
                    self.delete_collection(&t, q, body).await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            (Some(name), None) => match method {
                Method::GET if watching => {
                    let q = q.with_field_selector(&format!("metadata.name={name}"));
                    let t = Target { name: None, ..t };
                    watch::serve(server, &t, &q, table).await
                }
                Method::GET => self.get(&t, &name, q, table).await,
                Method::PUT => {
                    let body = read_body(req.into_body()).await?;
                    self.update(&t, &name, q, body, ct, &user_agent).await
                }
                Method::PATCH => {
                    let body = read_body(req.into_body()).await?;
                    self.patch(&t, &name, q, body, ct, &user_agent).await
                }
                Method::DELETE => {
                    let body = read_body(req.into_body()).await?;
                    self.delete(&t, &name, q, body).await
                }
                _ => Err(ApiError::method_not_allowed()),
            },
            (Some(name), Some(sub)) => {
                if !t.res.has_subresource(&sub) {
                    return Err(ApiError::path_not_found());
                }
                match (sub.as_str(), method) {
                    ("status", Method::GET) => self.get(&t, &name, q, None).await,
                    ("status", Method::PUT) => {
                        let body = read_body(req.into_body()).await?;
                        self.update(&t, &name, q, body, ct, &user_agent).await
                    }
                    ("status", Method::PATCH) => {
                        let body = read_body(req.into_body()).await?;
                        self.patch(&t, &name, q, body, ct, &user_agent).await
                    }
                    ("finalize", Method::PUT) => {
                        let body = read_body(req.into_body()).await?;
                        self.finalize(&t, &name, body, ct).await
                    }
                    ("scale", m @ (Method::GET | Method::PUT | Method::PATCH)) => {
                        let body = read_body(req.into_body()).await?;
                        self.scale(&t, &name, &m, q, body, ct, &user_agent).await
                    }
                    ("binding", Method::POST) => {
                        let body = read_body(req.into_body()).await?;
                        let ns = t.namespace.clone().unwrap_or_default();
                        self.bind(&ns, &name, body, ct).await
                    }
                    ("log", Method::GET) => self.pod_log(&t, &name, q).await,
                    ("log" | "exec" | "attach" | "portforward", _) => {
                        self.pod_stream(&t, &name, &sub).await
                    }
                    _ => Err(ApiError::method_not_allowed()),
                }
            }
            (None, Some(_)) => Err(ApiError::path_not_found()),
        }
    }

    /// `PUT namespaces/{name}/finalize`: changes only `spec.finalizers`.
    async fn finalize(
        &self,
        t: &Target,
        name: &str,
        body: Bytes,
        ct: Option<&str>,
    ) -> Result<Response<Body>, ApiError> {
        let new = self::http::parse_object(&body, ct)?;
        let key = self.key(t, name);
        let (old, rev) = self.get_current(t.res, &key, name).await?;
        let mut updated = old.clone();
        updated["spec"]["finalizers"] = new
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(serde_json::json!([]));
        let stored = self
            .write_update(
                t.res, &key, name, updated, &old, rev, None, "finalize", false,
            )
            .await?;
        Ok(json_response(200, &stored))
    }
}

fn aggregated_response(doc: serde_json::Value, version: &str) -> Response<Body> {
    let ct = if version == "v2" {
        discovery::AGGREGATED_CONTENT_TYPE.to_string()
    } else {
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList".to_string()
    };
    bytes_response(200, &ct, serde_json::to_vec(&doc).unwrap_or_default())
}

/// The verb and resource labels of a request, as kube-apiserver's metrics name them.
fn metric_labels(method: &Method, route: &Route, q: &Query) -> (&'static str, String) {
    let resource = match route {
        Route::Resource(t) => match &t.subresource {
            Some(s) => format!("{}/{}", t.res.plural, s),
            None => t.res.plural.to_string(),
        },
        Route::NotFound => "unknown".into(),
        _ => String::new(),
    };
    let collection = matches!(route, Route::Resource(t) if t.name.is_none());
    let watch = matches!(route, Route::Resource(t) if t.watch_prefix) || q.flag("watch");
    let verb = match *method {
        Method::GET if watch => "WATCH",
        Method::GET if collection => "LIST",
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE if collection => "DELETECOLLECTION",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    (verb, resource)
}
