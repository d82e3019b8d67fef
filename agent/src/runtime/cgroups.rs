//! Pod and container cgroups, on cgroup v1 (legacy or hybrid) and v2.
//!
//! The hierarchy is discovered once through libcgroups (setup type and the v1
//! controller mount points); the per-pod work is then a handful of cgroupfs
//! writes through libcgroups' file helpers. libcgroups' `Manager::new` re-reads
//! mountinfo for every controller (≈ 1 ms each), which is why no manager is made
//! per cgroup.

use super::RuntimeError;
use libcgroups::common::{self as cg, CgroupSetup};
use libcgroups::v1::ControllerType;
use oci_spec::runtime::LinuxResources;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The v1 controllers a pod or container cgroup is made in.
const V1_CONTROLLERS: &[ControllerType] = &[
    ControllerType::Cpu,
    ControllerType::CpuAcct,
    ControllerType::Memory,
    ControllerType::Pids,
    ControllerType::Freezer,
];

/// Where the cgroup hierarchies are.
pub enum Cgroups {
    /// One mount per v1 controller (some co-mounted, e.g. cpu,cpuacct).
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        /// Every distinct mount the cgroups are made in.
        mounts: Vec<PathBuf>,
    },
    V2 {
        root: PathBuf,
    },
}

/// Usage read from a cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    pub memory_usage: u64,
    pub working_set: u64,
}

impl Cgroups {
    pub fn discover(root: &Path) -> Result<Cgroups, RuntimeError> {
        let setup = cg::get_cgroup_setup_with_root(root)
            .map_err(|_| RuntimeError::NoCgroups(root.to_path_buf()))?;
        match setup {
            CgroupSetup::Unified => Ok(Cgroups::V2 {
                root: root.to_path_buf(),
            }),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                let points = libcgroups::v1::util::list_supported_mount_points()
                    .map_err(|_| RuntimeError::NoCgroups(root.to_path_buf()))?;
                let get =
                    |c: ControllerType| points.get(&c).filter(|p| p.starts_with(root)).cloned();
                let mut mounts: Vec<PathBuf> = Vec::new();
                for c in V1_CONTROLLERS {
                    if let Some(p) = get(*c) {
                        if !mounts.contains(&p) {
                            mounts.push(p);
                        }
                    }
                }
                if mounts.is_empty() {
                    return Err(RuntimeError::NoCgroups(root.to_path_buf()));
                }
                Ok(Cgroups::V1 {
                    cpu: get(ControllerType::Cpu),
                    cpuacct: get(ControllerType::CpuAcct),
                    memory: get(ControllerType::Memory),
                    pids: get(ControllerType::Pids),
                    mounts,
                })
            }
        }
    }

    /// The dirs of the cgroup `rel` in every hierarchy.
    pub fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        match self {
            Cgroups::V1 { mounts, .. } => mounts.iter().map(|m| m.join(rel)).collect(),
            Cgroups::V2 { root } => vec![root.join(rel)],
        }
    }

    /// The files a single-threaded process writes "0" to, to move itself into
    /// `rel`: v1 `tasks` (no global lock for a self-move), v2 `cgroup.procs`.
    pub fn join_files(&self, rel: &Path) -> Vec<PathBuf> {
        let file = match self {
            Cgroups::V1 { .. } => "tasks",
            Cgroups::V2 { .. } => cg::CGROUP_PROCS,
        };
        self.dirs(rel).into_iter().map(|d| d.join(file)).collect()
    }

    /// The file that counts OOM kills in `rel`.
    pub fn oom_file(&self, rel: &Path) -> Option<PathBuf> {
        match self {
            Cgroups::V1 { memory, .. } => memory
                .as_ref()
                .map(|m| m.join(rel).join("memory.oom_control")),
            Cgroups::V2 { root } => Some(root.join(rel).join("memory.events")),
        }
    }

    /// Makes `rel` (and its parents) and applies the cpu, memory and pids limits.
    pub fn create(&self, rel: &Path, res: Option<&LinuxResources>) -> Result<(), RuntimeError> {
        if let Cgroups::V2 { root } = self {
            enable_v2_controllers(root, rel);
        }
        for d in self.dirs(rel) {
            fs::create_dir_all(&d).map_err(RuntimeError::io("create cgroup", &d))?;
        }
        let Some(res) = res else { return Ok(()) };
        let w = |path: PathBuf, v: String| -> Result<(), RuntimeError> {
            cg::write_cgroup_file_str(&path, &v)
                .map_err(|source| RuntimeError::Cgroup { path, source })
        };
        match self {
            Cgroups::V1 {
                cpu, memory, pids, ..
            } => {
                if let (Some(c), Some(r)) = (cpu, res.cpu()) {
                    let d = c.join(rel);
                    if let Some(s) = r.shares() {
                        w(d.join("cpu.shares"), s.to_string())?;
                    }
                    if let Some(p) = r.period() {
                        w(d.join("cpu.cfs_period_us"), p.to_string())?;
                    }
                    if let Some(q) = r.quota() {
                        w(d.join("cpu.cfs_quota_us"), q.to_string())?;
                    }
                }
                if let (Some(m), Some(l)) = (memory, res.memory().as_ref().and_then(|m| m.limit()))
                {
                    w(m.join(rel).join("memory.limit_in_bytes"), l.to_string())?;
                }
                if let (Some(p), Some(l)) = (pids, res.pids()) {
                    w(p.join(rel).join("pids.max"), pids_max(l.limit()))?;
                }
            }
            Cgroups::V2 { root } => {
                let d = root.join(rel);
                if let Some(r) = res.cpu() {
                    if let Some(s) = r.shares() {
                        w(d.join("cpu.weight"), shares_to_weight(s).to_string())?;
                    }
                    if let Some(q) = r.quota() {
                        let period = r.period().unwrap_or(100_000);
                        let q = if q <= 0 {
                            "max".to_string()
                        } else {
                            q.to_string()
                        };
                        w(d.join("cpu.max"), format!("{q} {period}"))?;
                    }
                }
                if let Some(l) = res.memory().as_ref().and_then(|m| m.limit()) {
                    w(d.join("memory.max"), l.to_string())?;
                }
                if let Some(l) = res.pids() {
                    w(d.join("pids.max"), pids_max(l.limit()))?;
                }
            }
        }
        Ok(())
    }

    /// The pids in `rel` (from one hierarchy; all tasks are in all of them).
    pub fn pids(&self, rel: &Path) -> Vec<i32> {
        let Some(d) = self.dirs(rel).into_iter().next() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        collect_pids(&d, &mut out);
        out
    }

    /// SIGKILLs every task of `rel` and its children.
    pub fn kill_all(&self, rel: &Path) {
        for pid in self.pids(rel) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Removes `rel` and its child cgroups, waiting a little for dying tasks.
    pub fn remove(&self, rel: &Path) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for d in self.dirs(rel) {
            remove_tree(&d, deadline)?;
        }
        Ok(())
    }

    /// CPU and memory usage of `rel`.
    pub fn stats(&self, rel: &Path) -> Usage {
        let num = |p: PathBuf| -> u64 {
            fs::read_to_string(p)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        };
        match self {
            Cgroups::V1 {
                cpuacct, memory, ..
            } => {
                let cpu_ns = cpuacct
                    .as_ref()
                    .map(|c| num(c.join(rel).join("cpuacct.usage")))
                    .unwrap_or(0);
                let (usage, inactive) = match memory {
                    Some(m) => {
                        let d = m.join(rel);
                        let stat = fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
                        (
                            num(d.join("memory.usage_in_bytes")),
                            stat_field(&stat, "total_inactive_file"),
                        )
                    }
                    None => (0, 0),
                };
                Usage {
                    cpu_ns,
                    memory_usage: usage,
                    working_set: usage.saturating_sub(inactive),
                }
            }
            Cgroups::V2 { root } => {
                let d = root.join(rel);
                let cpu = fs::read_to_string(d.join("cpu.stat")).unwrap_or_default();
                let mem = fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
                let usage = num(d.join("memory.current"));
                Usage {
                    cpu_ns: stat_field(&cpu, "usage_usec") * 1000,
                    memory_usage: usage,
                    working_set: usage.saturating_sub(stat_field(&mem, "inactive_file")),
                }
            }
        }
    }
}

/// Reads the OOM-kill count from v1 `memory.oom_control` or v2 `memory.events`.
pub fn oom_kills(file: &Path) -> u64 {
    fs::read_to_string(file)
        .map(|s| stat_field(&s, "oom_kill"))
        .unwrap_or(0)
}

/// The value of `key` in a "key value" per line file.
pub fn stat_field(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc converts.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 100;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn pids_max(limit: i64) -> String {
    if limit <= 0 {
        "max".to_string()
    } else {
        limit.to_string()
    }
}

fn enable_v2_controllers(root: &Path, rel: &Path) {
    // Each ancestor must delegate cpu, memory and pids to its children.
    let mut d = root.to_path_buf();
    for c in rel.components() {
        let _ = cg::write_cgroup_file_str(d.join("cgroup.subtree_control"), "+cpu +memory +pids");
        d = d.join(c);
        let _ = fs::create_dir(&d);
    }
}

fn collect_pids(d: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = fs::read_to_string(d.join(cg::CGROUP_PROCS)) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                collect_pids(&e.path(), out);
            }
        }
    }
}

/// rmdir of a cgroup tree, children first; EBUSY (tasks still dying) is retried
/// until `deadline`.
fn remove_tree(d: &Path, deadline: Instant) -> Result<(), RuntimeError> {
    let rd = match fs::read_dir(d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(RuntimeError::io("read cgroup", d)(e)),
    };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&e.path(), deadline)?;
        }
    }
    loop {
        match fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                // Tasks are still exiting; kill stragglers and poll again.
                if let Ok(s) = fs::read_to_string(d.join(cg::CGROUP_PROCS)) {
                    for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(RuntimeError::io("remove cgroup", d)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_from_shares() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
    }

    #[test]
    fn reads_oom_kill_count_from_both_formats() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n";
        assert_eq!(stat_field(v1, "oom_kill"), 2);
        assert_eq!(stat_field(v2, "oom_kill"), 1);
        assert_eq!(stat_field(v2, "nope"), 0);
    }
}
