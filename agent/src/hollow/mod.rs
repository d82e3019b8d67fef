//! Hollow nodes: many simulated nodes in one process, like kubemark's, to test
//! and measure the master (scheduler, controllers) at cluster scale on one
//! machine. They join with a token, register Nodes with realistic capacity, renew
//! their Leases, report the pods bound to them Running with IPs from their pod
//! CIDR and finish them when they are deleted. They create nothing on the host:
//! no process, no address, no file.
//!
//! - [`node`]: one node's registration, Lease and status heartbeats.
//! - [`pods`]: the pods of all nodes, from one list-watch, and their status.
//! - [`ipam`]: pod IPs from a node's pod CIDR.
//! - [`watch`]: list-then-watch of a collection into a channel.
//! - [`requests`]: bounded, retried requests shared by all of the above.
//!
//! Progress lines (`hollow: 1000 nodes registered …`, `hollow: N pods running`)
//! go to stdout; diagnostics go through `tracing`.

pub mod ipam;
pub mod node;
pub mod pods;
pub mod requests;
pub mod watch;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use api::client::{Client, ClientError, Config, Credentials};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use node::{NodeIdentity, Shared};
use requests::Api;
use watch::{query_escape, Feed};

/// How many node requests (registration, Lease and status heartbeats) all hollow
/// nodes of a process may have in flight at once. A pool of their own, so that a
/// flood of pod updates never delays the heartbeats that keep the nodes Ready.
pub const NODE_IN_FLIGHT: usize = 8;
/// How many pod requests (status, delete, list) may be in flight at once.
pub const POD_IN_FLIGHT: usize = 24;

/// How a hollow process reaches the master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connect {
    /// The server URL, a file holding a join token, and the CA to trust.
    Token {
        server: String,
        token_file: PathBuf,
        ca_file: PathBuf,
    },
    /// The current context of a kubeconfig.
    Kubeconfig(PathBuf),
}

/// What `bosun hollow` was asked to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HollowOptions {
    pub connect: Connect,
    /// How many nodes to simulate.
    pub nodes: usize,
    /// Nodes are named `<prefix>-0000` … `<prefix>-<nodes-1>`.
    pub name_prefix: String,
}

/// Why the hollow nodes could not run.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    #[error("reading the {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is empty")]
    EmptyToken { path: PathBuf },
    #[error("--name-prefix {prefix:?} is not a valid node name prefix: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit")]
    BadPrefix { prefix: String },
    #[error("--nodes must be at least 1")]
    NoNodes,
    #[error("connecting to the master")]
    Client(#[source] ClientError),
    #[error("listening for SIGTERM")]
    Signal(#[source] std::io::Error),
}

impl HollowError {
    /// True when the user's flags or files are at fault (exit code 64).
    pub fn is_usage(&self) -> bool {
        !matches!(self, HollowError::Signal(_))
    }
}

/// The current time as a Kubernetes `Time`: `2026-11-26T16:00:00Z`.
pub fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time as a Kubernetes `MicroTime`: `2026-11-26T16:00:00.000000Z`.
pub fn micro_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A progress line for the operator, on stdout.
fn progress(line: &str) {
    println!("hollow: {line}");
}

fn valid_prefix(p: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !p.is_empty()
        && p.len() <= 240
        && p.chars().all(ok_char)
        && ends_ok(p.chars().next())
        && ends_ok(p.chars().last())
}

fn read(what: &'static str, path: &Path) -> Result<String, HollowError> {
    std::fs::read_to_string(path).map_err(|source| HollowError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

impl HollowOptions {
    /// Checks the options and builds the client (reads the token and CA files).
    pub fn client(&self) -> Result<Client, HollowError> {
        if self.nodes == 0 {
            return Err(HollowError::NoNodes);
        }
        if !valid_prefix(&self.name_prefix) {
            return Err(HollowError::BadPrefix {
                prefix: self.name_prefix.clone(),
            });
        }
        let config = match &self.connect {
            Connect::Kubeconfig(path) => {
                Config::from_kubeconfig(path).map_err(|e| HollowError::Client(e.into()))?
            }
            Connect::Token {
                server,
                token_file,
                ca_file,
            } => {
                let token = read("token file", token_file)?.trim().to_string();
                if token.is_empty() {
                    return Err(HollowError::EmptyToken {
                        path: token_file.clone(),
                    });
                }
                Config {
                    server: server.clone(),
                    ca_pem: read("CA file", ca_file)?,
                    credentials: Credentials::Token(token),
                }
            }
        };
        Client::from_config(config).map_err(HollowError::Client)
    }
}

/// Runs the hollow nodes until SIGTERM or SIGINT. Nodes are left registered.
pub async fn run(opts: HollowOptions) -> Result<(), HollowError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(HollowError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(HollowError::Signal)?;
    run_until(opts, async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await
}

/// Runs the hollow nodes until `shutdown` completes; every task is stopped then.
pub async fn run_until(
    opts: HollowOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HollowError> {
    let client = opts.client()?;
    let node_api = Api::new(client.clone(), NODE_IN_FLIGHT);
    let api = Api::new(client, POD_IN_FLIGHT);
    let identities: Vec<NodeIdentity> = (0..opts.nodes)
        .map(|i| NodeIdentity::new(&opts.name_prefix, i))
        .collect();
    progress(&format!(
        "starting {} nodes {}..{} against {}",
        opts.nodes,
        identities[0].name,
        identities[identities.len() - 1].name,
        api.client().server()
    ));
    let mut tasks = JoinSet::new();

    // Pods and pod CIDRs first, so nothing bound during registration is missed.
    let (node_tx, node_rx) = mpsc::channel(256);
    let (pod_tx, pod_rx) = mpsc::channel::<Feed<pods::PodView>>(1024);
    tasks.spawn(watch::list_watch::<pods::NodeView>(
        api.clone(),
        "/api/v1/nodes".into(),
        format!("labelSelector={}", query_escape("type=hollow")),
        node_tx,
    ));
    tasks.spawn(watch::list_watch(
        api.clone(),
        "/api/v1/pods".into(),
        format!("fieldSelector={}", query_escape("spec.nodeName!=")),
        pod_tx,
    ));
    {
        let api = api.clone();
        let identities = identities.clone();
        tasks.spawn(async move { pods::run(api, &identities, node_rx, pod_rx).await });
    }

    let shared = Arc::new(Shared {
        api: node_api,
        epoch: tokio::time::Instant::now(),
        nodes: opts.nodes,
        registered: AtomicUsize::new(0),
    });
    for node in identities {
        tasks.spawn(node::run_node(shared.clone(), node));
    }

    shutdown.await;
    progress("stopping (nodes stay registered)");
    tasks.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_the_kubernetes_formats() {
        let t: jiff::Timestamp = "2026-11-26T16:00:00.123456789Z".parse().unwrap();
        assert_eq!(rfc3339(t), "2026-11-26T16:00:00Z");
        assert_eq!(micro_time(t), "2026-11-26T16:00:00.123456Z");
        let whole: jiff::Timestamp = "2026-11-26T16:00:00Z".parse().unwrap();
        assert_eq!(micro_time(whole), "2026-11-26T16:00:00.000000Z");
    }

    #[test]
    fn prefixes_must_make_valid_node_names() {
        for ok in ["hollow", "h", "rack-7.a"] {
            assert!(valid_prefix(ok), "{ok}");
        }
        for bad in ["", "Hollow", "-h", "h-", "h_1", "h/1"] {
            assert!(!valid_prefix(bad), "{bad}");
        }
    }

    #[test]
    fn a_missing_token_file_is_a_usage_error() {
        let opts = HollowOptions {
            connect: Connect::Token {
                server: "https://127.0.0.1:6443".into(),
                token_file: "/nonexistent/join-token".into(),
                ca_file: "/nonexistent/ca.crt".into(),
            },
            nodes: 1,
            name_prefix: "hollow".into(),
        };
        let err = opts.client().unwrap_err();
        assert!(err.is_usage());
        assert_eq!(
            err.to_string(),
            "reading the token file /nonexistent/join-token"
        );
        let zero = HollowOptions { nodes: 0, ..opts };
        assert!(matches!(zero.client(), Err(HollowError::NoNodes)));
    }
}
