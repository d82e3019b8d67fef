//! Netlink attributes (TLVs): the encoder every nf_tables message body is built
//! with, and a reader for the attributes of kernel replies.
//!
//! An attribute is `len: u16, type: u16` in host order, then the payload,
//! padded to 4 bytes (`len` counts the header and the payload, not the
//! padding). Nested attributes carry `NLA_F_NESTED` in their type, as libmnl
//! sets it. nf_tables wants its integers big-endian (`NLA_BE32`/`NLA_BE64`) and
//! its names NUL-terminated; both have their own `put_*` here so a caller
//! cannot pick the wrong order by accident.

/// Marks an attribute whose payload is itself a list of attributes.
pub const NLA_F_NESTED: u16 = 0x8000;
/// Marks an attribute whose payload is in network byte order (unused by
/// nf_tables, masked off by the reader).
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_HDRLEN: usize = 4;

/// Rounds `n` up to the 4-byte netlink alignment.
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A growing list of attributes, possibly nested. Lengths that do not fit a
/// `u16` (an attribute larger than 64 KiB) are remembered and reported by
/// [`Attrs::finish`] instead of being written wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    buf: Vec<u8>,
    too_long: bool,
}

impl Attrs {
    pub fn new() -> Attrs {
        Attrs::default()
    }

    /// Raw payload bytes.
    pub fn bytes(&mut self, ty: u16, payload: &[u8]) -> &mut Attrs {
        let len = NLA_HDRLEN + payload.len();
        self.header(ty, len);
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    /// A NUL-terminated string (`NLA_STRING`/`NLA_NUL_STRING`).
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Attrs {
        let len = NLA_HDRLEN + s.len() + 1;
        self.header(ty, len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad();
        self
    }

    /// A big-endian 32-bit integer (`NLA_BE32`), what nf_tables uses for
    /// registers, lengths, offsets, hooks, priorities and verdicts.
    pub fn be32(&mut self, ty: u16, v: u32) -> &mut Attrs {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A big-endian 64-bit integer (`NLA_BE64`): handles, counters.
    pub fn be64(&mut self, ty: u16, v: u64) -> &mut Attrs {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A nested attribute whose content `fill` writes.
    pub fn nested(&mut self, ty: u16, fill: impl FnOnce(&mut Attrs)) -> &mut Attrs {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        fill(self);
        let len = self.buf.len() - start;
        match u16::try_from(len) {
            Ok(l) => self.buf[start..start + 2].copy_from_slice(&l.to_ne_bytes()),
            Err(_) => self.too_long = true,
        }
        self
    }

    /// Appends already-encoded attributes (e.g. an expression list built apart).
    pub fn extend(&mut self, other: &Attrs) -> &mut Attrs {
        self.buf.extend_from_slice(&other.buf);
        self.too_long |= other.too_long;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// The encoded bytes, or `None` when some attribute was longer than a
    /// netlink attribute can say.
    pub fn encoded(&self) -> Option<&[u8]> {
        (!self.too_long).then_some(&self.buf[..])
    }

    fn header(&mut self, ty: u16, len: usize) {
        let l = u16::try_from(len).unwrap_or_else(|_| {
            self.too_long = true;
            0
        });
        self.buf.extend_from_slice(&l.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = align4(self.buf.len());
        self.buf.resize(padded, 0);
    }
}

/// One attribute read from a reply: its type without the flag bits, and its
/// payload without padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    pub ty: u16,
    pub nested: bool,
    pub payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The payload as a big-endian u32, if it has exactly four bytes.
    pub fn be32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.payload.try_into().ok()?))
    }

    /// The payload as a string, without its terminating NUL.
    pub fn str(&self) -> Option<&'a str> {
        let p = self.payload.strip_suffix(&[0]).unwrap_or(self.payload);
        std::str::from_utf8(p).ok()
    }

    /// The attributes nested inside this one.
    pub fn attrs(&self) -> AttrIter<'a> {
        AttrIter::new(self.payload)
    }
}

/// Iterates over the attributes of a buffer; a truncated or malformed
/// attribute yields `Err(offset)` once and ends the iteration.
pub struct AttrIter<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> AttrIter<'a> {
    pub fn new(buf: &'a [u8]) -> AttrIter<'a> {
        AttrIter {
            buf,
            pos: 0,
            failed: false,
        }
    }
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<Attr<'a>, usize>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.pos..];
        let parsed = (|| {
            let len = usize::from(u16::from_ne_bytes(rest.get(0..2)?.try_into().ok()?));
            let ty = u16::from_ne_bytes(rest.get(2..4)?.try_into().ok()?);
            if len < NLA_HDRLEN {
                return None;
            }
            Some((len, ty, rest.get(NLA_HDRLEN..len)?))
        })();
        match parsed {
            Some((len, ty, payload)) => {
                self.pos += align4(len);
                Some(Ok(Attr {
                    ty: ty & !(NLA_F_NESTED | NLA_F_NET_BYTEORDER),
                    nested: ty & NLA_F_NESTED != 0,
                    payload,
                }))
            }
            None => {
                self.failed = true;
                Some(Err(self.pos))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_nul_terminated_and_padded() {
        let mut a = Attrs::new();
        a.str(1, "bt_cap");
        // len 11 = 4 header + 6 chars + NUL, padded to 12.
        assert_eq!(
            a.encoded().unwrap(),
            [11, 0, 1, 0, b'b', b't', b'_', b'c', b'a', b'p', 0, 0]
        );
    }

    #[test]
    fn integers_are_big_endian() {
        let mut a = Attrs::new();
        a.be32(2, 100).be64(3, 1);
        assert_eq!(
            a.encoded().unwrap(),
            [8, 0, 2, 0, 0, 0, 0, 100, 12, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 1]
        );
    }

    #[test]
    fn nested_sets_flag_and_length() {
        let mut a = Attrs::new();
        a.nested(4, |h| {
            h.be32(1, 4).be32(2, 100);
        });
        // The hook of `type nat hook postrouting priority 100`, as nft sends it.
        assert_eq!(
            a.encoded().unwrap(),
            [0x14, 0, 0x04, 0x80, 8, 0, 1, 0, 0, 0, 0, 4, 8, 0, 2, 0, 0, 0, 0, 0x64]
        );
    }

    #[test]
    fn odd_payload_is_padded_but_len_is_exact() {
        let mut a = Attrs::new();
        a.bytes(1, &[10, 244, 1]);
        assert_eq!(a.encoded().unwrap(), [7, 0, 1, 0, 10, 244, 1, 0]);
    }

    #[test]
    fn empty_nest_is_four_bytes() {
        let mut a = Attrs::new();
        a.nested(2, |_| {});
        assert_eq!(a.encoded().unwrap(), [4, 0, 2, 0x80]);
    }

    #[test]
    fn oversized_attribute_is_refused() {
        let mut a = Attrs::new();
        a.nested(1, |n| {
            n.bytes(1, &vec![0; 40_000]).bytes(1, &vec![0; 40_000]);
        });
        assert!(a.encoded().is_none());
        let mut b = Attrs::new();
        b.bytes(1, &vec![0; 70_000]);
        assert!(b.encoded().is_none());
    }

    #[test]
    fn reader_round_trips_and_stops_on_garbage() {
        let mut a = Attrs::new();
        a.str(1, "postrouting").nested(4, |h| {
            h.be32(1, 4);
        });
        let bytes = a.encoded().unwrap();
        let got: Vec<_> = AttrIter::new(bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].str(), Some("postrouting"));
        assert!(got[1].nested);
        assert_eq!(got[1].ty, 4);
        let inner: Vec<_> = got[1].attrs().map(|r| r.unwrap().be32()).collect();
        assert_eq!(inner, [Some(4)]);

        // A length running past the end is an error, reported once.
        let bad = [40u8, 0, 1, 0, 1, 2];
        let items: Vec<_> = AttrIter::new(&bad).collect();
        assert_eq!(items, [Err(0)]);
        // A length below the header size too.
        let bad = [2u8, 0, 1, 0];
        assert_eq!(AttrIter::new(&bad).collect::<Vec<_>>(), [Err(0)]);
    }
}
