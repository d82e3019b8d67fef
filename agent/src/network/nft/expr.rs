//! nf_tables expressions — the instructions of a rule's virtual machine — and
//! how each is encoded (`NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }`).
//!
//! A rule loads packet data into registers (`payload`, `meta`), transforms it
//! (`bitwise`), tests it (`cmp`; later `lookup` in a set) and acts
//! (`immediate` verdicts, `masq`; later `ct`, `nat`, verdict maps). New kinds
//! are a variant and an arm in [`Expr::encode`]. The `match_*` helpers build
//! the expression sequences `nft` itself emits for common matches.

use std::net::Ipv4Addr;

use api::cidr::Cidr;

use super::attr::Attrs;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// A register. `Verdict` is where a rule's verdict goes; `R1`..`R4` are the
/// 16-byte data registers `nft` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Register {
    Verdict = 0,
    R1 = 1,
    R2 = 2,
    R3 = 3,
    R4 = 4,
}

/// Where a `payload` expression reads from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum PayloadBase {
    LinkLayer = 0,
    Network = 1,
    Transport = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CmpOp {
    Eq = 0,
    Neq = 1,
    Lt = 2,
    Lte = 3,
    Gt = 4,
    Gte = 5,
}

/// `NFT_META_*`: packet metadata a `meta` expression loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetaKey {
    Len = 0,
    Protocol = 1,
    Mark = 3,
    Iif = 4,
    Oif = 5,
    IifName = 6,
    OifName = 7,
    NfProto = 15,
    L4Proto = 16,
}

/// What a rule (or a verdict map entry) decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Continue,
    Return,
    Jump(String),
    Goto(String),
}

impl Verdict {
    /// `NF_DROP`, `NF_ACCEPT` and the negative `NFT_*` codes.
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Continue => -1,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
            Verdict::Return => -5,
        }
    }

    /// `NFTA_DATA_VERDICT { NFTA_VERDICT_CODE [, NFTA_VERDICT_CHAIN] }`.
    pub fn encode(&self, a: &mut Attrs) {
        a.nested(NFTA_DATA_VERDICT, |v| {
            v.be32(NFTA_VERDICT_CODE, self.code() as u32);
            if let Verdict::Jump(c) | Verdict::Goto(c) = self {
                v.str(NFTA_VERDICT_CHAIN, c);
            }
        });
    }
}

/// One expression of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// Loads `len` bytes at `offset` of the `base` header into `dreg`.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
        dreg: Register,
    },
    /// Compares `sreg` with `data`; the rule stops here when false.
    Cmp {
        sreg: Register,
        op: CmpOp,
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`, over `mask.len()` bytes.
    Bitwise {
        sreg: Register,
        dreg: Register,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    /// Loads packet metadata into `dreg`.
    Meta { key: MetaKey, dreg: Register },
    /// Sets the verdict.
    Verdict(Verdict),
    /// Source NAT to the outgoing interface's address.
    Masq,
}

impl Expr {
    /// The kernel's name of the expression type.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Meta { .. } => "meta",
            Expr::Verdict(_) => "immediate",
            Expr::Masq => "masq",
        }
    }

    /// Appends `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { … } }`,
    /// attributes in the order `nft` sends them.
    pub fn encode(&self, a: &mut Attrs) {
        a.nested(NFTA_LIST_ELEM, |e| {
            e.str(NFTA_EXPR_NAME, self.name());
            e.nested(NFTA_EXPR_DATA, |d| self.encode_data(d));
        });
    }

    fn encode_data(&self, d: &mut Attrs) {
        match self {
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                // NFTA_PAYLOAD_DREG, _BASE, _OFFSET, _LEN
                d.be32(1, *dreg as u32)
                    .be32(2, *base as u32)
                    .be32(3, *offset)
                    .be32(4, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                // NFTA_CMP_SREG, _OP, _DATA
                d.be32(1, *sreg as u32).be32(2, *op as u32);
                d.nested(3, |v| {
                    v.bytes(NFTA_DATA_VALUE, data);
                });
            }
            Expr::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => {
                // NFTA_BITWISE_SREG, _DREG, _LEN, _MASK, _XOR (op mask-xor, the default)
                d.be32(1, *sreg as u32)
                    .be32(2, *dreg as u32)
                    .be32(3, mask.len() as u32);
                d.nested(4, |v| {
                    v.bytes(NFTA_DATA_VALUE, mask);
                });
                d.nested(5, |v| {
                    v.bytes(NFTA_DATA_VALUE, xor);
                });
            }
            Expr::Meta { key, dreg } => {
                // NFTA_META_KEY, _DREG
                d.be32(2, *key as u32).be32(1, *dreg as u32);
            }
            Expr::Verdict(v) => {
                // NFTA_IMMEDIATE_DREG, _DATA
                d.be32(1, Register::Verdict as u32);
                d.nested(2, |data| v.encode(data));
            }
            Expr::Masq => {}
        }
    }
}

/// Offset of the source address in the IPv4 header.
pub const IPV4_SADDR: u32 = 12;
/// Offset of the destination address in the IPv4 header.
pub const IPV4_DADDR: u32 = 16;

/// `ip saddr|daddr [!=] <cidr>` (`offset` = [`IPV4_SADDR`] or
/// [`IPV4_DADDR`]), as `nft` encodes it: a byte-aligned prefix loads only its
/// bytes and compares them; any other prefix loads the address, masks it and
/// compares. A /0 becomes a mask of zero: `==` always holds, `!=` never.
pub fn match_ipv4(offset: u32, op: CmpOp, cidr: Cidr) -> Vec<Expr> {
    let prefix = u32::from(cidr.prefix.min(32));
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    let net = (u32::from(cidr.base) & mask).to_be_bytes();
    if prefix % 8 == 0 && prefix > 0 {
        let n = (prefix / 8) as usize;
        return vec![
            Expr::Payload {
                base: PayloadBase::Network,
                offset,
                len: n as u32,
                dreg: Register::R1,
            },
            Expr::Cmp {
                sreg: Register::R1,
                op,
                data: net[..n].to_vec(),
            },
        ];
    }
    vec![
        Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: 4,
            dreg: Register::R1,
        },
        Expr::Bitwise {
            sreg: Register::R1,
            dreg: Register::R1,
            mask: mask.to_be_bytes().to_vec(),
            xor: vec![0; 4],
        },
        Expr::Cmp {
            sreg: Register::R1,
            op,
            data: net.to_vec(),
        },
    ]
}

/// `ip saddr|daddr == <addr>`.
pub fn match_ipv4_addr(offset: u32, addr: Ipv4Addr) -> Vec<Expr> {
    match_ipv4(
        offset,
        CmpOp::Eq,
        Cidr {
            base: addr,
            prefix: 32,
        },
    )
}

/// `oifname|iifname == <name>`: the name NUL-padded to IFNAMSIZ (16), as
/// `nft` compares it. `key` is [`MetaKey::OifName`] or [`MetaKey::IifName`].
pub fn match_ifname(key: MetaKey, op: CmpOp, name: &str) -> Vec<Expr> {
    let mut data = name.as_bytes().to_vec();
    data.resize(16, 0);
    vec![
        Expr::Meta {
            key,
            dreg: Register::R1,
        },
        Expr::Cmp {
            sreg: Register::R1,
            op,
            data,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn byte_aligned_prefix_loads_only_its_bytes() {
        let e = match_ipv4(IPV4_SADDR, CmpOp::Eq, cidr("10.244.1.0/24"));
        assert_eq!(
            e,
            [
                Expr::Payload {
                    base: PayloadBase::Network,
                    offset: 12,
                    len: 3,
                    dreg: Register::R1
                },
                Expr::Cmp {
                    sreg: Register::R1,
                    op: CmpOp::Eq,
                    data: vec![10, 244, 1]
                },
            ]
        );
    }

    #[test]
    fn other_prefix_is_masked() {
        let e = match_ipv4(IPV4_SADDR, CmpOp::Neq, cidr("10.240.0.0/12"));
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[1],
            Expr::Bitwise {
                sreg: Register::R1,
                dreg: Register::R1,
                mask: vec![0xff, 0xf0, 0, 0],
                xor: vec![0; 4]
            }
        );
        assert_eq!(
            e[2],
            Expr::Cmp {
                sreg: Register::R1,
                op: CmpOp::Neq,
                data: vec![10, 240, 0, 0]
            }
        );
    }

    #[test]
    fn host_bits_and_zero_prefix() {
        // Host bits set by hand are masked off.
        let c = Cidr {
            base: Ipv4Addr::new(10, 244, 1, 77),
            prefix: 24,
        };
        let e = match_ipv4(IPV4_DADDR, CmpOp::Eq, c);
        assert!(matches!(&e[1], Expr::Cmp { data, .. } if data == &[10, 244, 1]));
        // /0: mask of zero compared with zero.
        let e = match_ipv4(IPV4_DADDR, CmpOp::Eq, cidr("0.0.0.0/0"));
        assert!(matches!(&e[1], Expr::Bitwise { mask, .. } if mask == &[0; 4]));
        assert!(matches!(&e[2], Expr::Cmp { data, .. } if data == &[0; 4]));
        // /32: a full-address compare.
        let e = match_ipv4_addr(IPV4_DADDR, Ipv4Addr::new(10, 0, 0, 1));
        assert!(matches!(
            &e[0],
            Expr::Payload {
                len: 4,
                offset: 16,
                ..
            }
        ));
        assert!(matches!(&e[1], Expr::Cmp { data, .. } if data == &[10, 0, 0, 1]));
    }

    #[test]
    fn masq_has_an_empty_data_nest() {
        let mut a = Attrs::new();
        Expr::Masq.encode(&mut a);
        // From `nft … masquerade`: LIST_ELEM { NAME "masq", DATA {} }.
        assert_eq!(
            a.encoded().unwrap(),
            [0x14, 0, 1, 0x80, 9, 0, 1, 0, b'm', b'a', b's', b'q', 0, 0, 0, 0, 4, 0, 2, 0x80]
        );
    }

    #[test]
    fn jump_verdict_names_the_chain() {
        let mut a = Attrs::new();
        Verdict::Jump("svc".into()).encode(&mut a);
        let b = a.encoded().unwrap();
        // DATA_VERDICT { CODE -3, CHAIN "svc" }
        assert_eq!(
            b,
            [
                0x14, 0, 2, 0x80, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xfd, 8, 0, 2, 0, b's', b'v', b'c',
                0
            ]
        );
    }
}
