//! bosun's own endpoints for agents joining the cluster, under `/bosun/v1/`:
//!
//! - `GET /bosun/v1/cacerts?tokenId=<id>` — unauthenticated (the agent does not
//!   trust the CA yet): the cluster CA PEM, with `X-Bosun-Ca-Hmac` = hex
//!   HMAC-SHA256 of that PEM keyed with the join token whose id is `<id>`, so the
//!   agent can check the CA with nothing but its token. Unknown id: 404.
//! - `POST /bosun/v1/join` — bearer join token (group `system:bootstrappers`),
//!   body `{"nodeName", "clientCsr", "servingCsr"}` → `{"ca", "clientCert",
//!   "servingCert"}`. Anyone else: 403.
//!
//! The signing itself is `auth::NodeAuthority`'s.

use ::http::{header, Method, Request, Response};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::http::{bytes_response, error_response, json_response, read_body, Body};
use super::route::Query;
use super::{ApiError, Server};
use crate::auth::{JoinError, NodeAuthority};

/// The path prefix of bosun's own endpoints.
pub const PREFIX: &str = "/bosun/v1/";
/// Path of the CA endpoint.
pub const CACERTS_PATH: &str = "/bosun/v1/cacerts";
/// Path of the join endpoint.
pub const JOIN_PATH: &str = "/bosun/v1/join";
/// The response header carrying the CA's HMAC.
pub const CA_HMAC_HEADER: &str = "x-bosun-ca-hmac";

/// The body of `POST /bosun/v1/join`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JoinRequest {
    node_name: String,
    client_csr: String,
    serving_csr: String,
}

/// The answer to a join.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinResponse {
    ca: String,
    client_cert: String,
    serving_cert: String,
}

impl Server {
    /// Answers a request under [`PREFIX`]; `user` is who sent it, if anyone.
    pub(super) async fn bosun_v1(
        &self,
        req: Request<Incoming>,
        user: Option<String>,
        q: &Query,
    ) -> Response<Body> {
        let result = match self.node_authority() {
            None => Err(ApiError::unavailable(
                "this server does not hand out node credentials",
            )),
            Some(nodes) => match (req.uri().path(), req.method()) {
                (CACERTS_PATH, &Method::GET) => cacerts(nodes, q),
                (JOIN_PATH, &Method::POST) => join(nodes, req, user).await,
                (CACERTS_PATH | JOIN_PATH, _) => Err(ApiError::method_not_allowed()),
                _ => Err(ApiError::path_not_found()),
            },
        };
        result.unwrap_or_else(|e| error_response(&e))
    }
}

fn cacerts(nodes: &NodeAuthority, q: &Query) -> Result<Response<Body>, ApiError> {
    let id = q.non_empty("tokenId").ok_or_else(|| {
        ApiError::bad_request(
            "the query parameter tokenId is required: the part of the join token before the dot",
        )
    })?;
    let mac = nodes.ca_hmac(id).ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("no join token with id {id:?}: check the token, or create one with `bosun token create` on the master"),
        )
    })?;
    let mut resp = bytes_response(200, "application/x-pem-file", nodes.ca_pem().to_string());
    if let Ok(v) = header::HeaderValue::from_str(&mac) {
        resp.headers_mut().insert(CA_HMAC_HEADER, v);
    }
    Ok(resp)
}

async fn join(
    nodes: &NodeAuthority,
    req: Request<Incoming>,
    user: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let Some(user) = user else {
        return Err(ApiError::unauthorized());
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // The request's user is its client certificate's if it showed one: it must
    // be the bearer token's user, and that a bootstrapper.
    match nodes.bootstrapper(authorization) {
        Some(b) if b.name == user => {}
        _ => {
            return Err(ApiError::forbidden(format!(
            "user \"{user}\" cannot join nodes: only join tokens (group system:bootstrappers) can"
        )))
        }
    }
    let body = read_body(req.into_body()).await?;
    let request: JoinRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the join request is not {{\"nodeName\", \"clientCsr\", \"servingCsr\"}}: {e}"
        ))
    })?;
    let certs = nodes
        .sign(
            &request.node_name,
            &request.client_csr,
            &request.serving_csr,
        )
        .map_err(|e| match e {
            JoinError::Sign(ref source) => ApiError::internal(format!("{e}: {source}")),
            other => ApiError::new(422, "Invalid", other.to_string()),
        })?;
    tracing::info!(node = %request.node_name, %user, "node joined");
    let answer = JoinResponse {
        ca: certs.ca,
        client_cert: certs.client_cert,
        serving_cert: certs.serving_cert,
    };
    Ok(json_response(
        200,
        &serde_json::to_value(answer).unwrap_or_default(),
    ))
}
