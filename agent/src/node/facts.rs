//! Facts about the host the agent runs on, for its Node: CPUs, memory, the
//! data dir's filesystem, kernel, OS image, architecture, machine and boot ids,
//! addresses, and the pressure signals (available memory, free disk, pids).
//!
//! Parsing is pure (`parse_*`); the readers take every path as a parameter
//! ([`HostPaths`]) so tests can point them at their own files.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Where Linux exposes the UTS hostname.
pub const PROC_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// The files facts are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    /// Normally `/proc`.
    pub proc: PathBuf,
    /// Normally `/etc/os-release`.
    pub os_release: PathBuf,
    /// Normally `/etc/machine-id`.
    pub machine_id: PathBuf,
    /// Normally `/sys/class/dmi/id/product_uuid` (often root-only or absent).
    pub product_uuid: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths {
            proc: "/proc".into(),
            os_release: "/etc/os-release".into(),
            machine_id: "/etc/machine-id".into(),
            product_uuid: "/sys/class/dmi/id/product_uuid".into(),
        }
    }
}

/// What does not change while the agent runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFacts {
    pub cpus: u64,
    pub memory_bytes: u64,
    /// Size of the data dir's filesystem.
    pub ephemeral_storage_bytes: u64,
    pub kernel_version: String,
    pub os_image: String,
    /// Go's name: `amd64`, `arm64`, …
    pub architecture: String,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
}

/// The pressure signals, read at each status evaluation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory_available_bytes: u64,
    pub disk_free_bytes: u64,
    pub disk_total_bytes: u64,
    /// Threads and processes in use.
    pub pids_used: u64,
    pub pid_max: u64,
}

/// Why a fact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no {field}")]
    Missing { path: PathBuf, field: &'static str },
    #[error("statfs of the data dir {path}")]
    Statfs {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Go's name for the architecture Rust calls `arch`.
pub fn go_arch(arch: &str) -> String {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
    .to_string()
}

/// The number of `processor` entries of `/proc/cpuinfo`.
pub fn parse_cpuinfo(text: &str) -> u64 {
    text.lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count() as u64
}

/// A `/proc/meminfo`-style file (also `/proc/<pid>/status`) as numbers by key,
/// values given in kB converted to bytes.
pub fn meminfo(text: &str) -> std::collections::HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            let n = if parts.next() == Some("kB") {
                n.saturating_mul(1024)
            } else {
                n
            };
            Some((key.trim().to_string(), n))
        })
        .collect()
}

/// A `/proc/meminfo` field (`MemTotal`, `MemAvailable`, …) in bytes.
pub fn parse_meminfo(text: &str, field: &str) -> Option<u64> {
    meminfo(text).get(field).copied()
}

/// `PRETTY_NAME` of an os-release file, unquoted; `NAME` if there is none.
pub fn parse_os_release(text: &str) -> Option<String> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            (k == key).then(|| unquote(v.trim()))
        })
    };
    get("PRETTY_NAME")
        .or_else(|| get("NAME"))
        .filter(|s| !s.is_empty())
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// The thread count of `/proc/loadavg` (`0.1 0.2 0.3 1/89 5259` → 89).
pub fn parse_loadavg_threads(text: &str) -> Option<u64> {
    let field = text.split_whitespace().nth(3)?;
    field.split_once('/')?.1.parse().ok()
}

/// The first non-loopback, non-link-local IPv4 address among `addrs`.
pub fn pick_node_ip(addrs: &[IpAddr]) -> Option<IpAddr> {
    addrs.iter().copied().find(|a| match a {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(_) => false,
    })
}

fn read(path: &Path) -> Result<String, FactsError> {
    std::fs::read_to_string(path).map_err(|source| FactsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn read_trimmed(path: &Path) -> Result<String, FactsError> {
    Ok(read(path)?.trim().to_string())
}

/// The host name of this UTS namespace, from `proc_hostname`.
pub fn hostname(proc_hostname: &Path) -> Option<String> {
    let name = std::fs::read_to_string(proc_hostname).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Total and free bytes of the filesystem holding `path` (free = available to
/// unprivileged users, as `df` shows).
pub fn filesystem(path: &Path) -> Result<(u64, u64), FactsError> {
    let st = nix::sys::statvfs::statvfs(path).map_err(|source| FactsError::Statfs {
        path: path.to_path_buf(),
        source,
    })?;
    let frsize = st.fragment_size() as u64;
    Ok((
        (st.blocks() as u64).saturating_mul(frsize),
        (st.blocks_available() as u64).saturating_mul(frsize),
    ))
}

/// The IPv4 and IPv6 addresses of this network namespace's interfaces.
pub fn interface_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| {
            let sa = a.address?;
            if let Some(v4) = sa.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        })
        .collect()
}

/// Reads the facts; `data_dir` is where ephemeral storage lives.
pub fn read_facts(paths: &HostPaths, data_dir: &Path) -> Result<HostFacts, FactsError> {
    let cpuinfo = read(&paths.proc.join("cpuinfo")).unwrap_or_default();
    let cpus = match parse_cpuinfo(&cpuinfo) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
        n => n,
    };
    let meminfo_path = paths.proc.join("meminfo");
    let memory_bytes =
        parse_meminfo(&read(&meminfo_path)?, "MemTotal").ok_or(FactsError::Missing {
            path: meminfo_path,
            field: "MemTotal",
        })?;
    let (ephemeral_storage_bytes, _) = filesystem(data_dir)?;
    let os_image = std::fs::read_to_string(&paths.os_release)
        .ok()
        .and_then(|t| parse_os_release(&t))
        .unwrap_or_else(|| "Linux".to_string());
    let machine_id = read_trimmed(&paths.machine_id).unwrap_or_default();
    Ok(HostFacts {
        cpus,
        memory_bytes,
        ephemeral_storage_bytes,
        kernel_version: read_trimmed(&paths.proc.join("sys/kernel/osrelease"))?,
        os_image,
        architecture: go_arch(std::env::consts::ARCH),
        boot_id: read_trimmed(&paths.proc.join("sys/kernel/random/boot_id")).unwrap_or_default(),
        system_uuid: read_trimmed(&paths.product_uuid).unwrap_or_default(),
        machine_id,
    })
}

/// Reads the pressure signals.
pub fn read_usage(paths: &HostPaths, data_dir: &Path) -> Result<Usage, FactsError> {
    let meminfo_path = paths.proc.join("meminfo");
    let memory_available_bytes =
        parse_meminfo(&read(&meminfo_path)?, "MemAvailable").ok_or(FactsError::Missing {
            path: meminfo_path,
            field: "MemAvailable",
        })?;
    let (disk_total_bytes, disk_free_bytes) = filesystem(data_dir)?;
    let loadavg_path = paths.proc.join("loadavg");
    let pids_used = parse_loadavg_threads(&read(&loadavg_path)?).ok_or(FactsError::Missing {
        path: loadavg_path,
        field: "a thread count",
    })?;
    let pid_max = read_trimmed(&paths.proc.join("sys/kernel/pid_max"))?
        .parse()
        .unwrap_or(32768);
    Ok(Usage {
        memory_available_bytes,
        disk_free_bytes,
        disk_total_bytes,
        pids_used,
        pid_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuinfo_counts_processors() {
        let text = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n";
        assert_eq!(parse_cpuinfo(text), 2);
        assert_eq!(parse_cpuinfo("Processor : ARMv7\n"), 0);
    }

    #[test]
    fn meminfo_fields_in_bytes() {
        let text = "MemTotal:       16393216 kB\nMemFree:  1 kB\nMemAvailable:    8000000 kB\nHugePages_Total:       0\n";
        assert_eq!(parse_meminfo(text, "MemTotal"), Some(16_393_216 * 1024));
        assert_eq!(parse_meminfo(text, "MemAvailable"), Some(8_000_000 * 1024));
        assert_eq!(parse_meminfo(text, "HugePages_Total"), Some(0));
        assert_eq!(parse_meminfo(text, "Mem"), None);
    }

    #[test]
    fn os_release_pretty_name() {
        let text = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n";
        assert_eq!(
            parse_os_release(text).as_deref(),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(parse_os_release("NAME=Alpine\n").as_deref(), Some("Alpine"));
        assert_eq!(
            parse_os_release("PRETTY_NAME='x y'\n").as_deref(),
            Some("x y")
        );
        assert_eq!(parse_os_release("ID=x\n"), None);
    }

    #[test]
    fn loadavg_threads_and_node_ip() {
        assert_eq!(
            parse_loadavg_threads("2.59 3.07 2.19 1/89 5259\n"),
            Some(89)
        );
        assert_eq!(parse_loadavg_threads("garbage"), None);
        let addrs: Vec<IpAddr> = [
            "127.0.0.1",
            "fe80::1",
            "169.254.1.1",
            "10.0.0.5",
            "10.0.0.6",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        assert_eq!(pick_node_ip(&addrs), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(pick_node_ip(&addrs[..3]), None);
    }

    #[test]
    fn arch_names_are_go_names() {
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        assert_eq!(go_arch("riscv64"), "riscv64");
    }

    #[test]
    fn facts_come_from_the_given_paths() {
        let dir = tempfile::tempdir().unwrap();
        let proc = dir.path().join("proc");
        std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
        std::fs::write(
            proc.join("cpuinfo"),
            "processor : 0\nprocessor : 1\nprocessor : 2\n",
        )
        .unwrap();
        std::fs::write(
            proc.join("meminfo"),
            "MemTotal: 2048 kB\nMemAvailable: 1024 kB\n",
        )
        .unwrap();
        std::fs::write(proc.join("sys/kernel/osrelease"), "6.1.0-test\n").unwrap();
        std::fs::write(proc.join("sys/kernel/random/boot_id"), "b-1\n").unwrap();
        std::fs::write(proc.join("sys/kernel/pid_max"), "1000\n").unwrap();
        std::fs::write(proc.join("loadavg"), "0 0 0 2/900 1\n").unwrap();
        std::fs::write(dir.path().join("os-release"), "PRETTY_NAME=\"Test OS\"\n").unwrap();
        std::fs::write(dir.path().join("machine-id"), "m-1\n").unwrap();
        let paths = HostPaths {
            proc,
            os_release: dir.path().join("os-release"),
            machine_id: dir.path().join("machine-id"),
            product_uuid: dir.path().join("absent"),
        };
        let f = read_facts(&paths, dir.path()).unwrap();
        assert_eq!(f.cpus, 3);
        assert_eq!(f.memory_bytes, 2048 * 1024);
        assert!(f.ephemeral_storage_bytes > 0);
        assert_eq!(f.kernel_version, "6.1.0-test");
        assert_eq!(f.os_image, "Test OS");
        assert_eq!(f.machine_id, "m-1");
        assert_eq!(f.boot_id, "b-1");
        assert_eq!(f.system_uuid, "");
        let u = read_usage(&paths, dir.path()).unwrap();
        assert_eq!(u.memory_available_bytes, 1024 * 1024);
        assert_eq!((u.pids_used, u.pid_max), (900, 1000));
        assert!(u.disk_total_bytes >= u.disk_free_bytes && u.disk_total_bytes > 0);

        std::fs::write(paths.proc.join("meminfo"), "MemFree: 1 kB\n").unwrap();
        let err = read_facts(&paths, dir.path()).unwrap_err();
        assert!(
            err.to_string().ends_with("meminfo has no MemTotal"),
            "{err}"
        );
    }
}
