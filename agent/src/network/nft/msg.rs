//! nf_tables netlink messages: the `nlmsghdr` + `nfgenmsg` framing of one
//! request, and the parsing of what the kernel sends back (data, ACKs,
//! errors).
//!
//! A request is `nlmsghdr { len, type = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_*,
//! flags, seq, pid }` (host order), then `nfgenmsg { family, version = 0,
//! res_id (big-endian) }`, then the attributes.

use nix::errno::Errno;

use super::attr::Attrs;
use super::error::NftError;

pub const NLMSG_HDRLEN: usize = 16;
pub const NFGENMSG_LEN: usize = 4;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;

pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub const NFNL_MSG_BATCH_END: u16 = 0x11;

/// `NFT_MSG_*`: what a message asks of nf_tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    NewTable = 0,
    GetTable = 1,
    DelTable = 2,
    NewChain = 3,
    GetChain = 4,
    DelChain = 5,
    NewRule = 6,
    GetRule = 7,
    DelRule = 8,
    NewSet = 9,
    GetSet = 10,
    DelSet = 11,
    NewSetElem = 12,
    GetSetElem = 13,
    DelSetElem = 14,
    NewGen = 15,
    GetGen = 16,
}

impl MsgType {
    /// The netlink message type: subsystem in the high byte.
    pub fn nlmsg_type(self) -> u16 {
        NFNL_SUBSYS_NFTABLES << 8 | self as u16
    }
}

/// `NFPROTO_*`: the family of a table (what `nft` calls `ip`, `inet` …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Family {
    Unspec = 0,
    Inet = 1,
    Ip = 2,
    Arp = 3,
    Netdev = 5,
    Bridge = 7,
    Ip6 = 10,
}

impl Family {
    /// The name `nft` uses for the family.
    pub fn name(self) -> &'static str {
        match self {
            Family::Unspec => "unspec",
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Arp => "arp",
            Family::Netdev => "netdev",
            Family::Bridge => "bridge",
            Family::Ip6 => "ip6",
        }
    }
}

/// One nf_tables request: its type, family, flags beyond `NLM_F_REQUEST`,
/// attributes, and a description of what it does (for errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub ty: MsgType,
    pub family: Family,
    pub flags: u16,
    pub attrs: Attrs,
    /// E.g. `add chain ip bosun postrouting`.
    pub what: String,
}

impl Message {
    /// Appends this message with sequence number `seq` to `buf`;
    /// `extra_flags` (e.g. `NLM_F_ACK`) are or-ed into its own.
    pub fn encode_into(
        &self,
        buf: &mut Vec<u8>,
        seq: u32,
        extra_flags: u16,
    ) -> Result<(), NftError> {
        let body = self.attrs.encoded().ok_or_else(|| NftError::TooLarge {
            what: self.what.clone(),
        })?;
        let flags = NLM_F_REQUEST | self.flags | extra_flags;
        put_header(
            buf,
            self.ty.nlmsg_type(),
            flags,
            seq,
            self.family as u8,
            0,
            body,
        )
        .ok_or_else(|| NftError::TooLarge {
            what: self.what.clone(),
        })
    }
}

/// Writes `nlmsghdr` + `nfgenmsg` + `body`; `None` when the total does not
/// fit the 32-bit length.
pub fn put_header(
    buf: &mut Vec<u8>,
    nlmsg_type: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    body: &[u8],
) -> Option<()> {
    let len = u32::try_from(NLMSG_HDRLEN + NFGENMSG_LEN + body.len()).ok()?;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&nlmsg_type.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    buf.push(family);
    buf.push(0); // NFNETLINK_V0
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(body);
    // Attributes keep the body 4-aligned, so no padding is needed here.
    Some(())
}

/// One message from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// `NLMSG_ERROR` with error 0: the request `seq` succeeded.
    Ack { seq: u32 },
    /// `NLMSG_ERROR` with an errno: the request `seq` failed.
    Error { seq: u32, errno: Errno },
    /// End of a dump.
    Done { seq: u32 },
    /// An nf_tables object (e.g. `NFT_MSG_NEWTABLE` answering a GET).
    Data {
        seq: u32,
        nlmsg_type: u16,
        family: u8,
        attrs: &'a [u8],
    },
}

/// Splits a buffer of received messages.
pub fn parse_replies(buf: &[u8]) -> Result<Vec<Reply<'_>>, NftError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[pos..];
        let len = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let ty = u16::from_ne_bytes([h[4], h[5]]);
        let seq = u32::from_ne_bytes([h[8], h[9], h[10], h[11]]);
        if len < NLMSG_HDRLEN || len > h.len() {
            return Err(NftError::Protocol(format!(
                "message length {len} at offset {pos} of a {}-byte read",
                buf.len()
            )));
        }
        let payload = &h[NLMSG_HDRLEN..len];
        match ty {
            NLMSG_NOOP => {}
            NLMSG_DONE => out.push(Reply::Done { seq }),
            NLMSG_ERROR => {
                let code = payload
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| NftError::Protocol("short NLMSG_ERROR".into()))?;
                out.push(if code == 0 {
                    Reply::Ack { seq }
                } else {
                    Reply::Error {
                        seq,
                        errno: Errno::from_raw(code.saturating_neg()),
                    }
                });
            }
            _ => {
                if payload.len() < NFGENMSG_LEN {
                    return Err(NftError::Protocol(format!(
                        "message type {ty:#x} without nfgenmsg"
                    )));
                }
                out.push(Reply::Data {
                    seq,
                    nlmsg_type: ty,
                    family: payload[0],
                    attrs: &payload[NFGENMSG_LEN..],
                });
            }
        }
        pos += super::attr::align4(len);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let mut a = Attrs::new();
        a.str(1, "bt_cap");
        let m = Message {
            ty: MsgType::DelTable,
            family: Family::Ip,
            flags: 0,
            attrs: a,
            what: "delete table ip bt_cap".into(),
        };
        let mut buf = Vec::new();
        m.encode_into(&mut buf, 1, 0).unwrap();
        // `nft delete table ip bt_cap`, as strace shows it.
        let want: [u8; 32] = [
            0x20, 0, 0, 0, 0x02, 0x0a, 0x01, 0, 1, 0, 0, 0, 0, 0, 0, 0, //
            2, 0, 0, 0, 0x0b, 0, 1, 0, b'b', b't', b'_', b'c', b'a', b'p', 0, 0,
        ];
        assert_eq!(buf, want);
    }

    fn nlmsg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&77u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn replies_are_split_and_classified() {
        let mut buf = Vec::new();
        let mut err = (-2i32).to_ne_bytes().to_vec(); // ENOENT
        err.extend_from_slice(&[0; 16]);
        buf.extend(nlmsg(NLMSG_ERROR, 3, &err));
        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&[0; 16]);
        buf.extend(nlmsg(NLMSG_ERROR, 4, &ack));
        buf.extend(nlmsg(
            MsgType::NewTable.nlmsg_type(),
            5,
            &[2, 0, 0, 0, 4, 0, 1, 0],
        ));
        buf.extend(nlmsg(NLMSG_DONE, 6, &[0, 0, 0, 0]));
        let got = parse_replies(&buf).unwrap();
        assert_eq!(
            got,
            [
                Reply::Error {
                    seq: 3,
                    errno: Errno::ENOENT
                },
                Reply::Ack { seq: 4 },
                Reply::Data {
                    seq: 5,
                    nlmsg_type: 0x0a00,
                    family: 2,
                    attrs: &[4, 0, 1, 0]
                },
                Reply::Done { seq: 6 },
            ]
        );
    }

    #[test]
    fn truncated_reply_is_an_error() {
        let mut buf = nlmsg(NLMSG_ERROR, 1, &[0; 20]);
        buf.truncate(30);
        assert!(matches!(parse_replies(&buf), Err(NftError::Protocol(_))));
        let short_err = nlmsg(NLMSG_ERROR, 1, &[0; 2]);
        assert!(matches!(
            parse_replies(&short_err),
            Err(NftError::Protocol(_))
        ));
    }
}
