//! Host-wide usage read from /proc: node CPU and memory, page faults, network
//! interfaces, and the agent process's own CPU time, RSS and start time. The
//! parsers are pure; [`NodeSample::read`] and [`ProcessSample::read`] do the I/O.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Host;

/// Clock ticks per second of /proc times (USER_HZ, 100 on every Linux ABI).
const USER_HZ: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// A sample of the node's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSample {
    pub timestamp: Option<SystemTime>,
    /// Busy CPU time of all cores since boot, nanoseconds.
    pub cpu_usage_ns: u64,
    pub boot_time: Option<SystemTime>,
    pub memory_total: u64,
    pub memory_usage: u64,
    pub memory_working_set: u64,
    pub memory_available: u64,
    pub memory_rss: u64,
    pub page_faults: u64,
    pub major_page_faults: u64,
    pub interfaces: Vec<NetInterface>,
}

/// Counters of one network interface (/proc/net/dev).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetInterface {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl NodeSample {
    /// Reads /proc/stat, /proc/meminfo, /proc/vmstat and /proc/net/dev; files that
    /// cannot be read leave their fields at zero.
    pub fn read(host: &Host) -> NodeSample {
        let now = SystemTime::now();
        let stat = read(&host.proc.join("stat"));
        let (cpu_ticks, btime) = parse_proc_stat_cpu(&stat);
        let mem = parse_meminfo(&read(&host.proc.join("meminfo")));
        let vm = parse_vmstat(&read(&host.proc.join("vmstat")));
        let get = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        let total = get(&mem, "MemTotal");
        let usage = total.saturating_sub(get(&mem, "MemFree"));
        let working_set = usage.saturating_sub(get(&mem, "Inactive(file)"));
        NodeSample {
            timestamp: Some(now),
            cpu_usage_ns: cpu_ticks.saturating_mul(NANOS_PER_TICK),
            boot_time: btime.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            memory_total: total,
            memory_usage: usage,
            memory_working_set: working_set,
            memory_available: total.saturating_sub(working_set),
            memory_rss: get(&mem, "AnonPages"),
            page_faults: get(&vm, "pgfault"),
            major_page_faults: get(&vm, "pgmajfault"),
            interfaces: parse_net_dev(&read(&host.proc.join("net/dev"))),
        }
    }
}

/// Busy ticks of the aggregate `cpu` line (user, nice, system, irq, softirq,
/// steal; guest time is already inside user) and `btime` of /proc/stat.
pub fn parse_proc_stat_cpu(text: &str) -> (u64, Option<u64>) {
    let mut busy = 0;
    let mut btime = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let v: Vec<u64> = fields.map(|f| f.parse().unwrap_or(0)).collect();
                let at = |i: usize| v.get(i).copied().unwrap_or(0);
                busy = at(0) + at(1) + at(2) + at(5) + at(6) + at(7);
            }
            Some("btime") => btime = fields.next().and_then(|f| f.parse().ok()),
            _ => {}
        }
    }
    (busy, btime)
}

/// /proc/meminfo as bytes by key (the node's host facts parse it).
pub use crate::node::facts::meminfo as parse_meminfo;

/// /proc/vmstat as numbers by key.
fn parse_vmstat(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// /proc/net/dev, without `lo`.
pub fn parse_net_dev(text: &str) -> Vec<NetInterface> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if v.len() < 11 {
                return None;
            }
            Some(NetInterface {
                name: name.to_string(),
                rx_bytes: v[0],
                rx_errors: v[2],
                tx_bytes: v[8],
                tx_errors: v[10],
            })
        })
        .collect()
}

/// The agent process's own usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessSample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub start_time_seconds: f64,
}

impl ProcessSample {
    /// Reads /proc/self/stat, /proc/self/status and /proc/stat (btime).
    pub fn read(host: &Host) -> ProcessSample {
        let stat = read(&host.proc.join("self/stat"));
        let status = parse_meminfo(&read(&host.proc.join("self/status")));
        let (_, btime) = parse_proc_stat_cpu(&read(&host.proc.join("stat")));
        let (cpu_ticks, start_ticks) = parse_self_stat(&stat).unwrap_or((0, 0));
        ProcessSample {
            cpu_seconds: cpu_ticks as f64 / USER_HZ as f64,
            resident_bytes: status.get("VmRSS").copied().unwrap_or(0),
            start_time_seconds: btime.unwrap_or(0) as f64 + start_ticks as f64 / USER_HZ as f64,
        }
    }
}

/// utime+stime and starttime (ticks) of a /proc/<pid>/stat line.
pub fn parse_self_stat(text: &str) -> Option<(u64, u64)> {
    // The command may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
    let field = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some((field(14)? + field(15)?, field(22)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat() {
        let text =
            "cpu  100 5 50 1000 7 3 2 1 0 0\ncpu0 50 2 25 500 3 1 1 0 0 0\nbtime 1700000000\n";
        assert_eq!(parse_proc_stat_cpu(text), (161, Some(1_700_000_000)));
    }

    #[test]
    fn parses_meminfo_in_bytes() {
        let m = parse_meminfo("MemTotal:       2000 kB\nMemFree: 500 kB\nHugePages_Total: 3\n");
        assert_eq!(m["MemTotal"], 2_048_000);
        assert_eq!(m["MemFree"], 512_000);
        assert_eq!(m["HugePages_Total"], 3);
    }

    #[test]
    fn parses_net_dev_without_lo() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls carrier compressed\n    lo: 10 1 0 0 0 0 0 0 10 1 0 0 0 0 0 0\n  eth0: 1000 10 2 0 0 0 0 0 2000 20 3 0 9 0 0 0\n";
        let ifs = parse_net_dev(text);
        assert_eq!(
            ifs,
            vec![NetInterface {
                name: "eth0".into(),
                rx_bytes: 1000,
                rx_errors: 2,
                tx_bytes: 2000,
                tx_errors: 3,
            }]
        );
    }

    #[test]
    fn parses_self_stat_with_odd_command() {
        let text = "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 5000 1000 200 18446744073709551615";
        assert_eq!(parse_self_stat(text), Some((300, 5000)));
        assert_eq!(parse_self_stat("garbage"), None);
    }

    #[test]
    fn reads_a_fake_proc() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("stat"), "cpu 100 0 100 0 0 0 0 0\nbtime 1000\n").unwrap();
        std::fs::write(
            p.join("meminfo"),
            "MemTotal: 1000 kB\nMemFree: 200 kB\nInactive(file): 300 kB\nAnonPages: 100 kB\n",
        )
        .unwrap();
        std::fs::write(p.join("vmstat"), "pgfault 7\npgmajfault 2\n").unwrap();
        let host = Host {
            proc: p.to_path_buf(),
            sys: p.to_path_buf(),
            etc: p.to_path_buf(),
            filesystems: vec![],
            statfs: None,
        };
        let s = NodeSample::read(&host);
        assert_eq!(s.cpu_usage_ns, 2_000_000_000);
        assert_eq!(s.memory_usage, 800 * 1024);
        assert_eq!(s.memory_working_set, 500 * 1024);
        assert_eq!(s.memory_available, 500 * 1024);
        assert_eq!(s.memory_rss, 100 * 1024);
        assert_eq!((s.page_faults, s.major_page_faults), (7, 2));
        assert_eq!(
            s.boot_time,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1000))
        );
    }
}
