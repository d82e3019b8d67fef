//! The subject alternative names the master's serving certificate must carry:
//! which IPs and DNS names clients may use to reach the API server. Pure logic,
//! except for [`local_hostname`] which reads the kernel's hostname file.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use super::AuthError;

/// DNS names every serving certificate carries, as kube-apiserver's does, so
/// in-cluster clients that use the `kubernetes` service name verify it.
pub const KUBERNETES_NAMES: [&str; 4] = [
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "localhost",
];

/// A set of IP addresses and (lowercase, validated) DNS names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanSet {
    ips: BTreeSet<IpAddr>,
    dns: BTreeSet<String>,
}

impl SanSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The names the master on `listen` needs: the listen address unless it is a
    /// wildcard (0.0.0.0 or ::), the advertise address, 127.0.0.1, ::1, `localhost`,
    /// the `kubernetes*` service names and `hostname` (skipped with a warning if it
    /// is not a valid DNS name).
    pub fn for_master(
        listen: SocketAddr,
        advertise: Option<IpAddr>,
        hostname: Option<&str>,
    ) -> Self {
        let mut set = Self::new();
        set.add_ip(listen.ip());
        if let Some(ip) = advertise {
            set.add_ip(ip);
        }
        set.add_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        set.add_ip(IpAddr::V6(Ipv6Addr::LOCALHOST));
        for name in KUBERNETES_NAMES {
            // These are valid by construction; ignoring the result cannot hide anything.
            let _ = set.add_dns(name);
        }
        if let Some(host) = hostname {
            if let Err(e) = set.add_dns(host) {
                tracing::warn!(hostname = host, error = %e, "hostname left out of the serving certificate");
            }
        }
        set
    }

    /// Adds an IP address; wildcard addresses (0.0.0.0, ::) are ignored since no
    /// client connects to them.
    pub fn add_ip(&mut self, ip: IpAddr) {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            IpAddr::V4(_) => ip,
        };
        if !ip.is_unspecified() {
            self.ips.insert(ip);
        }
    }

    /// Adds a DNS name (stored lowercase) after checking it is a valid host name.
    pub fn add_dns(&mut self, name: &str) -> Result<(), AuthError> {
        let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
        validate_dns_name(&name).map_err(|reason| AuthError::BadSan {
            name: name.clone(),
            reason: reason.to_string(),
        })?;
        self.dns.insert(name);
        Ok(())
    }

    /// Adds a name that may be an IP address or a DNS name.
    pub fn add(&mut self, name: &str) -> Result<(), AuthError> {
        match name.trim().parse::<IpAddr>() {
            Ok(ip) => {
                self.add_ip(ip);
                Ok(())
            }
            Err(_) => self.add_dns(name),
        }
    }

    /// The IP addresses, in order.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ips.iter().copied()
    }

    /// The DNS names, in order.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.dns.iter().map(String::as_str)
    }

    /// Whether every name in `self` is also in `other`.
    pub fn is_subset(&self, other: &SanSet) -> bool {
        self.ips.is_subset(&other.ips) && self.dns.is_subset(&other.dns)
    }

    /// The names of `self` and `other` together.
    pub fn union(&self, other: &SanSet) -> SanSet {
        SanSet {
            ips: self.ips.union(&other.ips).copied().collect(),
            dns: self.dns.union(&other.dns).cloned().collect(),
        }
    }

    /// Whether the set holds no names at all.
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.dns.is_empty()
    }
}

impl fmt::Display for SanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .ips
            .iter()
            .map(ToString::to_string)
            .chain(self.dns.iter().cloned())
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The machine's hostname, read from `proc_hostname` (normally
/// `/proc/sys/kernel/hostname`); `None` if unreadable or empty.
pub fn local_hostname(proc_hostname: &Path) -> Option<String> {
    let text = std::fs::read_to_string(proc_hostname).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn validate_dns_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty name");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must be 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("only letters, digits, '-' and '.' are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label may not start or end with '-'");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &SanSet) -> String {
        set.to_string()
    }

    #[test]
    fn wildcard_listen_is_left_out() {
        let set = SanSet::for_master("0.0.0.0:6443".parse().unwrap(), None, Some("Node-1"));
        assert_eq!(
            names(&set),
            "127.0.0.1,::1,kubernetes,kubernetes.default,kubernetes.default.svc,localhost,node-1"
        );
    }

    #[test]
    fn listen_and_advertise_are_included() {
        let set = SanSet::for_master(
            "10.0.0.5:6443".parse().unwrap(),
            Some("fd00::7".parse().unwrap()),
            None,
        );
        let ips: Vec<String> = set.ips().map(|ip| ip.to_string()).collect();
        assert_eq!(ips, ["10.0.0.5", "127.0.0.1", "::1", "fd00::7"]);
    }

    #[test]
    fn ipv6_wildcard_and_mapped_v4() {
        let mut set = SanSet::new();
        set.add_ip("::".parse().unwrap());
        set.add_ip("::ffff:10.1.2.3".parse().unwrap());
        assert_eq!(names(&set), "10.1.2.3");
    }

    #[test]
    fn bad_hostname_is_skipped_not_fatal() {
        let set = SanSet::for_master("127.0.0.1:6443".parse().unwrap(), None, Some("bad_host!"));
        assert!(!set.dns_names().any(|n| n.contains("bad")));
        assert!(set.dns_names().any(|n| n == "localhost"));
    }

    #[test]
    fn dns_validation() {
        let mut set = SanSet::new();
        assert!(set.add_dns("api.example.com.").is_ok());
        assert!(set.add_dns("-bad.example").is_err());
        assert!(set.add_dns("a..b").is_err());
        assert!(set.add_dns(&"x".repeat(64)).is_err());
        assert!(set.add("192.168.1.1").is_ok());
        assert_eq!(names(&set), "192.168.1.1,api.example.com");
    }

    #[test]
    fn subset_and_union() {
        let mut a = SanSet::new();
        a.add_ip("10.0.0.1".parse().unwrap());
        let mut b = a.clone();
        b.add_dns("node").unwrap();
        assert!(a.is_subset(&b));
        assert!(!b.is_subset(&a));
        let mut c = SanSet::new();
        c.add_ip("10.0.0.2".parse().unwrap());
        assert_eq!(names(&b.union(&c)), "10.0.0.1,10.0.0.2,node");
    }

    #[test]
    fn hostname_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hostname");
        std::fs::write(&path, "box7\n").unwrap();
        assert_eq!(local_hostname(&path).as_deref(), Some("box7"));
        assert_eq!(local_hostname(&dir.path().join("missing")), None);
    }
}
