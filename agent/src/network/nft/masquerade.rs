//! Egress masquerade: pods reaching addresses outside the cluster CIDR leave
//! with the node's address. One base chain, `postrouting` (type nat, hook
//! postrouting, priority 100 = `srcnat`), holding exactly one rule:
//! `ip saddr <pod_cidr> ip daddr != <cluster_cidr> masquerade`.

use api::cidr::Cidr;

use super::batch::Batch;
use super::error::NftError;
use super::expr::{match_ipv4, CmpOp, Expr, IPV4_DADDR, IPV4_SADDR};
use super::msg::Family;
use super::objects::{BaseChain, Chain, ChainType, Hook, Rule, Table};
use super::socket::Socket;

/// The chain the masquerade rule lives in.
pub const CHAIN: &str = "postrouting";
/// What `nft list` shows beside the rule.
pub const COMMENT: &str = "bosun: masquerade pod traffic leaving the cluster";
/// `srcnat`.
pub const PRIORITY: i32 = 100;

/// The node's masquerade rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Masquerade<'a> {
    /// Table `ip <table>` (bosun's own; e.g. "bosun").
    pub table: &'a str,
    /// This node's podCIDR: the sources to masquerade.
    pub pod_cidr: Cidr,
    /// The whole cluster's CIDR: destinations that keep the pod's address.
    pub cluster_cidr: Cidr,
    /// The node's bridge. The rule does not need it: pod-to-pod traffic on
    /// the bridge stays inside the cluster CIDR and so is not masqueraded.
    /// Kept for rules that will (hairpin traffic to services).
    pub bridge: &'a str,
}

impl Masquerade<'_> {
    /// In one atomic batch: table `ip <table>` (created if missing, never
    /// flushed as a whole), chain `postrouting` (created if missing), flushed
    /// and refilled with the one rule. Idempotent; leaves any other chain of
    /// the table alone. Works in the calling thread's network namespace.
    ///
    /// Closing the socket afterwards waits for the kernel to free the rule
    /// the flush replaced (an RCU grace period, ≈ 10–20 ms); callers that
    /// apply often keep a [`Socket`] and use [`Masquerade::ensure_on`].
    pub fn ensure(&self) -> Result<(), NftError> {
        self.ensure_on(&mut Socket::open()?)
    }

    /// [`Masquerade::ensure`] on an open socket (of the namespace to program).
    pub fn ensure_on(&self, socket: &mut Socket) -> Result<(), NftError> {
        socket.apply(&self.batch()?)
    }

    /// The batch [`Masquerade::ensure`] applies (pure).
    pub fn batch(&self) -> Result<Batch, NftError> {
        let table = Table::new(Family::Ip, self.table)?;
        let chain = Chain::new(table, CHAIN)?.hooked(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: PRIORITY,
            policy: None,
        });
        let rule = Rule::new(&chain)
            .with(match_ipv4(IPV4_SADDR, CmpOp::Eq, self.pod_cidr))
            .with(match_ipv4(IPV4_DADDR, CmpOp::Neq, self.cluster_cidr))
            .with([Expr::Masq])
            .comment(COMMENT);
        let mut b = Batch::new();
        b.push(table.add())
            .push(chain.add())
            .push(chain.flush())
            .push(rule.add());
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::nft::msg::MsgType;

    fn m<'a>(table: &'a str) -> Masquerade<'a> {
        Masquerade {
            table,
            pod_cidr: Cidr::parse("10.244.1.0/24").unwrap(),
            cluster_cidr: Cidr::parse("10.244.0.0/16").unwrap(),
            bridge: "bosun0",
        }
    }

    #[test]
    fn batch_is_table_chain_flush_rule() {
        let b = m("bosun").batch().unwrap();
        let kinds: Vec<_> = b.messages().iter().map(|m| m.ty).collect();
        assert_eq!(
            kinds,
            [
                MsgType::NewTable,
                MsgType::NewChain,
                MsgType::DelRule,
                MsgType::NewRule
            ]
        );
        let whats: Vec<_> = b.messages().iter().map(|m| m.what.as_str()).collect();
        assert_eq!(
            whats,
            [
                "add table ip bosun",
                "add chain ip bosun postrouting",
                "flush chain ip bosun postrouting",
                "add rule ip bosun postrouting"
            ]
        );
        // No table flush or delete: other chains survive.
        assert!(!kinds.contains(&MsgType::DelTable));
        assert!(!kinds.contains(&MsgType::DelChain));
    }

    #[test]
    fn bad_table_name_is_refused() {
        assert!(matches!(m("").batch(), Err(NftError::InvalidName { .. })));
    }
}
