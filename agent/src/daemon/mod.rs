//! `bosun agent`: joins the cluster, registers the Node and keeps its Lease,
//! runs the kubelet on this host's runtime and image store, and serves the
//! authenticated (:10250) and read-only (:10255) ports. Stopping the agent
//! leaves the pods running; the next start adopts them.

mod images;
mod machine;
mod view;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::hollow::requests::Api;
use crate::image::ImageStore;
use crate::join::{self, JoinError, PkiPaths};
use crate::kubelet::{self, Shared};
use crate::node::{self, NodeConfig, NodeError};
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError};
use crate::server::{self, FsStats, Host, ServerError};

pub use images::ImageOptions;
pub use machine::{hosts_file, pod_hostname, resolv_conf, Machine};

/// What `bosun agent` was asked to run.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub server: String,
    pub token_file: PathBuf,
    pub ca_file: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub node_name: String,
    pub node_ip: Option<IpAddr>,
    pub port: u16,
    pub read_only_port: u16,
    pub log_root: PathBuf,
    /// `None`: `bosun/<node-name>`.
    pub cgroup_parent: Option<String>,
    pub cgroup_root: PathBuf,
    /// The bosun binary, run as the container supervisor.
    pub shim_exe: PathBuf,
    /// Most processes a pod may have (`None`: unlimited, the kubelet's default).
    pub pod_pids_limit: Option<i64>,
    /// Registries, air-gap images and image garbage collection.
    pub images: ImageOptions,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The operator's flags or files are wrong (exit code 64).
    #[error("{0}")]
    Usage(String),
    #[error("joining the cluster")]
    Join(#[source] JoinError),
    #[error("registering the node")]
    Register(#[source] NodeError),
    #[error("starting the container runtime")]
    Runtime(#[source] RuntimeError),
    #[error("opening the image store")]
    Images(#[source] crate::image::ImageError),
    #[error("setting up the kubelet port")]
    Tls(#[source] ServerError),
    #[error("listening on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("making the API client")]
    Client(#[source] api::client::ClientError),
}

impl AgentError {
    pub fn is_usage(&self) -> bool {
        matches!(self, AgentError::Usage(_))
            || matches!(
                self,
                AgentError::Join(
                    JoinError::Read { .. }
                        | JoinError::BadToken { .. }
                        | JoinError::ServerUrl { .. }
                        | JoinError::UnknownToken { .. }
                        | JoinError::CaMismatch { .. }
                )
            )
    }
}

/// True for a valid node name (a DNS-1123 subdomain).
pub fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn progress(line: &str) {
    println!("agent: {line}");
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: AgentOptions) -> Result<(), AgentError> {
    if !valid_node_name(&opts.node_name) {
        return Err(AgentError::Usage(format!(
            "--node-name {:?} is not a valid node name: use lowercase letters, digits, '-' and '.'",
            opts.node_name
        )));
    }
    let node_cfg = NodeConfig {
        name: opts.node_name.clone(),
        node_ips: opts.node_ip.into_iter().collect(),
        port: opts.port,
        data_dir: opts.data_dir.clone(),
        paths: node::HostPaths::default(),
    };
    let ips = node_cfg.internal_ips();
    let Some(host_ip) = ips.first().copied() else {
        return Err(AgentError::Usage(
            "this host has no IPv4 address besides loopback: give --node-ip".into(),
        ));
    };
    std::fs::create_dir_all(&opts.data_dir).map_err(|e| {
        AgentError::Usage(format!(
            "cannot create --data-dir {}: {e}",
            opts.data_dir.display()
        ))
    })?;

    // The master may not be up yet (hosts booting together): wait for it.
    let mut delay = std::time::Duration::from_secs(1);
    let creds = loop {
        match join::ensure_credentials(
            &opts.server,
            &opts.token_file,
            opts.ca_file.as_deref(),
            &opts.data_dir,
            &opts.node_name,
            &ips,
        )
        .await
        {
            Ok(c) => break c,
            Err(e @ (JoinError::Fetch { .. } | JoinError::Join { .. })) => {
                progress(&format!(
                    "waiting for the master: {}; retrying in {}s",
                    crate::error_chain(&e),
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(AgentError::Join(e)),
        }
    };
    progress(&format!(
        "{} as node {} ({host_ip})",
        if creds.joined {
            "joined the cluster"
        } else {
            "using the credentials in the data dir"
        },
        opts.node_name
    ));
    let client = creds.client().map_err(AgentError::Client)?;

    let pods_dir = opts.data_dir.join("pods");
    let runtime_cfg = RuntimeConfig {
        pods_dir: pods_dir.clone(),
        log_root: opts.log_root.clone(),
        cgroup_root: opts.cgroup_root.clone(),
        cgroup_parent: opts
            .cgroup_parent
            .clone()
            .unwrap_or_else(|| format!("bosun/{}", opts.node_name)),
        shim_exe: opts.shim_exe.clone(),
        log_max_size: 10 << 20,
        // The kubelet's podPidsLimit default (-1): unlimited.
        pod_pids_limit: opts.pod_pids_limit,
    };
    let runtime = tokio::task::spawn_blocking(move || Runtime::new(runtime_cfg))
        .await
        .map_err(|e| AgentError::Usage(e.to_string()))?
        .map_err(AgentError::Runtime)?;
    let images =
        ImageStore::open(&crate::image::store_dir(&opts.data_dir)).map_err(AgentError::Images)?;
    let registries = opts.images.registries().map_err(AgentError::Usage)?;
    {
        let (store, dir) = (images.clone(), opts.data_dir.join("images"));
        let _ = tokio::task::spawn_blocking(move || images::import_airgap(&store, &dir, &progress))
            .await;
    }
    tokio::spawn(images::gc_loop(
        images.clone(),
        runtime.clone(),
        opts.images.gc,
    ));
    let puller = Arc::new(crate::image::Puller::new(images.clone(), registries));

    let mut delay = std::time::Duration::from_secs(1);
    let registered = loop {
        match node::register(&client, &node_cfg).await {
            Ok(r) => break r,
            Err(NodeError::Api { source, .. }) if crate::hollow::requests::retryable(&source) => {
                progress(&format!(
                    "waiting to register the node: {}; retrying in {}s",
                    crate::error_chain(&*source),
                    delay.as_secs()
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
            }
            Err(e) => return Err(AgentError::Register(e)),
        }
    };
    progress(&format!("node {} registered", opts.node_name));
    let cpus = registered.facts.cpus as i128;
    let memory = registered.facts.memory_bytes as i128;
    tokio::spawn(node::run_heartbeat(client.clone(), node_cfg, registered));

    let machine = Arc::new(Machine {
        runtime: runtime.clone(),
        images,
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
    });
    let shared = Arc::new(
        Shared::new(
            Api::new(client, 16),
            machine,
            opts.node_name.clone(),
            host_ip.to_string(),
            cpus * 1000,
            memory,
            pods_dir,
        )
        .with_puller(puller),
    );

    let statfs: server::StatFs = Arc::new(|p: &Path| {
        let (total, free) = node::facts::filesystem(p).ok()?;
        Some(FsStats {
            capacity_bytes: total,
            available_bytes: free,
            used_bytes: total.saturating_sub(free),
            ..FsStats::default()
        })
    });
    let ctx = server::Context::new(
        Arc::new(view::View {
            kubelet: shared.clone(),
            runtime,
        }),
        Host::real(vec![opts.data_dir.clone()], Some(statfs)),
        opts.log_root.clone(),
    );
    let pki = PkiPaths::new(&opts.data_dir);
    let tls = server::server_config(&pki.ca, &pki.serving_cert, &pki.serving_key)
        .map_err(AgentError::Tls)?;
    let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    let bind = |port: u16| async move {
        let addr = SocketAddr::new(any, port);
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Listen { addr, source })
    };
    let authenticated = bind(opts.port).await?;
    let read_only = if opts.read_only_port == 0 {
        None
    } else {
        Some(bind(opts.read_only_port).await?)
    };

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let mut servers = tokio::task::JoinSet::new();
    servers.spawn(server::serve_authenticated(
        authenticated,
        ctx.clone(),
        tls,
        stopped(stop_rx.clone()),
    ));
    if let Some(l) = read_only {
        servers.spawn(server::serve_read_only(l, ctx, stopped(stop_rx)));
    }
    progress(&format!(
        "serving :{} (authenticated) and :{} (read-only)",
        opts.port, opts.read_only_port
    ));
    let kubelet = tokio::spawn(kubelet::run(shared));

    shutdown_signal().await;
    progress("stopping; pods keep running");
    kubelet.abort();
    let _ = stop_tx.send(true);
    while servers.join_next().await.is_some() {}
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_are_dns_subdomains() {
        assert!(valid_node_name("node-a"));
        assert!(valid_node_name("n1.example.com"));
        assert!(!valid_node_name("Node"));
        assert!(!valid_node_name("-a"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name("a..b"));
    }
}
