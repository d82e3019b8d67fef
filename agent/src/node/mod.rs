//! The agent's Node: host facts ([`facts`]), the Node object built from them
//! ([`object`]), registration with the master ([`register`]) and the heartbeat
//! ([`run_heartbeat`]): the Lease in `kube-node-lease` renewed every 10 s, the
//! status conditions re-evaluated every 10 s and written when they change, or
//! at least every 5 minutes (the kubelet's `nodeStatusReportFrequency`).
//!
//! Credentials are `crate::join`'s; pods are the kubelet's. The Lease shapes
//! and the bounded, retried requests are shared with the hollow nodes.

pub mod facts;
pub mod object;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use api::client::{Client, ClientError};
use serde_json::{json, Value};
use tokio::time::{Instant, MissedTickBehavior};

use crate::hollow::node::{lease_object, lease_spec, LEASE_NAMESPACE, LEASE_PERIOD};
use crate::hollow::requests::{already_exists, backoff, not_found, Api, Attempts};
use crate::hollow::{micro_time, rfc3339};
pub use facts::{HostFacts, HostPaths, Usage};
pub use object::{node_object, node_status, NodeIdentity, Pressure};

/// How often conditions are evaluated (upstream `nodeStatusUpdateFrequency`).
pub const STATUS_CHECK_PERIOD: Duration = Duration::from_secs(10);
/// The longest time between two status writes when nothing changes (upstream
/// `nodeStatusReportFrequency`).
pub const STATUS_REPORT_PERIOD: Duration = Duration::from_secs(5 * 60);
/// Requests the node loop may have in flight.
const IN_FLIGHT: usize = 4;

/// Everything the Node is made from.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    /// `--node-ip`; empty means the first IPv4 of the network namespace.
    pub node_ips: Vec<IpAddr>,
    /// `--port`.
    pub port: u16,
    /// The data dir: ephemeral storage and DiskPressure are about its filesystem.
    pub data_dir: PathBuf,
    pub paths: HostPaths,
}

impl NodeConfig {
    /// The InternalIPs: `node_ips`, or the first non-loopback IPv4 address of
    /// this network namespace.
    pub fn internal_ips(&self) -> Vec<IpAddr> {
        if !self.node_ips.is_empty() {
            return self.node_ips.clone();
        }
        facts::pick_node_ip(&facts::interface_addresses())
            .into_iter()
            .collect()
    }
}

/// Why the Node could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("reading host facts for node {node}")]
    Facts {
        node: String,
        #[source]
        source: facts::FactsError,
    },
    #[error("{what} node {node}")]
    Api {
        what: &'static str,
        node: String,
        #[source]
        source: Box<ClientError>,
    },
}

/// A registered Node, as the heartbeat needs it.
#[derive(Clone, Debug)]
pub struct Registered {
    pub uid: String,
    pub identity: NodeIdentity,
    pub facts: HostFacts,
    /// The status last sent (what the master stores may carry more fields).
    pub status: Value,
    sent_at: Instant,
}

/// The version the agent reports as `kubeletVersion`: what the master serves
/// (`v1.32.0+bosun.0.1.0`), else bosun's own version.
pub async fn kubelet_version(client: &Client) -> String {
    client
        .get("/version")
        .await
        .ok()
        .and_then(|v| v["gitVersion"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("v0.0.0+bosun.{}", env!("CARGO_PKG_VERSION")))
}

/// Creates the Node, or, when it exists, puts the default labels back on it
/// and replaces its status (its other labels, annotations and spec stay).
pub async fn register(client: &Client, config: &NodeConfig) -> Result<Registered, NodeError> {
    let api = Api::new(client.clone(), IN_FLIGHT);
    let node = config.name.clone();
    let host =
        facts::read_facts(&config.paths, &config.data_dir).map_err(|source| NodeError::Facts {
            node: node.clone(),
            source,
        })?;
    let usage = read_usage(config)?;
    let identity = NodeIdentity {
        name: node.clone(),
        internal_ips: config.internal_ips(),
        port: config.port,
        kubelet_version: kubelet_version(client).await,
    };
    let now = rfc3339(jiff::Timestamp::now());
    let object = node_object(&host, &identity, &usage, &now);
    let api_err = |what| {
        let node = node.clone();
        move |source| NodeError::Api {
            what,
            node,
            source: Box::new(source),
        }
    };
    let (stored, sent) = match api.create("/api/v1/nodes", &object, Attempts(5)).await {
        Err(e) if already_exists(&e) => {
            let path = format!("/api/v1/nodes/{node}");
            let labels = json!({"metadata": {"labels": object["metadata"]["labels"]}});
            let current = api
                .merge_patch(&path, &labels, Attempts(5))
                .await
                .map_err(api_err("labelling"))?;
            // Keep transition times of conditions whose status did not change.
            let conditions = object::conditions(
                object::pressure(&usage),
                None,
                &current["status"]["conditions"],
                &now,
            );
            let status = node_status(&host, &identity, conditions);
            let stored = api
                .merge_patch(
                    &format!("{path}/status"),
                    &json!({"status": status}),
                    Attempts(5),
                )
                .await
                .map_err(api_err("updating the status of"))?;
            (stored, status)
        }
        other => (
            other.map_err(api_err("registering"))?,
            object["status"].clone(),
        ),
    };
    tracing::info!(node = %node, "node registered");
    Ok(Registered {
        uid: stored["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status: sent,
        identity,
        facts: host,
        sent_at: Instant::now(),
    })
}

fn read_usage(config: &NodeConfig) -> Result<Usage, NodeError> {
    facts::read_usage(&config.paths, &config.data_dir).map_err(|source| NodeError::Facts {
        node: config.name.clone(),
        source,
    })
}

/// Whether a status evaluated now must be written: it differs from the last one
/// written (heartbeat times aside), or that one is [`STATUS_REPORT_PERIOD`] old.
pub fn status_due(last: &Value, now: &Value, since_last: Duration) -> bool {
    since_last >= STATUS_REPORT_PERIOD
        || object::without_heartbeats(last) != object::without_heartbeats(now)
}

/// Renews the Lease every 10 s and keeps the status current (see the module
/// doc) until the task is dropped. A Node deleted by someone else is
/// registered again.
pub async fn run_heartbeat(client: Client, config: NodeConfig, mut registered: Registered) {
    let api = Api::new(client.clone(), IN_FLIGHT);
    let lease_path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{}",
        config.name
    );
    let status_path = format!("/api/v1/nodes/{}/status", config.name);
    let mut lease_tick = tokio::time::interval(LEASE_PERIOD);
    lease_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut status_tick =
        tokio::time::interval_at(Instant::now() + STATUS_CHECK_PERIOD, STATUS_CHECK_PERIOD);
    status_tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = lease_tick.tick() => renew_lease(&api, &lease_path, &config.name, &registered.uid).await,
            _ = status_tick.tick() => {
                let usage = match read_usage(&config) {
                    Ok(u) => u,
                    Err(e) => {
                        tracing::warn!(node = %config.name, error = %e, "cannot read usage; keeping the last status");
                        continue;
                    }
                };
                let now = rfc3339(jiff::Timestamp::now());
                let conditions = object::conditions(
                    object::pressure(&usage),
                    None,
                    &registered.status["conditions"],
                    &now,
                );
                let status = node_status(&registered.facts, &registered.identity, conditions);
                if !status_due(&registered.status, &status, registered.sent_at.elapsed()) {
                    continue;
                }
                match api.merge_patch(&status_path, &json!({"status": status}), Attempts(3)).await {
                    Ok(_) => {
                        registered.status = status;
                        registered.sent_at = Instant::now();
                    }
                    Err(e) if not_found(&e) => {
                        tracing::warn!(node = %config.name, "the Node is gone from the master; registering it again");
                        registered = register_until_done(&client, &config).await;
                    }
                    Err(e) => tracing::warn!(node = %config.name, error = %e, "node status update failed"),
                }
            }
        }
    }
}

/// [`register`], retried with backoff until it works.
async fn register_until_done(client: &Client, config: &NodeConfig) -> Registered {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match register(client, config).await {
            Ok(r) => return r,
            Err(e) => {
                tracing::warn!(node = %config.name, error = %e, "registering the node failed");
                tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
            }
        }
    }
}

/// One renewal: patch the Lease, create it when it does not exist yet.
async fn renew_lease(api: &Api, path: &str, node: &str, uid: &str) {
    let now = micro_time(jiff::Timestamp::now());
    let patch = json!({"spec": lease_spec(node, &now)});
    let result = match api.merge_patch(path, &patch, Attempts(3)).await {
        Err(e) if not_found(&e) => {
            let collection =
                format!("/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases");
            match api
                .create(&collection, &lease_object(node, uid, &now), Attempts(3))
                .await
            {
                Err(e) if already_exists(&e) => api.merge_patch(path, &patch, Attempts(3)).await,
                other => other,
            }
        }
        other => other,
    };
    if let Err(e) = result {
        tracing::warn!(node = %node, error = %e, "lease renewal failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_written_on_change_or_every_five_minutes() {
        let a =
            json!({"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t1"}]});
        let b =
            json!({"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "t2"}]});
        let c = json!({"conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": "t2"}]});
        assert!(!status_due(&a, &b, Duration::from_secs(10)));
        assert!(status_due(&a, &b, STATUS_REPORT_PERIOD));
        assert!(status_due(&a, &c, Duration::from_secs(10)));
    }
}
