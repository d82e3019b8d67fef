//! The node's bridge: made when missing, adopted when present (and brought up),
//! refused when a link of that name is something else.

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::link::{self, LinkState};
use super::netlink::{is_errno, Netlink};
use super::NetError;

/// Makes sure bridge `name` exists and is up; returns its state.
pub(crate) fn ensure(nl: &mut Netlink, name: &str, mtu: u32) -> Result<LinkState, NetError> {
    let err = |source| NetError::Link {
        name: name.to_string(),
        source,
    };
    if let Some(s) = link::by_name(nl, name).map_err(err)? {
        if s.kind != Some(InfoKind::Bridge) {
            return Err(NetError::NotABridge {
                name: name.to_string(),
                kind: s.kind.map(|k| k.to_string()).unwrap_or_default(),
            });
        }
        if !s.up {
            link::set_up(nl, s.index).map_err(err)?;
        }
        return Ok(s);
    }
    let mut msg = LinkMessage::default();
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    match nl.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL) {
        Err(e) if !is_errno(&e, libc::EEXIST) => return Err(err(e)),
        _ => {}
    }
    link::by_name(nl, name)
        .map_err(err)?
        .ok_or_else(|| err(std::io::Error::from_raw_os_error(libc::ENODEV)))
}
