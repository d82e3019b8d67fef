//! The agent's two HTTP ports, as the kubelet has them: the read-only port
//! (:10255, plain HTTP, no auth) with `/healthz`, `/pods`, `/spec`,
//! `/stats/summary`, `/metrics` and `/metrics/resource`; and the authenticated
//! port (:10250, TLS, client certificates of the cluster CA required) with the
//! same plus `/containerLogs/{ns}/{pod}/{container}`.
//!
//! The servers see the node only through [`NodeView`] (pods and their stats) and
//! the host through [`Host`] (paths under /proc and /sys): they depend on neither
//! the kubelet nor the runtime. Nothing served here changes state.

mod body;
mod host;
mod logs;
mod machine;
mod metrics;
mod routes;
mod summary;
mod tls;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use body::Body;
pub use host::{parse_meminfo, parse_proc_stat_cpu, NodeSample};
pub use machine::{machine_info, MachineInfo};
pub use tls::server_config;

/// A pod, as the stats name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Resource usage of one pod's containers, sampled at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodStats {
    pub containers: Vec<ContainerStats>,
}

/// Resource usage of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    pub name: String,
    /// When the sample was taken.
    pub timestamp: SystemTime,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    /// Usage minus inactive file pages, as the kubelet counts it.
    pub memory_working_set_bytes: u64,
}

/// Usage of one filesystem (from statvfs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsStats {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

/// What the servers know of the node: its pods and their stats.
pub trait NodeView: Send + Sync + 'static {
    /// The node's pods as last seen/reported.
    fn pods(&self) -> Vec<k8s_openapi::api::core::v1::Pod>;
    /// Stats for `/stats/summary` and `/metrics/resource`.
    fn pod_stats(&self) -> Vec<(PodRef, PodStats)>;
    fn node_name(&self) -> String;
}

/// A statvfs of a path; `None` when it cannot be read. Given by the caller
/// because statvfs is a syscall (the runtime's business).
pub type StatFs = Arc<dyn Fn(&Path) -> Option<FsStats> + Send + Sync>;

/// Where the host's facts are read from (parameters so tests use their own).
#[derive(Clone)]
pub struct Host {
    /// `/proc`.
    pub proc: PathBuf,
    /// `/sys`.
    pub sys: PathBuf,
    /// `/etc` (for `machine-id`).
    pub etc: PathBuf,
    /// Filesystems reported in `/spec` and `/stats/summary` (node fs = the first,
    /// image fs = the second or the first).
    pub filesystems: Vec<PathBuf>,
    pub statfs: Option<StatFs>,
}

impl Host {
    /// The real host: /proc, /sys, /etc, with `filesystems` as given.
    pub fn real(filesystems: Vec<PathBuf>, statfs: Option<StatFs>) -> Host {
        Host {
            proc: "/proc".into(),
            sys: "/sys".into(),
            etc: "/etc".into(),
            filesystems,
            statfs,
        }
    }
}

/// Everything both servers share.
pub struct Context {
    pub view: Arc<dyn NodeView>,
    pub host: Host,
    /// `--log-root`.
    pub log_root: PathBuf,
    state: summary::Rates,
    log_streams: AtomicUsize,
}

impl Context {
    pub fn new(view: Arc<dyn NodeView>, host: Host, log_root: PathBuf) -> Arc<Context> {
        Arc::new(Context {
            view,
            host,
            log_root,
            state: summary::Rates::default(),
            log_streams: AtomicUsize::new(0),
        })
    }

    /// How many container logs are being streamed right now.
    pub fn active_log_streams(&self) -> usize {
        self.log_streams.load(Ordering::Relaxed)
    }
}

/// Errors of setting the servers up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no {what} found in {path}")]
    NoPem { what: &'static str, path: PathBuf },
    #[error("building the client certificate verifier")]
    Verifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("building the TLS configuration")]
    Tls {
        #[source]
        source: rustls::Error,
    },
}

/// How long a client may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which port a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Port {
    ReadOnly,
    Authenticated,
    /// The authenticated port, for a client outside [`tls::ALLOWED_GROUP`].
    Denied,
}

/// Serves the read-only port on `listener` until `shutdown` resolves; then stops
/// accepting and ends the open connections.
pub async fn serve_read_only(
    listener: TcpListener,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, ctx, None, shutdown).await
}

/// Serves the authenticated port (TLS with `tls`, see [`server_config`]) on
/// `listener` until `shutdown` resolves.
pub async fn serve_authenticated(
    listener: TcpListener,
    ctx: Arc<Context>,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    serve(listener, ctx, Some(tls), shutdown).await
}

async fn serve(
    listener: TcpListener,
    ctx: Arc<Context>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let port = if tls.is_some() {
        Port::Authenticated
    } else {
        Port::ReadOnly
    };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let ctx = ctx.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            match acceptor {
                None => serve_connection(TokioIo::new(tcp), ctx, port, peer).await,
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => return,
                        };
                    let allowed = tls::client_allowed(stream.get_ref().1.peer_certificates());
                    let port = if allowed { port } else { Port::Denied };
                    serve_connection(TokioIo::new(stream), ctx, port, peer).await
                }
            }
        });
    }
    conns.shutdown().await;
}

async fn serve_connection<I>(io: I, ctx: Arc<Context>, port: Port, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let ctx = ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&ctx, port, req).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}
