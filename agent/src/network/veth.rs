//! A pod's veth pair: the host end a port of the bridge and up, the pod end
//! made directly inside the pod's network namespace as `eth0`, in one request,
//! then hairpin on the port; through a socket inside the pod's namespace,
//! eth0 up, the pod's address and its default route. The pair goes away with the namespace.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use sha2::{Digest, Sha256};

use super::addr::{self, LinkAddr};
use super::netlink::{is_errno, Netlink};
use super::{link, routes};

/// The name of the pod end inside the pod's namespace.
pub const POD_IFNAME: &str = "eth0";

/// The host end's name for pod `uid`: `bsn` and 12 hex digits of the uid's
/// SHA-256 (15 characters, the kernel's limit).
pub fn host_name(uid: &str) -> String {
    let digest = Sha256::digest(uid.as_bytes());
    format!("bsn{}", &hex::encode(digest)[..12])
}

/// Creates the pair `host` / `eth0` (in `netns`), the host end a port of
/// bridge `bridge` and up, both ends with `mtu`. `Ok(false)` when `host` already
/// exists (the pod is wired already).
pub(crate) fn create(
    nl: &mut Netlink,
    host: &str,
    bridge: u32,
    mtu: u32,
    netns: &File,
) -> io::Result<bool> {
    // Not up yet: the kernel opens the peer before the pair is linked and
    // answers ENOTCONN; configure_pod brings eth0 up.
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(POD_IFNAME.to_string()));
    peer.attributes.push(LinkAttribute::Mtu(mtu));
    peer.attributes
        .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));

    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(host.to_string()));
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes.push(LinkAttribute::Controller(bridge));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    match nl.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
        Ok(()) => Ok(true),
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Turns hairpin mode on for bridge port `host` (a pod can reach itself
/// through a service address that maps back to it).
pub(crate) fn hairpin(nl: &mut Netlink, host: &str) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(host.to_string()));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    nl.request(RouteNetlinkMessage::NewLink(msg), 0)
}

/// Inside the pod (through `pod`, a socket in its namespace): `ip/prefix` on
/// eth0, eth0 up, default route via `gateway`.
pub(crate) fn configure_pod(
    pod: &mut Netlink,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> io::Result<()> {
    let eth0 = link::by_name(pod, POD_IFNAME)?
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
    if !eth0.up {
        link::set_up(pod, eth0.index)?;
    }
    addr::add(
        pod,
        LinkAddr {
            index: eth0.index,
            ip,
            prefix,
        },
    )?;
    let route = routes::message(None, gateway, Some(eth0.index), routes::RTPROT_BOOT);
    pod.request(
        RouteNetlinkMessage::NewRoute(route),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_and_differ() {
        let a = host_name("0f9c2a1e-5b7d-4c1e-9a7f-1234567890ab");
        let b = host_name("0f9c2a1e-5b7d-4c1e-9a7f-1234567890ac");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("bsn"));
        assert_ne!(a, b);
        assert_eq!(a, host_name("0f9c2a1e-5b7d-4c1e-9a7f-1234567890ab"));
    }
}
