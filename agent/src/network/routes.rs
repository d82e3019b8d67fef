//! Routes to the other nodes' podCIDRs (host-gw): which ones this node wants
//! (pure, from the Node objects), what to change to get there (pure), and
//! applying that to the main table. Our routes carry protocol
//! [`RTPROT_BOSUN`]; a route without it is never replaced or deleted.

use std::io;
use std::net::Ipv4Addr;

use api::cidr::Cidr;
use k8s_openapi::api::core::v1::Node;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{is_errno, Netlink};

/// The route protocol number marking bosun's routes.
pub const RTPROT_BOSUN: u8 = 0xb0;
/// What `ip route add` uses; the pod's default route carries it.
pub(crate) const RTPROT_BOOT: u8 = 3;

/// A route to another node's podCIDR via its InternalIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRoute {
    pub dst: Cidr,
    pub via: Ipv4Addr,
    pub node: String,
}

impl std::fmt::Display for PeerRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {} (node {})", self.dst, self.via, self.node)
    }
}

/// The routes this node wants: one per other node that has a podCIDR and an
/// InternalIP, sorted by destination.
pub fn peer_routes(nodes: &[Node], me: &str) -> Vec<PeerRoute> {
    let mut out: Vec<PeerRoute> = nodes
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            if name == me {
                return None;
            }
            let spec = n.spec.as_ref()?;
            let dst = spec
                .pod_cidr
                .iter()
                .chain(spec.pod_cidrs.iter().flatten())
                .find_map(|c| Cidr::parse(c).ok())?;
            let via = n
                .status
                .as_ref()?
                .addresses
                .iter()
                .flatten()
                .filter(|a| a.type_ == "InternalIP")
                .find_map(|a| a.address.parse::<Ipv4Addr>().ok())?;
            Some(PeerRoute {
                dst,
                via,
                node: name.to_string(),
            })
        })
        .collect();
    out.sort_by_key(|r| (u32::from(r.dst.base), r.dst.prefix));
    out
}

/// A route of ours found in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Installed {
    pub dst: Cidr,
    pub via: Option<Ipv4Addr>,
}

/// What to do to turn `have` into `want`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Routes to create (no route of ours to that destination yet).
    pub add: Vec<PeerRoute>,
    /// Routes of ours whose gateway changed.
    pub replace: Vec<PeerRoute>,
    /// Routes of ours nobody wants any more.
    pub delete: Vec<Cidr>,
}

/// Pure: the changes that make our routes exactly `want`.
pub(crate) fn plan(have: &[Installed], want: &[PeerRoute]) -> Plan {
    let mut p = Plan::default();
    for w in want {
        match have.iter().find(|h| h.dst == w.dst) {
            None => p.add.push(w.clone()),
            Some(h) if h.via != Some(w.via) => p.replace.push(w.clone()),
            Some(_) => {}
        }
    }
    for h in have {
        if !want.iter().any(|w| w.dst == h.dst) && !p.delete.contains(&h.dst) {
            p.delete.push(h.dst);
        }
    }
    p
}

/// A unicast route message in the main table: `dst` (default when `None`) via
/// `gateway`, optionally out of link `oif`.
pub(crate) fn message(
    dst: Option<Cidr>,
    gateway: Ipv4Addr,
    oif: Option<u32>,
    protocol: u8,
) -> RouteMessage {
    let mut msg = base(dst, protocol);
    msg.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

fn base(dst: Option<Cidr>, protocol: u8) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::from(protocol);
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    if let Some(dst) = dst {
        msg.header.destination_prefix_length = dst.prefix;
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst.base)));
    }
    msg
}

/// Our routes (protocol [`RTPROT_BOSUN`]) in the main table.
pub(crate) fn installed(nl: &mut Netlink) -> io::Result<Vec<Installed>> {
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet;
    let mut out = Vec::new();
    for m in nl.dump(RouteNetlinkMessage::GetRoute(req))? {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        if r.header.address_family != AddressFamily::Inet
            || u8::from(r.header.protocol) != RTPROT_BOSUN
        {
            continue;
        }
        let table = r
            .attributes
            .iter()
            .find_map(|a| match a {
                RouteAttribute::Table(t) => Some(*t),
                _ => None,
            })
            .unwrap_or(u32::from(r.header.table));
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            continue;
        }
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut via = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => dst = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => via = Some(*ip),
                _ => {}
            }
        }
        out.push(Installed {
            dst: Cidr {
                base: dst,
                prefix: r.header.destination_prefix_length,
            },
            via,
        });
    }
    Ok(out)
}

/// Creates route `r` (`replace`: replaces our route to the same destination).
/// A foreign route to the same destination makes the creation fail with
/// EEXIST rather than being replaced.
pub(crate) fn put(nl: &mut Netlink, r: &PeerRoute, replace: bool) -> io::Result<()> {
    let msg = message(Some(r.dst), r.via, None, RTPROT_BOSUN);
    let flags = if replace {
        NLM_F_CREATE | NLM_F_REPLACE
    } else {
        NLM_F_CREATE | NLM_F_EXCL
    };
    nl.request(RouteNetlinkMessage::NewRoute(msg), flags)
}

/// Deletes our route to `dst` (only one with protocol [`RTPROT_BOSUN`]); no
/// error when there is none.
pub(crate) fn delete(nl: &mut Netlink, dst: Cidr) -> io::Result<()> {
    let msg = base(Some(dst), RTPROT_BOSUN);
    match nl.request(RouteNetlinkMessage::DelRoute(msg), 0) {
        Err(e) if is_errno(&e, libc::ESRCH) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(String::from),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                addresses: ip.map(|ip| {
                    vec![
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.into(),
                        },
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.into(),
                        },
                    ]
                }),
                ..Default::default()
            }),
        }
    }

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn peer_routes_skip_me_and_incomplete_nodes_and_sort() {
        let nodes = [
            node("c", Some("10.244.2.0/24"), Some("10.0.0.3")),
            node("a", Some("10.244.0.0/24"), Some("10.0.0.1")),
            node("b", Some("10.244.1.0/24"), Some("10.0.0.2")),
            node("d", None, Some("10.0.0.4")),
            node("e", Some("10.244.4.0/24"), None),
            node("f", Some("garbage"), Some("10.0.0.6")),
        ];
        let got = peer_routes(&nodes, "a");
        assert_eq!(
            got,
            vec![
                PeerRoute {
                    dst: cidr("10.244.1.0/24"),
                    via: "10.0.0.2".parse().unwrap(),
                    node: "b".into()
                },
                PeerRoute {
                    dst: cidr("10.244.2.0/24"),
                    via: "10.0.0.3".parse().unwrap(),
                    node: "c".into()
                },
            ]
        );
    }

    #[test]
    fn plan_adds_replaces_and_deletes() {
        let want = vec![
            PeerRoute {
                dst: cidr("10.244.1.0/24"),
                via: "10.0.0.2".parse().unwrap(),
                node: "b".into(),
            },
            PeerRoute {
                dst: cidr("10.244.2.0/24"),
                via: "10.0.0.3".parse().unwrap(),
                node: "c".into(),
            },
            PeerRoute {
                dst: cidr("10.244.3.0/24"),
                via: "10.0.0.4".parse().unwrap(),
                node: "d".into(),
            },
        ];
        let have = vec![
            Installed {
                dst: cidr("10.244.1.0/24"),
                via: Some("10.0.0.2".parse().unwrap()),
            },
            Installed {
                dst: cidr("10.244.2.0/24"),
                via: Some("10.0.0.9".parse().unwrap()),
            },
            Installed {
                dst: cidr("10.244.9.0/24"),
                via: Some("10.0.0.9".parse().unwrap()),
            },
        ];
        let p = plan(&have, &want);
        assert_eq!(p.add, vec![want[2].clone()]);
        assert_eq!(p.replace, vec![want[1].clone()]);
        assert_eq!(p.delete, vec![cidr("10.244.9.0/24")]);
        assert_eq!(plan(&[], &[]), Plan::default());
        let settled: Vec<Installed> = want
            .iter()
            .map(|w| Installed {
                dst: w.dst,
                via: Some(w.via),
            })
            .collect();
        assert_eq!(plan(&settled, &want), Plan::default());
    }
}
