//! What can go wrong talking to the API server: [`ClientError`] for transport,
//! TLS and decoding failures, and [`ApiError`] for an answer outside 2xx, which
//! carries the Kubernetes `Status` the server sent.

use http::{Method, StatusCode};
use serde_json::Value;

use super::config::ConfigError;

/// A non-2xx answer from the API server.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status code (also `status.code` for a Kubernetes `Status`).
    pub code: u16,
    /// The body: a Kubernetes `Status` object when the server sent JSON, else the
    /// body as a JSON string.
    pub status: Value,
}

impl ApiError {
    pub(super) fn new(code: StatusCode, body: &[u8]) -> Self {
        let status = serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
        ApiError {
            code: code.as_u16(),
            status,
        }
    }

    /// `status.reason`, e.g. `NotFound`, `AlreadyExists`, `Conflict`.
    pub fn reason(&self) -> Option<&str> {
        self.status.get("reason").and_then(Value::as_str)
    }

    /// `status.message`, or the body when it was not a `Status`.
    pub fn message(&self) -> &str {
        match &self.status {
            Value::String(s) => s,
            v => v.get("message").and_then(Value::as_str).unwrap_or(""),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server answered {}", self.code)?;
        if let Some(reason) = self.reason() {
            write!(f, " {reason}")?;
        }
        match self.message() {
            "" => Ok(()),
            m => write!(f, ": {m}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// Any failure of a [`super::Client`] call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("client configuration")]
    Config(#[from] ConfigError),
    #[error("invalid server URL {url:?}: expected https://host:port")]
    ServerUrl { url: String },
    #[error("invalid request URI {uri:?}")]
    Uri {
        uri: String,
        #[source]
        source: http::Error,
    },
    #[error("no usable {what} in PEM")]
    Pem {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("tls configuration")]
    Tls {
        #[source]
        source: rustls::Error,
    },
    #[error("invalid bearer token: not a valid header value")]
    Token,
    #[error("{method} {path}")]
    Request {
        method: Method,
        path: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the response to {method} {path}")]
    Body {
        method: Method,
        path: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the response to {method} {path} is not the expected JSON")]
    Json {
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding the request body")]
    Encode(#[source] serde_json::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ClientError {
    /// The HTTP status code when the server answered outside 2xx.
    pub fn code(&self) -> Option<u16> {
        match self {
            ClientError::Api(e) => Some(e.code),
            _ => None,
        }
    }
}
