//! The one place the pod network calls [`super::nft`]: the masquerade rule for
//! traffic from pods to outside the cluster, and its removal.

use super::{nft, NetConfig, NetError};

/// `ip saddr <pod_cidr> ip daddr != <cluster_cidr> masquerade` in table
/// `cfg.nft_table`, in the calling thread's namespace.
pub(crate) fn ensure(cfg: &NetConfig) -> Result<(), NetError> {
    nft::Masquerade {
        table: &cfg.nft_table,
        pod_cidr: cfg.pod_cidr,
        cluster_cidr: cfg.cluster_cidr,
        bridge: &cfg.bridge,
    }
    .ensure()
    .map_err(|source| NetError::Masquerade {
        table: cfg.nft_table.clone(),
        source,
    })
}

/// Deletes table `table` (no error when it does not exist).
pub(crate) fn delete(table: &str) -> Result<(), NetError> {
    nft::delete_table(table).map_err(|source| NetError::Masquerade {
        table: table.to_string(),
        source,
    })
}
