//! The agent's side of the pod network: it waits for the master to give the
//! node its podCIDR, sets up the node's bridge and masquerade, releases the
//! addresses of pods that went while it was down, and keeps the routes to the
//! other nodes' podCIDRs in step with the Nodes it watches.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use api::cidr::Cidr;
use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus};
use tokio::sync::mpsc;

use super::{progress, AgentError};
use crate::hollow::requests::{Api, Attempts};
use crate::hollow::watch::{list_watch, Change, Feed, Versioned};
use crate::network::{self, NetConfig, Network, PeerRoute};

/// How often the routes are made again even when no Node changed (someone
/// may have removed one by hand).
const RESYNC: Duration = Duration::from_secs(60);
/// How soon a failed route sync is tried again.
const RETRY: Duration = Duration::from_secs(5);

/// What the operator chose for the pod network.
#[derive(Clone, Debug)]
pub struct NetOptions {
    pub cluster_cidr: Cidr,
    pub bridge: String,
    pub nft_table: String,
    pub state_dir: PathBuf,
}

/// The node's spec.podCIDR, once the master has given it one.
async fn pod_cidr(api: &Api, node: &str) -> Cidr {
    let path = format!("/api/v1/nodes/{node}");
    let step = Duration::from_millis(100);
    let mut round = 0u64;
    loop {
        round += 1;
        match api.get(&path, Attempts(3)).await {
            Ok(n) => {
                if let Some(c) = n["spec"]["podCIDR"].as_str() {
                    match Cidr::parse(c) {
                        Ok(c) => return c,
                        Err(e) => tracing::warn!(node, error = %e, "the node's podCIDR"),
                    }
                }
            }
            Err(e) => tracing::warn!(node, error = %crate::error_chain(&e), "reading the node"),
        }
        if round.is_multiple_of(100) {
            progress(&format!(
                "waiting for the master to give node {node} a podCIDR ({}s)",
                round / 10
            ));
        }
        tokio::time::sleep(step).await;
    }
}

/// Sets up the node's network and releases the addresses of pods that are no
/// longer on disk (`live`: the uids the runtime has).
pub async fn start(
    api: &Api,
    opts: &NetOptions,
    node: &str,
    node_ip: Ipv4Addr,
    live: HashSet<String>,
) -> Result<Network, AgentError> {
    let pod_cidr = pod_cidr(api, node).await;
    if !opts.cluster_cidr.contains(pod_cidr.base) {
        return Err(AgentError::Usage(format!(
            "the node's podCIDR {pod_cidr} is not inside --cluster-cidr {}: give the master's --cluster-cidr",
            opts.cluster_cidr
        )));
    }
    let cfg = NetConfig {
        bridge: opts.bridge.clone(),
        pod_cidr,
        cluster_cidr: opts.cluster_cidr,
        state_dir: opts.state_dir.clone(),
        nft_table: opts.nft_table.clone(),
        mtu: None,
        node_ip,
    };
    let network = tokio::task::spawn_blocking(move || {
        let n = Network::setup(cfg)?;
        let released = n.reclaim(&live)?;
        Ok::<_, network::NetError>((n, released))
    })
    .await
    .map_err(|e| AgentError::Usage(e.to_string()))?
    .map_err(AgentError::Network)?;
    let (network, released) = network;
    progress(&format!(
        "pod network: bridge {} with podCIDR {pod_cidr}{}",
        opts.bridge,
        if released > 0 {
            format!("; released {released} addresses of pods gone while the agent was down")
        } else {
            String::new()
        }
    ));
    Ok(network)
}

/// What the route sync keeps of a Node.
fn slim(node: Node) -> Node {
    Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: node.metadata.name,
            resource_version: node.metadata.resource_version,
            ..Default::default()
        },
        spec: node.spec.map(|s| NodeSpec {
            pod_cidr: s.pod_cidr,
            ..Default::default()
        }),
        status: node.status.map(|s| NodeStatus {
            addresses: s.addresses,
            ..Default::default()
        }),
    }
}

/// Watches every Node and keeps this node's routes to the others' podCIDRs;
/// runs until the process ends.
pub async fn sync_routes(api: Api, network: Network, me: String) {
    let (tx, mut rx) = mpsc::channel(64);
    tokio::spawn(list_watch::<Node>(
        api,
        "/api/v1/nodes".to_string(),
        String::new(),
        tx,
    ));
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut applied: Option<Vec<PeerRoute>> = None;
    let mut listed = false;
    let mut next = tokio::time::Instant::now() + RESYNC;
    loop {
        tokio::select! {
            feed = rx.recv() => {
                let Some(feed) = feed else { return };
                match feed {
                    Feed::Listed(all) => {
                        listed = true;
                        nodes = all
                            .into_iter()
                            .filter_map(|n| Some((n.metadata.name.clone()?, slim(n))))
                            .collect();
                    }
                    Feed::Event(Change::Deleted, n) => {
                        if let Some(name) = &n.metadata.name {
                            nodes.remove(name);
                        }
                    }
                    Feed::Event(_, n) => {
                        if let Some(name) = n.metadata.name.clone() {
                            nodes.insert(name, slim(n));
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(next) => {
                applied = None;
                next = tokio::time::Instant::now() + RESYNC;
            }
        }
        if !listed {
            continue;
        }
        let all: Vec<Node> = nodes.values().cloned().collect();
        let want = network::peer_routes(&all, &me);
        if applied.as_ref() == Some(&want) {
            continue;
        }
        let n = network.clone();
        let routes = want.clone();
        let res = tokio::task::spawn_blocking(move || n.sync_routes(&routes)).await;
        match res {
            Ok(Ok(())) => {
                tracing::info!(
                    routes = want.len(),
                    "routes to the other nodes' pods in sync"
                );
                applied = Some(want);
                next = tokio::time::Instant::now() + RESYNC;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::error_chain(&e), "syncing the routes to other nodes");
                applied = None;
                next = tokio::time::Instant::now() + RETRY;
            }
            Err(e) => tracing::warn!(error = %e, "syncing the routes to other nodes"),
        }
    }
}

impl Versioned for Node {
    fn resource_version(&self) -> &str {
        self.metadata
            .resource_version
            .as_deref()
            .unwrap_or_default()
    }
}
