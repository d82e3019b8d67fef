//! `bosun master` as a process: prepares PKI and credentials in the data dir, opens
//! the store, creates the initial namespaces and serves the API until SIGTERM or
//! SIGINT.

use crate::apiserver::{self, Cidr, CommitStats, Server};
use crate::auth;
use crate::store::{SqliteOptions, SqliteStore, Store};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

/// Everything `bosun master` is told on its command line.
#[derive(Clone, Debug)]
pub struct MasterOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub advertise_address: Option<IpAddr>,
    pub service_cidr: String,
    /// Settings of the controllers.
    pub controllers: crate::controllers::Options,
    /// bosun's version, for `/version`.
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A flag or setting is wrong: the user can fix it (exit code 64).
    #[error("{0}")]
    Config(String),
    #[error("preparing credentials in {dir}")]
    Auth {
        dir: String,
        #[source]
        source: auth::AuthError,
    },
    #[error("opening the store")]
    Store(#[source] crate::store::StoreError),
    #[error("listening on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("creating the initial namespaces: {0}")]
    Bootstrap(String),
    #[error("creating data dir {dir}")]
    DataDir {
        dir: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the master until a termination signal.
pub async fn run(opts: MasterOptions) -> Result<(), MasterError> {
    let service_cidr = Cidr::parse(&opts.service_cidr)
        .map_err(|e| MasterError::Config(format!("--service-cidr: {e}")))?;
    crate::controllers::nodeipam::allocator::CidrSet::new(
        &opts.controllers.cluster_cidr,
        opts.controllers.node_cidr_mask_size,
    )
    .map_err(|e| MasterError::Config(format!("--cluster-cidr / --node-cidr-mask-size: {e}")))?;
    std::fs::create_dir_all(&opts.data_dir).map_err(|source| MasterError::DataDir {
        dir: opts.data_dir.display().to_string(),
        source,
    })?;
    let creds =
        auth::prepare(&opts.data_dir, opts.listen, opts.advertise_address).map_err(|source| {
            MasterError::Auth {
                dir: opts.data_dir.display().to_string(),
                source,
            }
        })?;
    let store = SqliteStore::open(
        &opts.data_dir.join("db").join("state.db"),
        SqliteOptions::default(),
    )
    .map_err(MasterError::Store)?;
    let stats_store = store.clone();
    let stats: apiserver::StoreStats = Arc::new(move || {
        let m = stats_store.metrics();
        (
            CommitStats {
                buckets: m.commit_latency.buckets.clone(),
                sum_seconds: m.commit_latency.sum,
                count: m.commit_latency.count,
                writes: m.writes,
            },
            m.watchers as u64,
        )
    });
    let advertise = creds.server_url.trim_start_matches("https://").to_string();
    let server = Server::new(
        store.clone() as Arc<dyn Store>,
        apiserver::Config {
            advertise,
            service_cidr,
            version: opts.version.clone(),
        },
        Some(stats),
    );
    server.set_default_toleration_seconds(opts.controllers.default_unreachable_toleration_seconds);
    server.set_node_authority(creds.nodes.clone());
    server
        .bootstrap()
        .await
        .map_err(|e| MasterError::Bootstrap(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|source| MasterError::Listen {
            addr: opts.listen,
            source,
        })?;
    let authn = creds.authenticator.clone();
    let authenticate: apiserver::Authenticate =
        Arc::new(move |certs, header| authn.authenticate(certs, header).map(|u| u.name));
    tracing::info!(
        listen = %opts.listen,
        server = %creds.server_url,
        kubeconfig = %creds.kubeconfig.display(),
        "bosun master is serving"
    );
    println!(
        "bosun master serving on {} (kubeconfig: {})",
        creds.server_url,
        creds.kubeconfig.display()
    );
    // Stable across restarts of this master (so it takes its own lease back at
    // once) and different for every other master.
    let identity = format!(
        "{}_{}",
        auth::local_hostname(std::path::Path::new(auth::PROC_HOSTNAME))
            .unwrap_or_else(|| "master".into()),
        opts.listen
    );
    let controllers = tokio::spawn(crate::controllers::run(
        server.clone(),
        opts.controllers.clone(),
        identity,
    ));
    let serve = tokio::spawn(server.serve(listener, creds.tls_config.clone(), authenticate));
    tokio::select! {
        _ = wait_for_signal() => {}
        _ = controllers => {
            // Leadership lost: exit so a supervisor restarts us as a candidate.
            tracing::error!("the controller manager stopped");
        }
    }
    tracing::info!("shutting down");
    serve.abort();
    let _ = serve.await;
    store.close();
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
