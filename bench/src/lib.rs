//! Shared by the benchmarks: reading a process's CPU time and memory from
//! /proc, and the check that a benchmark runs in a namespace it made.

use anyhow::Context as _;

/// CPU seconds (user + system, all threads) used so far by `pid` (or `self`).
pub fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name, which is in parentheses: state is field 3,
    // utime 14, stime 15, in USER_HZ (100 per second on Linux).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |n: usize| -> anyhow::Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("no field {n} in {path}"))
    };
    Ok((tick(14)? + tick(15)?) / 100.0)
}

/// Resident memory of `pid` in MB (`VmRSS`).
pub fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kb / 1024.0)
}

pub fn percentile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// True when this process's network namespace is one of the named ones in
/// `dir` (made with `ip netns add`), never the machine's own.
pub fn in_named_netns(dir: &std::path::Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let own = std::fs::metadata("/proc/self/ns/net").context("reading /proc/self/ns/net")?;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(false);
    };
    Ok(entries.flatten().any(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == own.dev() && m.ino() == own.ino())
    }))
}
