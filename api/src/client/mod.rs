//! A small async HTTPS client for the Kubernetes API, used by the agent, the tests
//! and the benchmarks: hyper 1 over hyper-util's pooled client and rustls (ring).
//! It speaks HTTP/2 when the server offers it through ALPN, else HTTP/1.1, and
//! reuses connections. It knows paths, verbs and JSON, not resource types: callers
//! build paths such as `/api/v1/namespaces/default/pods` and get
//! [`serde_json::Value`]s back; an answer outside 2xx becomes an [`ApiError`]
//! carrying the server's `Status`.
//!
//! This is the only module of the `api` crate that does I/O.

mod config;
mod error;
mod tls;
mod watch;

pub use config::{Config, ConfigError, Credentials};
pub use error::{ApiError, ClientError};
/// Re-exported so callers of [`Client::request`] need no `http` dependency.
pub use http::{Method, StatusCode};
pub use watch::{LineBuffer, Watch, WatchEvent};

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

use tls::HttpsConnector;

/// `Content-Type` of a JSON merge patch.
pub const MERGE_PATCH: &str = "application/merge-patch+json";
/// `Content-Type` of a strategic merge patch.
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";
/// `Content-Type` of a JSON patch.
pub const JSON_PATCH: &str = "application/json-patch+json";

const JSON: &str = "application/json";

/// A connection pool to one API server with one identity. Cheap to clone; clones
/// share the pool.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpsConnector, Full<Bytes>>,
    /// The server URL without a trailing slash.
    base: String,
    authorization: Option<HeaderValue>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.base)
            .finish()
    }
}

impl Client {
    /// A client for the current context of the kubeconfig at `path`.
    pub fn from_kubeconfig(path: &Path) -> Result<Client, ClientError> {
        Client::from_config(Config::from_kubeconfig(path)?)
    }

    /// A client for `server_url` (`https://host:port`) trusting `ca_pem`.
    pub fn new(
        server_url: &str,
        ca_pem: &str,
        credentials: Credentials,
    ) -> Result<Client, ClientError> {
        let tls = tls::client_config(ca_pem, &credentials)?;
        let base = server_url.trim_end_matches('/').to_string();
        let uri: http::Uri = base.parse().map_err(|_| ClientError::ServerUrl {
            url: server_url.to_string(),
        })?;
        if uri.scheme_str() != Some("https") || uri.host().is_none() {
            return Err(ClientError::ServerUrl {
                url: server_url.to_string(),
            });
        }
        let authorization = match &credentials {
            Credentials::Token(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ClientError::Token)?,
            ),
            Credentials::ClientCert { .. } => None,
        };
        let pool = Pool::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .http2_keep_alive_interval(Some(Duration::from_secs(30)))
            .build(HttpsConnector::new(tls));
        Ok(Client {
            pool,
            base,
            authorization,
        })
    }

    /// A client for a parsed [`Config`].
    pub fn from_config(config: Config) -> Result<Client, ClientError> {
        Client::new(&config.server, &config.ca_pem, config.credentials)
    }

    /// The server URL this client talks to.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// `GET path`: one object.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.json(Method::GET, path, None, Bytes::new()).await
    }

    /// `GET path`: a collection (query parameters such as `labelSelector` go in `path`).
    pub async fn list(&self, path: &str) -> Result<Value, ClientError> {
        self.json(Method::GET, path, None, Bytes::new()).await
    }

    /// `POST path` with `object`; the created object.
    pub async fn create(&self, path: &str, object: &Value) -> Result<Value, ClientError> {
        self.json(Method::POST, path, Some(JSON), encode(object)?)
            .await
    }

    /// `PUT path` with `object`; the stored object.
    pub async fn update(&self, path: &str, object: &Value) -> Result<Value, ClientError> {
        self.json(Method::PUT, path, Some(JSON), encode(object)?)
            .await
    }

    /// `PATCH path` with a patch of type `content_type` (see [`MERGE_PATCH`] and friends).
    pub async fn patch(
        &self,
        path: &str,
        content_type: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        self.json(Method::PATCH, path, Some(content_type), encode(patch)?)
            .await
    }

    /// `DELETE path`; what the server answered (the object or a `Status`).
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.json(Method::DELETE, path, None, Bytes::new()).await
    }

    /// Any request with an optional JSON body; the status and the raw body, whatever
    /// the status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let (content_type, bytes) = match body {
            Some(v) => (Some(JSON), encode(v)?),
            None => (None, Bytes::new()),
        };
        self.request_bytes(method, path, content_type, bytes).await
    }

    /// Any request with a body already encoded; the status and the raw body.
    pub async fn request_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let response = self.send(method.clone(), path, content_type, body).await?;
        let status = response.status();
        let bytes = read_body(&method, path, response.into_body()).await?;
        Ok((status, bytes))
    }

    /// Opens a watch on `path` (a collection; `watch=true` is added when absent).
    /// An answer outside 2xx is an [`ApiError`].
    pub async fn watch(&self, path: &str) -> Result<Watch, ClientError> {
        let path = if path.contains("watch=") {
            path.to_string()
        } else if path.contains('?') {
            format!("{path}&watch=true")
        } else {
            format!("{path}?watch=true")
        };
        let response = self.send(Method::GET, &path, None, Bytes::new()).await?;
        let status = response.status();
        if !status.is_success() {
            let body = read_body(&Method::GET, &path, response.into_body()).await?;
            return Err(ApiError::new(status, &body).into());
        }
        Ok(Watch::new(path, response.into_body()))
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = self
            .request_bytes(method.clone(), path, content_type, body)
            .await?;
        if !status.is_success() {
            return Err(ApiError::new(status, &bytes).into());
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Json {
            method,
            path: path.to_string(),
            source,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Incoming>, ClientError> {
        let uri = format!("{}{}", self.base, path);
        let mut builder = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(ACCEPT, JSON)
            .header(USER_AGENT, concat!("bosun/", env!("CARGO_PKG_VERSION")));
        if let Some(ct) = content_type {
            builder = builder.header(CONTENT_TYPE, ct);
        }
        if let Some(auth) = &self.authorization {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|source| ClientError::Uri { uri, source })?;
        self.pool
            .request(request)
            .await
            .map_err(|source| ClientError::Request {
                method,
                path: path.to_string(),
                source,
            })
    }
}

fn encode(v: &Value) -> Result<Bytes, ClientError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(ClientError::Encode)
}

async fn read_body(method: &Method, path: &str, body: Incoming) -> Result<Bytes, ClientError> {
    body.collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|source| ClientError::Body {
            method: method.clone(),
            path: path.to_string(),
            source,
        })
}
