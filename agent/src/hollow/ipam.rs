//! Pod IPs for one hollow node: hands out addresses of the node's `spec.podCIDR`
//! (IPv4) and takes them back when a pod is gone. Pure bookkeeping: nothing is
//! configured anywhere, the addresses only appear in pod status.
//!
//! Like host-local IPAM, the network address, the first host address (a real
//! node's bridge) and the broadcast address are never handed out, and the cursor
//! moves on after each allocation so that a freed address is not reused at once.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// Why a pod CIDR cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("pod CIDR {cidr:?} is not an IPv4 CIDR such as 10.244.1.0/24")]
    Invalid { cidr: String },
    #[error("pod CIDR {cidr:?} is too small: hollow nodes need at most a /30")]
    TooSmall { cidr: String },
    #[error("pod CIDR {cidr:?} is too large: hollow nodes take at least a /8")]
    TooLarge { cidr: String },
}

/// The addresses of one pod CIDR and which of them live pods hold.
#[derive(Debug, Clone)]
pub struct Allocator {
    cidr: String,
    /// The network address.
    base: u32,
    /// How many addresses the CIDR has (network and broadcast included).
    size: u32,
    /// Offsets from `base` held by live pods.
    used: HashSet<u32>,
    /// The offset tried first by the next allocation.
    cursor: u32,
}

/// The first offset handed out: `.0` is the network and `.1` the gateway.
const FIRST: u32 = 2;

impl Allocator {
    /// An allocator for `cidr`, e.g. `10.244.3.0/24`. Host bits are ignored.
    pub fn new(cidr: &str) -> Result<Allocator, IpamError> {
        let invalid = || IpamError::Invalid {
            cidr: cidr.to_string(),
        };
        let (addr, len) = cidr.split_once('/').ok_or_else(invalid)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| invalid())?;
        let len: u32 = len.parse().map_err(|_| invalid())?;
        if len > 32 {
            return Err(invalid());
        }
        if len > 30 {
            return Err(IpamError::TooSmall {
                cidr: cidr.to_string(),
            });
        }
        if len < 8 {
            return Err(IpamError::TooLarge {
                cidr: cidr.to_string(),
            });
        }
        let size = 1u32 << (32 - len);
        let base = u32::from(addr) & !(size - 1);
        Ok(Allocator {
            cidr: cidr.to_string(),
            base,
            size,
            used: HashSet::new(),
            cursor: FIRST,
        })
    }

    /// The CIDR as given.
    pub fn cidr(&self) -> &str {
        &self.cidr
    }

    /// How many addresses pods can get in all.
    pub fn capacity(&self) -> usize {
        (self.size - FIRST - 1) as usize
    }

    /// How many addresses are free.
    pub fn available(&self) -> usize {
        self.capacity() - self.used.len()
    }

    fn offset(&self, ip: Ipv4Addr) -> Option<u32> {
        let off = u32::from(ip).wrapping_sub(self.base);
        (off < self.size).then_some(off)
    }

    /// True when `ip` is one pods may get from this CIDR.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset(ip)
            .is_some_and(|o| (FIRST..self.size - 1).contains(&o))
    }

    /// A free address, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Ipv4Addr> {
        let span = self.size - FIRST - 1;
        for i in 0..span {
            let off = FIRST + (self.cursor - FIRST + i) % span;
            if self.used.insert(off) {
                self.cursor = FIRST + (off - FIRST + 1) % span;
                return Some(Ipv4Addr::from(self.base + off));
            }
        }
        None
    }

    /// Marks `ip` as held (a pod that already has it, found after a restart);
    /// false when it is outside the range or already held.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && self.offset(ip).is_some_and(|o| self.used.insert(o))
    }

    /// Gives `ip` back; releasing a free or foreign address does nothing.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if let Some(o) = self.offset(ip) {
            self.used.remove(&o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn a_slash_24_gives_253_distinct_addresses_then_none() {
        let mut a = Allocator::new("10.244.7.0/24").unwrap();
        assert_eq!(a.capacity(), 253);
        let mut seen = HashSet::new();
        while let Some(x) = a.allocate() {
            assert!(a.contains(x), "{x}");
            assert!(seen.insert(x), "{x} handed out twice");
        }
        assert_eq!(seen.len(), 253);
        assert!(!seen.contains(&ip("10.244.7.0")));
        assert!(!seen.contains(&ip("10.244.7.1")));
        assert!(!seen.contains(&ip("10.244.7.255")));
        assert_eq!(a.available(), 0);
        assert_eq!(a.allocate(), None);
    }

    #[test]
    fn freed_addresses_come_back_but_not_at_once() {
        let mut a = Allocator::new("10.244.1.0/24").unwrap();
        let first = a.allocate().unwrap();
        assert_eq!(first, ip("10.244.1.2"));
        a.release(first);
        assert_eq!(a.allocate(), Some(ip("10.244.1.3")), "the cursor moves on");
        while a.allocate().is_some() {}
        a.release(ip("10.244.1.100"));
        assert_eq!(a.available(), 1);
        assert_eq!(
            a.allocate(),
            Some(ip("10.244.1.100")),
            "reused when exhausted"
        );
        assert_eq!(a.allocate(), None);
    }

    #[test]
    fn reserve_takes_addresses_pods_already_hold() {
        let mut a = Allocator::new("10.244.2.0/24").unwrap();
        assert!(a.reserve(ip("10.244.2.2")));
        assert!(!a.reserve(ip("10.244.2.2")), "already held");
        assert!(!a.reserve(ip("10.244.3.2")), "outside the CIDR");
        assert!(!a.reserve(ip("10.244.2.1")), "the gateway");
        assert!(!a.reserve(ip("10.244.2.255")), "broadcast");
        assert_eq!(a.allocate(), Some(ip("10.244.2.3")));
        a.release(ip("10.9.9.9"));
        assert_eq!(a.available(), 251);
    }

    #[test]
    fn host_bits_are_ignored_and_bad_cidrs_refused() {
        let mut a = Allocator::new("10.244.5.77/24").unwrap();
        assert_eq!(a.allocate(), Some(ip("10.244.5.2")));
        let mut small = Allocator::new("192.168.0.8/30").unwrap();
        assert_eq!(small.allocate(), Some(ip("192.168.0.10")));
        assert_eq!(small.allocate(), None);
        for bad in ["10.244.0.0", "10.244.0.0/33", "fd00::/64", "x/24", ""] {
            assert!(
                matches!(Allocator::new(bad), Err(IpamError::Invalid { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            Allocator::new("10.0.0.0/31"),
            Err(IpamError::TooSmall { .. })
        ));
        assert!(matches!(
            Allocator::new("10.0.0.0/4"),
            Err(IpamError::TooLarge { .. })
        ));
    }
}
