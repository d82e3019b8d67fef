//! Authentication and PKI for the master: the cluster CA and the certificates it
//! issues (`pki`, `certs`, `sans`), the API server's TLS configuration (`tls`),
//! who a request comes from (`authenticator`, from client certificates or the
//! bearer tokens of `tokens.csv` in `tokens`), join tokens (`join`), what agents
//! get from the PKI (`nodes`) and kubeconfig files (`kubeconfig`). Everything lives under the data dir, which
//! is always a parameter. Authorization (what a user may do) is not here, nor is
//! serving HTTP.

mod authenticator;
mod certs;
mod error;
mod files;
mod join;
mod kubeconfig;
mod nodes;
mod pki;
mod sans;
mod tls;
mod tokens;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use authenticator::{bearer_token, Authenticator, UserInfo};
#[cfg(test)]
pub(crate) use certs::subject_identity;
pub use certs::CA_COMMON_NAME;
pub use error::AuthError;
pub use join::{
    create_join_token, ensure_join_token, generate_join_token, join_token_id, BOOTSTRAP_GROUP,
    BOOTSTRAP_USER_PREFIX, JOIN_TOKEN_FILE,
};
pub use kubeconfig::{
    server_url, server_url_for, write_kubeconfig, Kubeconfig, ADMIN_KUBECONFIG, CLUSTER_NAME,
};
pub use nodes::{ca_hmac, JoinError, NodeAuthority, NodeCerts, NODES_GROUP, NODE_USER_PREFIX};
pub use pki::{CertAndKey, Pki, ADMIN_GROUP, ADMIN_USER, AGENT_CLIENT_USER, TLS_DIR};
pub use sans::{local_hostname, SanSet, KUBERNETES_NAMES};
pub use tls::ALPN_PROTOCOLS;
pub use tokens::{TokenFile, TokenTable, TOKENS_FILE};

/// Where Linux exposes the machine's hostname.
pub const PROC_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// Everything `bosun master` needs from this module, made ready by [`prepare`].
#[derive(Debug)]
pub struct MasterAuth {
    pub pki: Pki,
    pub authenticator: Arc<Authenticator>,
    pub tls_config: Arc<rustls::ServerConfig>,
    pub join_token: String,
    pub server_url: String,
    pub kubeconfig: PathBuf,
    /// Join signing and the master's TLS client for agents.
    pub nodes: Arc<NodeAuthority>,
}

/// Prepares `data_dir` for a master listening on `listen`: loads or creates the
/// PKI (serving certificate for the listen and advertise addresses, loopback,
/// `localhost`, the hostname and the `kubernetes*` names), the join token, the
/// admin kubeconfig for [`server_url_for`], the authenticator and the TLS config.
pub fn prepare(
    data_dir: &Path,
    listen: SocketAddr,
    advertise: Option<IpAddr>,
) -> Result<MasterAuth, AuthError> {
    let hostname = local_hostname(Path::new(PROC_HOSTNAME));
    let sans = SanSet::for_master(listen, advertise, hostname.as_deref());
    let pki = Pki::load_or_create(data_dir, &sans)?;
    let join_token = ensure_join_token(data_dir)?;
    let server_url = server_url_for(listen, advertise);
    let kubeconfig = pki.write_admin_kubeconfig(&server_url)?;
    let authenticator = Arc::new(Authenticator::new(data_dir, &[pki.ca_der().clone()])?);
    let tls_config = pki.server_config(Arc::clone(&authenticator))?;
    let nodes = Arc::new(pki.node_authority(Arc::clone(&authenticator))?);
    Ok(MasterAuth {
        nodes,
        pki,
        authenticator,
        tls_config,
        join_token,
        server_url,
        kubeconfig,
    })
}
