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
        freezer: Option<PathBuf>,
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
                    freezer: get(ControllerType::Freezer),
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

    /// SIGKILLs every task of `rel` and its children, including those forked
    /// while it runs, and waits a little for them to leave: v2 `cgroup.kill`
    /// where the kernel has it; else a kill of the listed tasks, and if some
    /// are still there shortly after (forked between reading the list and the
    /// kill), [`Cgroups::freeze_and_kill`].
    pub fn kill_all(&self, rel: &Path) {
        if self.pids(rel).is_empty() {
            return;
        }
        if let Cgroups::V2 { root } = self {
            if cg::write_cgroup_file_str(root.join(rel).join("cgroup.kill"), "1").is_ok() {
                self.wait_empty(rel, Instant::now() + KILL_SETTLE);
                return;
            }
        }
        signal_all(&self.pids(rel));
        if !self.wait_empty(rel, Instant::now() + KILL_SETTLE) {
            let _ = self.freeze_and_kill(rel);
        }
    }

    /// Freezes `rel` (v1 freezer, v2 `cgroup.freeze`) so that no task can fork,
    /// SIGKILLs every task, and thaws it so that they die. True if the freeze
    /// took effect before the kill.
    pub fn freeze_and_kill(&self, rel: &Path) -> bool {
        let freeze = match self {
            Cgroups::V2 { root } => Some(Freeze::V2(root.join(rel))),
            Cgroups::V1 { freezer, .. } => freezer.as_ref().map(|f| Freeze::V1(f.join(rel))),
        };
        let frozen = freeze
            .as_ref()
            .is_some_and(|f| f.set(true, Instant::now() + FREEZE_TIMEOUT));
        signal_all(&self.pids(rel));
        if let Some(f) = &freeze {
            if f.is_set() {
                f.set(false, Instant::now() + FREEZE_TIMEOUT);
            }
        }
        frozen
    }

    /// Waits until no task is left in `rel` (killed tasks leave it once they
    /// have exited); false at `deadline`.
    pub fn wait_empty(&self, rel: &Path, deadline: Instant) -> bool {
        loop {
            if self.pids(rel).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(500));
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

/// How long killed tasks may take to leave their cgroup before the freezer is
/// used.
const KILL_SETTLE: Duration = Duration::from_millis(100);

/// SIGKILLs each pid.
fn signal_all(pids: &[i32]) {
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// How long to wait for a cgroup to freeze before killing anyway.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

/// The freezer of one cgroup.
enum Freeze {
    /// The cgroup dir in the v1 freezer hierarchy (`freezer.state`).
    V1(PathBuf),
    /// The v2 cgroup dir (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl Freeze {
    /// Freezes or thaws; true once the kernel says it is done (before `deadline`).
    fn set(&self, frozen: bool, deadline: Instant) -> bool {
        let (file, value) = match (self, frozen) {
            (Freeze::V1(d), true) => (d.join("freezer.state"), "FROZEN"),
            (Freeze::V1(d), false) => (d.join("freezer.state"), "THAWED"),
            (Freeze::V2(d), f) => (d.join("cgroup.freeze"), if f { "1" } else { "0" }),
        };
        if cg::write_cgroup_file_str(&file, value).is_err() {
            return false;
        }
        loop {
            if self.state() == Some(frozen) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Whether the freeze was asked for (even if not complete).
    fn is_set(&self) -> bool {
        match self {
            Freeze::V1(d) => {
                fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() != "THAWED")
            }
            Freeze::V2(d) => {
                fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
            }
        }
    }

    /// Some(true) when frozen, Some(false) when thawed, None in between.
    fn state(&self) -> Option<bool> {
        match self {
            Freeze::V1(d) => {
                let s = fs::read_to_string(d.join("freezer.state")).ok()?;
                freezer_state(&s)
            }
            Freeze::V2(d) => {
                let s = fs::read_to_string(d.join("cgroup.events")).ok()?;
                Some(stat_field(&s, "frozen") == 1)
            }
        }
    }
}

/// Parses v1 `freezer.state`: Some(true) FROZEN, Some(false) THAWED, None
/// FREEZING.
fn freezer_state(text: &str) -> Option<bool> {
    match text.trim() {
        "FROZEN" => Some(true),
        "THAWED" => Some(false),
        _ => None,
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

    /// Removes a test cgroup tree on drop.
    struct Guard<'a>(&'a Cgroups, PathBuf);

    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            let _ = self.0.freeze_and_kill(&self.1);
            let _ = self.0.remove(&self.1);
        }
    }

    #[test]
    fn freeze_and_kill_leaves_no_task() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        if !nix::unistd::geteuid().is_root() || !Path::new("/bin/sh").exists() {
            eprintln!("SKIP: needs root and /bin/sh");
            return;
        }
        let cg = Cgroups::discover(Path::new("/sys/fs/cgroup")).unwrap();
        let rel = PathBuf::from(format!("bt{}fz", std::process::id()));
        cg.create(&rel, None).unwrap();
        let guard = Guard(&cg, rel.clone());
        // The shell waits on stdin until it is in the cgroup, then forks.
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("read x; sleep 1000 & sleep 1000 & wait")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        for f in cg.join_files(&rel) {
            let procs = f.with_file_name(cg::CGROUP_PROCS);
            fs::write(procs, child.id().to_string()).unwrap();
        }
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while cg.pids(&rel).len() < 3 {
            assert!(Instant::now() < deadline, "{:?}", cg.pids(&rel));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(cg.freeze_and_kill(&rel), "not frozen");
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
        assert!(cg.wait_empty(&rel, Instant::now() + Duration::from_secs(5)));
        cg.remove(&rel).unwrap();
        drop(guard);
        for d in cg.dirs(&rel) {
            assert!(!d.exists(), "{} left", d.display());
        }
    }

    #[test]
    fn reads_freezer_state() {
        assert_eq!(freezer_state("FROZEN\n"), Some(true));
        assert_eq!(freezer_state("THAWED\n"), Some(false));
        assert_eq!(freezer_state("FREEZING\n"), None);
    }

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
