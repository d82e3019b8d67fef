//! `bosun agent`: joins the cluster, registers the Node and keeps its Lease,
//! sets up the pod network once the master has given the node its podCIDR and
//! keeps the routes to the other nodes, runs the kubelet on this host's
//! runtime, image store and network, and serves the authenticated (:10250) and
//! read-only (:10255) ports. Stopping the agent leaves the pods running; the
//! next start adopts them. `bosun agent --cleanup` ([`cleanup`]) removes it all.

mod images;
mod machine;
mod net;
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
    /// The cluster's pod CIDR, e.g. `10.244.0.0/16`.
    pub cluster_cidr: String,
    /// The node's pod bridge, e.g. `bosun0`.
    pub bridge: String,
    /// The nftables table (family ip) the agent owns, e.g. `bosun`.
    pub nft_table: String,
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
    #[error("setting up the pod network")]
    Network(#[source] crate::network::NetError),
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

fn runtime_config(opts: &AgentOptions) -> RuntimeConfig {
    RuntimeConfig {
        pods_dir: opts.data_dir.join("pods"),
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
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(opts: AgentOptions) -> Result<(), AgentError> {
    if !valid_node_name(&opts.node_name) {
        return Err(AgentError::Usage(format!(
            "--node-name {:?} is not a valid node name: use lowercase letters, digits, '-' and '.'",
            opts.node_name
        )));
    }
    let net_opts = net_options(&opts)?;
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
    let runtime_cfg = runtime_config(&opts);
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

    let api = Api::new(client, 16);
    let IpAddr::V4(node_ipv4) = host_ip else {
        return Err(AgentError::Usage(format!(
            "--node-ip {host_ip}: the pod network needs an IPv4 node address"
        )));
    };
    let on_disk = {
        let r = runtime.clone();
        tokio::task::spawn_blocking(move || r.list())
            .await
            .map_err(|e| AgentError::Usage(e.to_string()))?
            .map_err(AgentError::Runtime)?
    };
    let live = on_disk.into_iter().map(|p| p.uid).collect();
    let network = net::start(&api, &net_opts, &opts.node_name, node_ipv4, live).await?;
    tokio::spawn(net::sync_routes(
        api.clone(),
        network.clone(),
        opts.node_name.clone(),
    ));

    let machine = Arc::new(Machine {
        runtime: runtime.clone(),
        images,
        network,
        resolv_conf: PathBuf::from("/etc/resolv.conf"),
    });
    let shared = Arc::new(
        Shared::new(
            api,
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

fn net_options(opts: &AgentOptions) -> Result<net::NetOptions, AgentError> {
    let cluster_cidr = api::cidr::Cidr::parse(&opts.cluster_cidr)
        .map_err(|e| AgentError::Usage(format!("--cluster-cidr: {e}")))?;
    for (flag, name) in [("--bridge", &opts.bridge), ("--nft-table", &opts.nft_table)] {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(AgentError::Usage(format!(
                "{flag} {name:?}: use 1 to 15 letters, digits, '-' or '_'"
            )));
        }
    }
    Ok(net::NetOptions {
        cluster_cidr,
        bridge: opts.bridge.clone(),
        nft_table: opts.nft_table.clone(),
        state_dir: opts.data_dir.join("network"),
    })
}

/// `bosun agent --cleanup`: stops every pod this agent runs and removes what it
/// made in the kernel — the pods' namespaces, cgroups and mounts, the bridge,
/// the routes to other nodes, the nftables table and the address claims. The
/// data dir keeps its credentials and images. Returns a one-line summary.
pub fn cleanup(opts: &AgentOptions) -> Result<String, AgentError> {
    let net_opts = net_options(opts)?;
    let mut pods = 0;
    if opts.data_dir.join("pods").is_dir() {
        let runtime = Runtime::open(runtime_config(opts)).map_err(AgentError::Runtime)?;
        for pod in runtime.list().map_err(AgentError::Runtime)? {
            runtime
                .remove_sandbox(&pod.uid)
                .map_err(AgentError::Runtime)?;
            pods += 1;
        }
        runtime.empty_trash_now().map_err(AgentError::Runtime)?;
    }
    crate::network::cleanup(&net_opts.bridge, &net_opts.nft_table, &net_opts.state_dir)
        .map_err(AgentError::Network)?;
    Ok(format!(
        "removed {pods} pods, bridge {}, routes to other nodes and nftables table {}",
        net_opts.bridge, net_opts.nft_table
    ))
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
