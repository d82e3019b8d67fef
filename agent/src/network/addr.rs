//! IPv4 addresses on links: list, add (create or replace), delete, and which
//! link holds a given address (the node's uplink).

use std::io;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::netlink::{is_errno, Netlink};

/// An IPv4 address with its prefix, on link `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LinkAddr {
    pub index: u32,
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

/// Every IPv4 address of this namespace.
pub(crate) fn list(nl: &mut Netlink) -> io::Result<Vec<LinkAddr>> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    let mut out = Vec::new();
    for m in nl.dump(RouteNetlinkMessage::GetAddress(msg))? {
        let RouteNetlinkMessage::NewAddress(a) = m else {
            continue;
        };
        if a.header.family != AddressFamily::Inet {
            continue;
        }
        let local = a.attributes.iter().find_map(|at| match at {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let address = a.attributes.iter().find_map(|at| match at {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = local.or(address) {
            out.push(LinkAddr {
                index: a.header.index,
                ip,
                prefix: a.header.prefix_len,
            });
        }
    }
    Ok(out)
}

fn message(a: LinkAddr) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = a.prefix;
    msg.header.index = a.index;
    msg.attributes
        .push(AddressAttribute::Local(IpAddr::V4(a.ip)));
    msg.attributes
        .push(AddressAttribute::Address(IpAddr::V4(a.ip)));
    msg
}

/// Puts `a` on its link (replacing the same address with another prefix).
pub(crate) fn add(nl: &mut Netlink, a: LinkAddr) -> io::Result<()> {
    nl.request(
        RouteNetlinkMessage::NewAddress(message(a)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Removes `a` from its link; no error when it is not there.
pub(crate) fn delete(nl: &mut Netlink, a: LinkAddr) -> io::Result<()> {
    match nl.request(RouteNetlinkMessage::DelAddress(message(a)), 0) {
        Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) => Ok(()),
        other => other,
    }
}

/// The index of the link holding `ip`, if any.
pub(crate) fn holder(nl: &mut Netlink, ip: Ipv4Addr) -> io::Result<Option<u32>> {
    Ok(list(nl)?.into_iter().find(|a| a.ip == ip).map(|a| a.index))
}
