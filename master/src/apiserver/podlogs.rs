//! `GET /api/v1/namespaces/{ns}/pods/{name}/log`: the master picks the container
//! as upstream does, finds the pod's node, and proxies the request to that
//! agent's `https://<InternalIP>:<kubelet port>/containerLogs/{ns}/{name}/{container}`
//! with its own client certificate (`bosun:master`), verifying the agent's
//! serving certificate against the cluster CA. The agent's answer is streamed
//! back as it comes (so `follow` works line by line); when the client goes away,
//! the connection to the agent is closed.
//!
//! Choosing the container, the agent's address and the forwarded query are pure
//! functions; [`Server::pod_log`] does the I/O.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ::http::{header, Request, Response};
use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::http::Body;
use super::route::{Query, Target};
use super::{crud_resource, ApiError, Server};

/// The agent port when a Node does not say (`daemonEndpoints.kubeletEndpoint.Port`).
pub const DEFAULT_AGENT_PORT: u16 = 10250;
/// How long connecting to an agent (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The query parameters of `PodLogOptions` passed on to the agent.
const FORWARDED: [&str; 7] = [
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
];

impl Server {
    /// Answers `pods/{name}/log` (see the module doc).
    pub(super) async fn pod_log(
        &self,
        t: &Target,
        name: &str,
        q: &Query,
    ) -> Result<Response<Body>, ApiError> {
        let key = self.key(t, name);
        let (pod, _) = self.get_current(t.res, &key, name).await?;
        let container = pick_container(&pod, name, q.non_empty("container"))?;
        let query = forward_query(q)?;
        let node_name = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node_name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "pod {name} does not have a host assigned"
            )));
        }
        let nodes = crud_resource("", "nodes");
        let (node, _) = self
            .get_current(nodes, &nodes.key(None, node_name), node_name)
            .await?;
        let addr = agent_address(&node, node_name)?;
        let ns = t.namespace.as_deref().unwrap_or("default");
        let path = format!("/containerLogs/{ns}/{name}/{container}{query}");
        let Some(authority) = self.node_authority() else {
            return Err(ApiError::unavailable(
                "this server has no client certificate for agents",
            ));
        };
        let url = format!("https://{addr}{path}");
        let (resp, guard) = open(authority.agent_client_config(), addr, &path)
            .await
            .map_err(|e| ApiError::internal(format!("Get \"{url}\": {e}")))?;
        Ok(stream_back(resp, guard))
    }
}

/// The container to read: `requested` if the pod has it; else the
/// `kubectl.kubernetes.io/default-container` annotation; else the only one.
pub fn pick_container(
    pod: &Value,
    pod_name: &str,
    requested: Option<&str>,
) -> Result<String, ApiError> {
    let names = |field: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("name").and_then(Value::as_str))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers = names("containers");
    let init = names("initContainers");
    let ephemeral = names("ephemeralContainers");
    let known = |c: &str| {
        containers
            .iter()
            .chain(&init)
            .chain(&ephemeral)
            .any(|n| n == c)
    };
    if let Some(c) = requested {
        if known(c) {
            return Ok(c.to_string());
        }
        return Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        )));
    }
    let annotated = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
        .filter(|c| known(c));
    if let Some(c) = annotated {
        return Ok(c.to_string());
    }
    if containers.len() == 1 {
        return Ok(containers[0].clone());
    }
    let mut message = format!(
        "a container name must be specified for pod {pod_name}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init.is_empty() {
        message.push_str(&format!(
            " or one of the init containers: [{}]",
            init.join(" ")
        ));
    }
    if !ephemeral.is_empty() {
        message.push_str(&format!(
            " or one of the ephemeral containers: [{}]",
            ephemeral.join(" ")
        ));
    }
    Err(ApiError::bad_request(message))
}

/// Where the agent of `node` listens: its first InternalIP and its kubelet port.
pub fn agent_address(node: &Value, node_name: &str) -> Result<SocketAddr, ApiError> {
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .find_map(|a| {
            a.get("address")
                .and_then(Value::as_str)?
                .parse::<IpAddr>()
                .ok()
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "node {node_name} has no InternalIP address: its agent cannot be reached"
            ))
        })?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .unwrap_or(DEFAULT_AGENT_PORT);
    Ok(SocketAddr::new(ip, port))
}

/// The `?…` passed on to the agent: the `PodLogOptions` parameters present,
/// checked as upstream validates them. Empty when there are none.
pub fn forward_query(q: &Query) -> Result<String, ApiError> {
    let invalid = |field: &str, value: &str, why: &str| {
        ApiError::new(
            422,
            "Invalid",
            format!("PodLogOptions is invalid: {field}: Invalid value: {value}: {why}"),
        )
    };
    let mut pairs = Vec::new();
    for key in FORWARDED {
        let Some(value) = q.get(key) else { continue };
        match key {
            "tailLines" | "sinceSeconds" | "limitBytes" => {
                let n: i64 = value.parse().map_err(|_| {
                    ApiError::bad_request(format!("{key}: {value:?} is not an integer"))
                })?;
                let min = if key == "tailLines" { 0 } else { 1 };
                if n < min {
                    return Err(invalid(
                        key,
                        value,
                        &format!("must be greater than or equal to {min}"),
                    ));
                }
                pairs.push(format!("{key}={n}"));
            }
            "sinceTime" => {
                pairs.push(format!("{key}={}", escape(value)));
            }
            _ => {
                let on = q.flag(key);
                pairs.push(format!("{key}={on}"));
            }
        }
    }
    if q.get("sinceSeconds").is_some() && q.get("sinceTime").is_some() {
        return Err(invalid(
            "sinceSeconds",
            q.get("sinceSeconds").unwrap_or_default(),
            "at most one of sinceTime or sinceSeconds may be specified",
        ));
    }
    Ok(if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    })
}

/// Percent-encodes everything but unreserved characters.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Aborts the task driving the agent connection when dropped.
struct ConnGuard(tokio::task::JoinHandle<()>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to the agent at `addr` (TLS, verified against the cluster CA with
/// the address as the name) and sends `GET path`.
async fn open(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    path: &str,
) -> Result<(Response<Incoming>, ConnGuard), String> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(addr.ip().into());
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    };
    let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| format!("dial tcp {addr}: timed out after {CONNECT_TIMEOUT:?}"))??;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let guard = ConnGuard(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "agent connection ended");
        }
    }));
    let request = Request::get(path)
        .header(header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok((resp, guard))
}

/// The agent's answer as ours: its status, content type and body, streamed.
fn stream_back(resp: Response<Incoming>, guard: ConnGuard) -> Response<Body> {
    let (parts, incoming) = resp.into_parts();
    let body = StreamBody::new(stream::unfold(
        Some((incoming, guard)),
        |state| async move {
            let (mut incoming, guard) = state?;
            loop {
                match incoming.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => {
                            return Some((
                                Ok::<_, Infallible>(Frame::data(data)),
                                Some((incoming, guard)),
                            ))
                        }
                        Err(_) => continue,
                    },
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "reading from the agent");
                        return None;
                    }
                    None => return None,
                }
            }
        },
    ))
    .boxed_unsync();
    let mut out = Response::new(body);
    *out.status_mut() = parts.status;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(header::HeaderValue::from_static("text/plain"));
    out.headers_mut().insert(header::CONTENT_TYPE, content_type);
    out
}

#[cfg(test)]
mod tests;
