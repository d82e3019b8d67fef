//! Links by name or index: look one up, bring it up, delete it. The kinds with
//! more to say (the bridge, the veth pair) have their own modules.

use std::io;

use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::netlink::{is_errno, Netlink};

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub index: u32,
    pub mtu: Option<u32>,
    pub kind: Option<InfoKind>,
    pub master: Option<u32>,
    pub up: bool,
}

/// The link called `name`, or `None` when there is none.
pub(crate) fn by_name(nl: &mut Netlink, name: &str) -> io::Result<Option<LinkState>> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    lookup(nl, msg)
}

/// The link with index `index`, or `None` when there is none.
pub(crate) fn by_index(nl: &mut Netlink, index: u32) -> io::Result<Option<LinkState>> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    lookup(nl, msg)
}

fn lookup(nl: &mut Netlink, msg: LinkMessage) -> io::Result<Option<LinkState>> {
    match nl.get(RouteNetlinkMessage::GetLink(msg)) {
        Ok(RouteNetlinkMessage::NewLink(m)) => Ok(Some(state(&m))),
        Ok(_) => Err(io::Error::other("unexpected answer to a link request")),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn state(m: &LinkMessage) -> LinkState {
    let mut s = LinkState {
        index: m.header.index,
        mtu: None,
        kind: None,
        master: None,
        up: m.header.flags.contains(LinkFlags::Up),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::Mtu(v) => s.mtu = Some(*v),
            LinkAttribute::Controller(v) => s.master = Some(*v),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        s.kind = Some(k.clone());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

/// Sets IFF_UP on link `index`.
pub(crate) fn set_up(nl: &mut Netlink, index: u32) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    nl.request(RouteNetlinkMessage::SetLink(msg), 0)
}

/// Deletes the link called `name`; no error when there is none.
pub(crate) fn delete(nl: &mut Netlink, name: &str) -> io::Result<()> {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    match nl.request(RouteNetlinkMessage::DelLink(msg), 0) {
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(()),
        other => other,
    }
}
