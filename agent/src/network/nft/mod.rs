//! nf_tables through netlink: batches of table, chain and rule messages that
//! the kernel applies atomically, with no `nft` binary.
