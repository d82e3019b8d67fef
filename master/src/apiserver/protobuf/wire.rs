//! The protobuf wire format, read-only: tags, varints, fixed 32/64-bit values and
//! length-delimited payloads, with deprecated groups skipped. What a field means is
//! the schema's business (`schema.rs`), not this reader's.

use super::DecodeError;

/// One value as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire<'a> {
    /// Wire type 0: int32, int64, uint*, sint* (zigzag), bool, enum.
    Varint(u64),
    /// Wire type 1: fixed64, sfixed64, double.
    Fixed64(u64),
    /// Wire type 2: string, bytes, embedded messages, packed repeated scalars.
    Bytes(&'a [u8]),
    /// Wire type 5: fixed32, sfixed32, float.
    Fixed32(u32),
}

impl Wire<'_> {
    /// The wire type number, for error messages.
    pub fn wire_type(&self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Bytes(_) => 2,
            Wire::Fixed32(_) => 5,
        }
    }
}

/// How deeply groups may nest before the reader gives up.
const MAX_GROUP_DEPTH: usize = 32;

/// The fields of one message, in wire order: `(field number, value)`.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Iterates over the fields of the message encoded in `buf`.
pub fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf, pos: 0 }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let (v, n) = read_varint(&self.buf[self.pos..])?;
        self.pos += n;
        Ok(v)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    /// Reads a tag: the field number and the wire type.
    fn tag(&mut self) -> Result<(u32, u8), DecodeError> {
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| DecodeError::FieldNumber(tag >> 3))?;
        if number == 0 {
            return Err(DecodeError::FieldNumber(0));
        }
        // Masked to three bits: the cast cannot truncate.
        Ok((number, (tag & 7) as u8))
    }

    /// Skips a group whose start tag (field `number`) was just read.
    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_GROUP_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        loop {
            if self.pos >= self.buf.len() {
                return Err(DecodeError::Truncated);
            }
            let (n, wt) = self.tag()?;
            match wt {
                4 if n == number => return Ok(()),
                4 => return Err(DecodeError::WireType(4)),
                3 => self.skip_group(n, depth + 1)?,
                _ => {
                    self.value(wt)?;
                }
            }
        }
    }

    fn value(&mut self, wire_type: u8) -> Result<Wire<'a>, DecodeError> {
        Ok(match wire_type {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Wire::Fixed64(u64::from_le_bytes(a))
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                let mut a = [0u8; 4];
                a.copy_from_slice(b);
                Wire::Fixed32(u32::from_le_bytes(a))
            }
            other => return Err(DecodeError::WireType(other)),
        })
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Wire<'a>), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.pos >= self.buf.len() {
                return None;
            }
            let item = self.tag().and_then(|(number, wt)| {
                if wt == 3 {
                    // A deprecated group: no schema here uses one, so skip it whole.
                    self.skip_group(number, 0).map(|()| None)
                } else {
                    self.value(wt).map(|v| Some((number, v)))
                }
            });
            match item {
                Ok(Some(field)) => return Some(Ok(field)),
                Ok(None) => continue,
                Err(e) => {
                    // Stop after the first error.
                    self.pos = self.buf.len();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Reads a base-128 varint from the start of `buf`: the value and its length.
pub fn read_varint(buf: &[u8]) -> Result<(u64, usize), DecodeError> {
    let mut value: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 10 {
        Err(DecodeError::VarintOverflow)
    } else {
        Err(DecodeError::Truncated)
    }
}

/// The values of a packed repeated varint field.
pub fn packed_varints(mut buf: &[u8]) -> Result<Vec<u64>, DecodeError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let (v, n) = read_varint(buf)?;
        out.push(v);
        buf = &buf[n..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(buf: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, DecodeError> {
        fields(buf).collect()
    }

    #[test]
    fn varints_of_every_length() {
        assert_eq!(read_varint(&[0x00]).unwrap(), (0, 1));
        assert_eq!(read_varint(&[0x7f]).unwrap(), (127, 1));
        assert_eq!(read_varint(&[0x90, 0x3f]).unwrap(), (8080, 2));
        assert_eq!(read_varint(&[0xac, 0x01, 0xff]).unwrap(), (172, 2));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(read_varint(&max).unwrap(), (u64::MAX, 10));
        // int32 -1 is sent sign-extended to ten bytes.
        let (v, _) = read_varint(&max).unwrap();
        assert_eq!(v as i64 as i32, -1);
    }

    #[test]
    fn bad_varints_are_errors() {
        assert!(matches!(read_varint(&[0x80]), Err(DecodeError::Truncated)));
        assert!(matches!(read_varint(&[]), Err(DecodeError::Truncated)));
        assert!(matches!(
            read_varint(&[0xff; 11]),
            Err(DecodeError::VarintOverflow)
        ));
    }

    #[test]
    fn reads_each_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0x80, // 2: fixed64
            0x1a, 0x03, b'a', b'b', b'c', // 3: bytes "abc"
            0x25, 0x01, 0x00, 0x00, 0x00, // 4: fixed32 1
        ];
        assert_eq!(
            all(&buf).unwrap(),
            vec![
                (1, Wire::Varint(150)),
                (2, Wire::Fixed64(0x8000_0000_0000_0001)),
                (3, Wire::Bytes(b"abc")),
                (4, Wire::Fixed32(1)),
            ]
        );
    }

    #[test]
    fn skips_groups_and_rejects_unknown_wire_types() {
        // 5: start group { 1: varint 1; 6: start group { } } end group 5; then 2: varint 7
        let buf = [0x2b, 0x08, 0x01, 0x33, 0x34, 0x2c, 0x10, 0x07];
        assert_eq!(all(&buf).unwrap(), vec![(2, Wire::Varint(7))]);
        assert!(matches!(all(&[0x0e]), Err(DecodeError::WireType(6))));
        // An end group without its start.
        assert!(matches!(all(&[0x0c]), Err(DecodeError::WireType(4))));
    }

    #[test]
    fn truncated_payloads_are_errors() {
        assert!(matches!(
            all(&[0x0a, 0x05, b'a']),
            Err(DecodeError::Truncated)
        ));
        assert!(matches!(all(&[0x09, 1, 2]), Err(DecodeError::Truncated)));
        assert!(matches!(all(&[0x00]), Err(DecodeError::FieldNumber(0))));
    }

    #[test]
    fn packed() {
        assert_eq!(packed_varints(&[0x01, 0x90, 0x3f]).unwrap(), vec![1, 8080]);
        assert!(packed_varints(&[0x90]).is_err());
    }
}
