//! sha256 digests: parsing `sha256:<hex>` strings and hashing streams as they are
//! read, so verifying a blob costs no second pass over it.

use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// Returns the 64 lowercase hex characters of a `sha256:<hex>` digest, or `None`
/// when `digest` is not one (other algorithms are not stored).
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    ok.then_some(hex)
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A reader that hashes (and counts) everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (e.g. the zero blocks after a tar's end), so the
    /// digest covers all of it.
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// `sha256:<hex>` of what was read, and how many bytes.
    pub fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_accepts_only_well_formed_sha256() {
        let h = "a".repeat(64);
        assert_eq!(sha256_hex(&format!("sha256:{h}")), Some(h.as_str()));
        assert_eq!(sha256_hex(&format!("sha512:{h}")), None);
        assert_eq!(sha256_hex(&format!("sha256:{}", "A".repeat(64))), None);
        assert_eq!(sha256_hex("sha256:abc"), None);
        assert_eq!(sha256_hex(&format!("sha256:{}/..", &h[..61])), None);
    }

    #[test]
    fn hashing_reader_matches_one_shot_digest() {
        let data = b"hello world".repeat(1000);
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        r.drain().unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, sha256_of(&data));
        assert_eq!(
            sha256_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
