//! Pure pod-CIDR allocation: the cluster CIDR cut into equal subnets (a /24 each
//! by default), handed out round-robin so that a subnet just released is the
//! last one reused. This only tracks what is used in memory; the controller makes
//! each choice durable with a store claim before it assigns it.

use crate::apiserver::Cidr;

/// The subnet every node gets by default, as upstream's `--node-cidr-mask-size`.
pub const NODE_MASK: u8 = 24;

/// At most 2^16 subnets per cluster CIDR, as upstream.
const MAX_SUBNET_BITS: u8 = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("cluster CIDR {cidr}: {reason}")]
    BadCidr { cidr: String, reason: String },
}

/// The subnets of a cluster CIDR and which of them are used.
#[derive(Clone, Debug)]
pub struct CidrSet {
    cluster: Cidr,
    mask: u8,
    used: Vec<bool>,
    in_use: usize,
    /// Where the next search starts.
    next: usize,
}

impl CidrSet {
    /// Cuts `cluster` (e.g. `10.244.0.0/16`) into `/mask` subnets.
    pub fn new(cluster: &str, mask: u8) -> Result<Self, IpamError> {
        let bad = |reason: String| IpamError::BadCidr {
            cidr: cluster.to_string(),
            reason,
        };
        let parsed = Cidr::parse(cluster).map_err(bad)?;
        if mask < parsed.prefix || mask > 30 {
            return Err(bad(format!(
                "a /{mask} per node does not fit in a /{}",
                parsed.prefix
            )));
        }
        if mask - parsed.prefix > MAX_SUBNET_BITS {
            return Err(bad(format!(
                "a /{mask} per node makes more than 2^{MAX_SUBNET_BITS} subnets"
            )));
        }
        let count = 1usize << (mask - parsed.prefix);
        Ok(Self {
            cluster: parsed,
            mask,
            used: vec![false; count],
            in_use: 0,
            next: 0,
        })
    }

    /// How many subnets there are.
    pub fn capacity(&self) -> usize {
        self.used.len()
    }

    /// How many are used.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// The `i`th subnet.
    fn subnet(&self, i: usize) -> Cidr {
        let step = 1u32 << (32 - u32::from(self.mask));
        Cidr {
            base: self.cluster.nth(step.wrapping_mul(i as u32)),
            prefix: self.mask,
        }
    }

    /// The index of `cidr` when it is one of this set's subnets exactly.
    fn index_of(&self, cidr: &str) -> Option<usize> {
        let c = Cidr::parse(cidr).ok()?;
        if c.prefix != self.mask || !self.cluster.contains(c.base) {
            return None;
        }
        if cidr.split_once('/').map(|(ip, _)| ip) != Some(&c.base.to_string()) {
            return None; // host bits set: not a subnet boundary as written
        }
        let off = u32::from(c.base) - u32::from(self.cluster.base);
        Some((off >> (32 - u32::from(self.mask))) as usize)
    }

    /// Marks `cidr` used. False when it is not one of this set's subnets.
    pub fn occupy(&mut self, cidr: &str) -> bool {
        match self.index_of(cidr) {
            Some(i) => {
                if !self.used[i] {
                    self.used[i] = true;
                    self.in_use += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Marks `cidr` free again (nothing when it is not one of this set's).
    pub fn release(&mut self, cidr: &str) {
        if let Some(i) = self.index_of(cidr) {
            if self.used[i] {
                self.used[i] = false;
                self.in_use -= 1;
            }
        }
    }

    pub fn is_used(&self, cidr: &str) -> bool {
        self.index_of(cidr).is_some_and(|i| self.used[i])
    }

    /// Takes the next free subnet after the last one taken; None when all are used.
    pub fn allocate(&mut self) -> Option<String> {
        let n = self.used.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if !self.used[i] {
                self.used[i] = true;
                self.in_use += 1;
                self.next = (i + 1) % n;
                return Some(self.subnet(i).to_string());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_holds_256_24s_in_order() {
        let mut s = CidrSet::new("10.244.0.0/16", NODE_MASK).unwrap();
        assert_eq!(s.capacity(), 256);
        assert_eq!(s.allocate().unwrap(), "10.244.0.0/24");
        assert_eq!(s.allocate().unwrap(), "10.244.1.0/24");
        for _ in 2..256 {
            assert!(s.allocate().is_some());
        }
        assert_eq!(s.in_use(), 256);
        assert_eq!(s.allocate(), None, "exhausted");
        s.release("10.244.7.0/24");
        assert_eq!(s.allocate().unwrap(), "10.244.7.0/24");
    }

    #[test]
    fn occupied_subnets_are_skipped_and_released_ones_reused_last() {
        let mut s = CidrSet::new("10.244.0.0/22", NODE_MASK).unwrap();
        assert!(s.occupy("10.244.0.0/24"));
        assert!(s.occupy("10.244.2.0/24"));
        assert_eq!(s.allocate().unwrap(), "10.244.1.0/24");
        s.release("10.244.0.0/24");
        assert_eq!(s.allocate().unwrap(), "10.244.3.0/24");
        assert_eq!(s.allocate().unwrap(), "10.244.0.0/24");
        assert_eq!(s.allocate(), None);
    }

    #[test]
    fn foreign_cidrs_are_not_ours() {
        let mut s = CidrSet::new("10.244.0.0/16", NODE_MASK).unwrap();
        assert!(!s.occupy("10.245.0.0/24"), "outside the cluster CIDR");
        assert!(!s.occupy("10.244.3.0/25"), "another size");
        assert!(!s.occupy("10.244.3.1/24"), "not a boundary");
        assert!(!s.occupy("nonsense"));
        assert_eq!(s.in_use(), 0);
        assert!(s.occupy("10.244.255.0/24"));
        assert!(s.is_used("10.244.255.0/24"));
    }

    #[test]
    fn bad_cluster_cidrs_are_refused() {
        assert!(CidrSet::new("10.244.0.0", NODE_MASK).is_err());
        assert!(CidrSet::new("10.244.0.0/25", NODE_MASK).is_err());
        assert!(
            CidrSet::new("10.0.0.0/7", NODE_MASK).is_err(),
            "too many subnets"
        );
        let big = CidrSet::new("10.0.0.0/8", NODE_MASK).unwrap();
        assert_eq!(big.capacity(), 65536);
        let err = CidrSet::new("10.244.0.0/25", NODE_MASK).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
    }
}
