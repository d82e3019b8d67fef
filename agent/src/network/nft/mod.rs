//! nf_tables through netlink: batches of table, chain and rule messages that
//! the kernel applies atomically, with no `nft` binary, no libnftnl and no
//! GPL code — our own encoder, layered:
//!
//! - [`attr`]: netlink attributes (TLVs, nesting, big-endian integers);
//! - [`msg`]: one message's framing and the parsing of the kernel's replies;
//! - [`expr`]: rule expressions (payload, cmp, bitwise, meta, verdicts, masq)
//!   and the matches built from them;
//! - [`objects`]: tables, chains, rules and the messages that change them;
//! - [`batch`]: transactions and mapping an error to the message that caused it;
//! - [`socket`]: the `NETLINK_NETFILTER` socket;
//! - [`masquerade`]: the node's egress rule, the one user so far.
//!
//! Everything works in the calling thread's network namespace. Sets, maps,
//! `lookup`, `ct` and `nat` (the service proxy) extend [`expr`] and
//! [`objects`] and go into the same kind of batch.

pub mod attr;
pub mod batch;
pub mod error;
pub mod expr;
pub mod masquerade;
pub mod msg;
pub mod objects;
pub mod socket;

pub use batch::Batch;
pub use error::NftError;
pub use masquerade::Masquerade;
pub use msg::Family;
pub use socket::Socket;

use objects::Table;

/// Deletes table `ip <table>` with everything in it, if it exists (no error
/// when it does not).
pub fn delete_table(table: &str) -> Result<(), NftError> {
    let mut b = Batch::new();
    b.push(Table::new(Family::Ip, table)?.delete());
    match Socket::open()?.apply(&b) {
        Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => Ok(()),
        r => r,
    }
}

/// Whether table `ip <table>` exists.
pub fn table_exists(table: &str) -> Result<bool, NftError> {
    let t = Table::new(Family::Ip, table)?;
    Socket::open()?.exists(&t.get())
}
