//! The pod network: a bridge per node holding the gateway of the node's
//! podCIDR, a veth pair per pod (its peer made inside the pod's network
//! namespace), host-local IPAM, routes to the other nodes' podCIDRs (host-gw) and
//! masquerade for traffic leaving the cluster ([`nft`]). With
//! [`crate::runtime`], the only place that talks to the kernel.

pub mod nft;
