//! The pod network: a bridge per node holding the gateway of the node's
//! podCIDR, a veth pair per pod (its peer made inside the pod's network
//! namespace), host-local IPAM, routes to the other nodes' podCIDRs (host-gw) and
//! masquerade for traffic leaving the cluster ([`nft`]). With
//! [`crate::runtime`], the only place that talks to the kernel.
//!
//! Everything here is blocking: netlink-packet-route messages over blocking
//! NETLINK_ROUTE sockets ([`netlink`]), one kept for the node's namespace and
//! one made per attach inside the pod's namespace. The agent calls it from
//! `spawn_blocking`. Which namespace is "the node's" is the namespace of the
//! thread calling [`Network::setup`] and [`cleanup`].
//!
//! Not here: the pod's namespace itself (the runtime makes and removes it), the
//! watch of Nodes (the daemon turns them into [`peer_routes`] and calls
//! [`Network::sync_routes`]).

mod addr;
mod bridge;
pub mod ipam;
mod link;
mod masquerade;
mod netlink;
pub mod nft;
mod routes;
pub mod sysctl;
pub mod veth;

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use api::cidr::Cidr;

pub use routes::{peer_routes, PeerRoute, RTPROT_BOSUN};

use addr::LinkAddr;
use ipam::Ipam;
use netlink::Netlink;

/// How this node's pod network looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConfig {
    /// The bridge's name (`bosun0`).
    pub bridge: String,
    /// This node's spec.podCIDR.
    pub pod_cidr: Cidr,
    /// The whole cluster's pod CIDR (traffic to it is not masqueraded).
    pub cluster_cidr: Cidr,
    /// Where the IPAM state lives (DATA/network).
    pub state_dir: PathBuf,
    /// The nftables table holding the masquerade rule (`bosun`).
    pub nft_table: String,
    /// The pods' MTU; `None`: the MTU of the link holding `node_ip`.
    pub mtu: Option<u32>,
    /// The node's InternalIP.
    pub node_ip: Ipv4Addr,
}

/// Why a network operation failed, naming the link, namespace or address.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink socket")]
    Socket(#[source] io::Error),
    #[error("link {name}")]
    Link {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("link {name} exists and is not a bridge (kind {kind:?})")]
    NotABridge { name: String, kind: String },
    #[error("no link holds the node address {ip} (its MTU is the pods' MTU; or set the MTU)")]
    Uplink { ip: Ipv4Addr },
    #[error("address {addr} on {link}")]
    Address {
        addr: String,
        link: String,
        #[source]
        source: io::Error,
    },
    #[error("pod network namespace {netns}")]
    Netns {
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("veth {host} to eth0 in {netns}")]
    Veth {
        host: String,
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("eth0 ({ip}) in {netns}")]
    PodSide {
        ip: Ipv4Addr,
        netns: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("address {ip} is not in this node's podCIDR {cidr}")]
    NotInPodCidr { ip: Ipv4Addr, cidr: Cidr },
    #[error("no free address left in {cidr}")]
    Exhausted { cidr: Cidr },
    #[error("ipam state {path}")]
    Ipam {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sysctl {key}")]
    Sysctl {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("routes")]
    ListRoutes(#[source] io::Error),
    #[error("{} peer route(s) failed: {}", .0.len(), .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Routes(Vec<RouteFailure>),
    #[error("removing route {dst}")]
    DeleteRoute {
        dst: Cidr,
        #[source]
        source: io::Error,
    },
    #[error("masquerade in nft table {table}")]
    Masquerade {
        table: String,
        #[source]
        source: nft::NftError,
    },
}

/// One peer route the kernel refused (`sync_routes` applies the others). A
/// stale route that could not be removed has `via` 0.0.0.0 and no node.
#[derive(Debug)]
pub struct RouteFailure {
    pub route: PeerRoute,
    pub error: io::Error,
}

impl std::fmt::Display for RouteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.route, self.error)
    }
}

/// The node's pod network, made by [`Network::setup`]. Cheap to clone.
#[derive(Clone)]
pub struct Network {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: NetConfig,
    mtu: u32,
    bridge_index: u32,
    /// A socket in the node's namespace, reused by every call.
    node: Mutex<Netlink>,
    ipam: Mutex<Ipam>,
}

/// A lock whose holder panicked still guards consistent data here (every
/// change is one kernel request or one file), so poisoning is ignored.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Network {
    /// Makes (or adopts) the node's side in the calling thread's namespace:
    /// bridge `cfg.bridge` holding the gateway (the first address of
    /// pod_cidr) and nothing else IPv4, up; net.ipv4.ip_forward=1; the
    /// masquerade rule. Idempotent; repairs what differs.
    pub fn setup(cfg: NetConfig) -> Result<Network, NetError> {
        let mut nl = Netlink::open().map_err(NetError::Socket)?;
        let mtu = match cfg.mtu {
            Some(m) => m,
            None => uplink_mtu(&mut nl, cfg.node_ip)?,
        };
        let bridge = bridge::ensure(&mut nl, &cfg.bridge, mtu)?;
        let gateway = LinkAddr {
            index: bridge.index,
            ip: ipam::gateway(cfg.pod_cidr),
            prefix: cfg.pod_cidr.prefix,
        };
        let addr_err = |a: LinkAddr, source| NetError::Address {
            addr: format!("{}/{}", a.ip, a.prefix),
            link: cfg.bridge.clone(),
            source,
        };
        let present = addr::list(&mut nl).map_err(|e| addr_err(gateway, e))?;
        for a in present.iter().filter(|a| a.index == bridge.index) {
            if *a != gateway {
                addr::delete(&mut nl, *a).map_err(|e| addr_err(*a, e))?;
            }
        }
        if !present.contains(&gateway) {
            addr::add(&mut nl, gateway).map_err(|e| addr_err(gateway, e))?;
        }
        sysctl::set(Path::new(sysctl::PROC_SYS), "net.ipv4.ip_forward", "1")?;
        masquerade::ensure(&cfg)?;
        let ipam = Ipam::open(&ipam_dir(&cfg.state_dir), cfg.pod_cidr)?;
        tracing::info!(bridge = %cfg.bridge, pod_cidr = %cfg.pod_cidr, mtu, "pod network ready");
        Ok(Network {
            inner: Arc::new(Inner {
                mtu,
                bridge_index: bridge.index,
                node: Mutex::new(nl),
                ipam: Mutex::new(ipam),
                cfg,
            }),
        })
    }

    /// A free address for pod `uid` from pod_cidr, its file made before this returns;
    /// the same one again when `uid` already has one.
    pub fn allocate(&self, uid: &str) -> Result<Ipv4Addr, NetError> {
        lock(&self.inner.ipam).allocate(uid)
    }

    /// The address `uid` holds, if any (after an agent restart too).
    pub fn address_of(&self, uid: &str) -> Option<Ipv4Addr> {
        lock(&self.inner.ipam).address_of(uid)
    }

    /// Wires the pod's network namespace `netns` (its nsfs file): a veth pair,
    /// eth0 made inside `netns`, the host end a hairpin port of the bridge;
    /// `ip` on eth0, both up, default route via the gateway. Idempotent.
    pub fn attach(&self, uid: &str, netns: &Path, ip: Ipv4Addr) -> Result<(), NetError> {
        let cfg = &self.inner.cfg;
        if !cfg.pod_cidr.contains(ip) || ipam::pod_range(cfg.pod_cidr).is_none() {
            return Err(NetError::NotInPodCidr {
                ip,
                cidr: cfg.pod_cidr,
            });
        }
        let ns_err = |source| NetError::Netns {
            netns: netns.to_path_buf(),
            source,
        };
        let ns = File::open(netns).map_err(ns_err)?;
        let host = veth::host_name(uid);
        let veth_err = |source| NetError::Veth {
            host: host.clone(),
            netns: netns.to_path_buf(),
            source,
        };
        // The pod-side socket is made on another thread while this one
        // creates the pair.
        let wire = |node: &mut Netlink| -> io::Result<bool> {
            let created = veth::create(node, &host, self.inner.bridge_index, self.inner.mtu, &ns)?;
            veth::hairpin(node, &host)?;
            Ok(created)
        };
        let (created, mut pod) = std::thread::scope(|s| {
            let pod = s.spawn(|| Netlink::open_in(&ns));
            let created = wire(&mut lock(&self.inner.node)).map_err(veth_err)?;
            let pod = pod
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
                .map_err(ns_err)?;
            Ok::<_, NetError>((created, pod))
        })?;
        if !created && !has_eth0(&mut pod).map_err(ns_err)? {
            // The host end is left from an earlier namespace of this pod that
            // is still alive somewhere: replace it (rare; deleting costs).
            tracing::warn!(pod = %uid, host = %host, "replacing a stale host veth");
            let mut node = lock(&self.inner.node);
            link::delete(&mut node, &host).map_err(veth_err)?;
            wire(&mut node).map_err(veth_err)?;
        }
        veth::configure_pod(
            &mut pod,
            ip,
            cfg.pod_cidr.prefix,
            ipam::gateway(cfg.pod_cidr),
        )
        .map_err(|source| NetError::PodSide {
            ip,
            netns: netns.to_path_buf(),
            source,
        })?;
        tracing::debug!(pod = %uid, %ip, host = %host, "pod attached");
        Ok(())
    }

    /// Releases the pod's address (the veth pair goes with the pod's netns);
    /// idempotent.
    pub fn release(&self, uid: &str) -> Result<(), NetError> {
        lock(&self.inner.ipam).release(uid).map(|_| ())
    }

    /// Releases every allocation whose uid is not in `live`; how many.
    pub fn reclaim(&self, live: &HashSet<String>) -> Result<usize, NetError> {
        lock(&self.inner.ipam).reclaim(live)
    }

    /// Makes this node's peer routes exactly `routes`: adds the missing,
    /// replaces the changed, deletes the stale; routes without protocol
    /// [`RTPROT_BOSUN`] are never touched. A route the kernel refuses (e.g. an
    /// unreachable gateway) does not stop the others; they are all named in
    /// [`NetError::Routes`].
    pub fn sync_routes(&self, want: &[PeerRoute]) -> Result<(), NetError> {
        let mut nl = lock(&self.inner.node);
        let have = routes::installed(&mut nl).map_err(NetError::ListRoutes)?;
        let plan = routes::plan(&have, want);
        let mut failed = Vec::new();
        for dst in &plan.delete {
            if let Err(error) = routes::delete(&mut nl, *dst) {
                tracing::warn!(dst = %dst, error = %error, "removing a stale peer route");
                failed.push(RouteFailure {
                    route: PeerRoute {
                        dst: *dst,
                        via: Ipv4Addr::UNSPECIFIED,
                        node: String::new(),
                    },
                    error,
                });
            }
        }
        let puts = plan.add.iter().map(|r| (r, false));
        for (r, replace) in puts.chain(plan.replace.iter().map(|r| (r, true))) {
            if let Err(error) = routes::put(&mut nl, r, replace) {
                failed.push(RouteFailure {
                    route: r.clone(),
                    error,
                });
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(NetError::Routes(failed))
        }
    }

    pub fn config(&self) -> &NetConfig {
        &self.inner.cfg
    }

    /// The pods' MTU in use.
    pub fn mtu(&self) -> u32 {
        self.inner.mtu
    }
}

/// `bosun agent --cleanup`, in the calling thread's namespace: removes bridge
/// `bridge`, every route with protocol [`RTPROT_BOSUN`], nft table
/// `nft_table` and the IPAM state under `state_dir`. Idempotent; touches
/// nothing else.
pub fn cleanup(bridge: &str, nft_table: &str, state_dir: &Path) -> Result<(), NetError> {
    let mut nl = Netlink::open().map_err(NetError::Socket)?;
    link::delete(&mut nl, bridge).map_err(|source| NetError::Link {
        name: bridge.to_string(),
        source,
    })?;
    for r in routes::installed(&mut nl).map_err(NetError::ListRoutes)? {
        routes::delete(&mut nl, r.dst)
            .map_err(|source| NetError::DeleteRoute { dst: r.dst, source })?;
    }
    masquerade::delete(nft_table)?;
    let dir = ipam_dir(state_dir);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(NetError::Ipam {
                path: dir,
                source: e,
            })
        }
        _ => {}
    }
    // The state dir itself only when nothing else lives there.
    let _ = std::fs::remove_dir(state_dir);
    Ok(())
}

/// Whether the namespace behind `pod` has its eth0.
fn has_eth0(pod: &mut Netlink) -> io::Result<bool> {
    Ok(link::by_name(pod, veth::POD_IFNAME)?.is_some())
}

fn ipam_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("ipam")
}

/// The MTU of the link holding `node_ip`.
fn uplink_mtu(nl: &mut Netlink, node_ip: Ipv4Addr) -> Result<u32, NetError> {
    let link_err = |source| NetError::Link {
        name: format!("holding {node_ip}"),
        source,
    };
    let index = addr::holder(nl, node_ip)
        .map_err(link_err)?
        .ok_or(NetError::Uplink { ip: node_ip })?;
    link::by_index(nl, index)
        .map_err(link_err)?
        .and_then(|l| l.mtu)
        .ok_or(NetError::Uplink { ip: node_ip })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_can_be_shared_across_threads() {
        fn shared<T: Clone + Send + Sync + 'static>() {}
        shared::<Network>();
    }

    #[test]
    fn route_failures_name_each_route() {
        let err = NetError::Routes(vec![RouteFailure {
            route: PeerRoute {
                dst: Cidr::parse("10.244.3.0/24").unwrap(),
                via: Ipv4Addr::new(192, 0, 2, 1),
                node: "n3".into(),
            },
            error: io::Error::from_raw_os_error(libc::ENETUNREACH),
        }]);
        let msg = err.to_string();
        assert!(
            msg.starts_with("1 peer route(s) failed: 10.244.3.0/24 via 192.0.2.1 (node n3): "),
            "{msg}"
        );
    }
}
