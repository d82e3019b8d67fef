//! Simulated hosts for end-to-end tests of the agent: a network namespace the
//! test made (`bt<pid>h<n>`, with `lo` and an `eth0` holding the host's
//! address), a master and agents running inside it, and guards that remove
//! everything — processes, mounts, cgroups, the namespace — even when a test
//! panics. The host's own network namespace is never touched. Several hosts
//! on one test switch: [`super::cluster`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{bosun_bin, Master};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique name for a kernel object of this test process: `bt<pid><tag><n>`.
pub fn unique(tag: &str) -> String {
    format!(
        "bt{}{tag}{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// True when the test can make namespaces and cgroups; prints why not otherwise
/// (and fails under CI, which runs as root).
pub fn require_root(what: &str) -> bool {
    if is_root() {
        return true;
    }
    if super::in_ci() {
        panic!("{what} needs root, and CI runs as root");
    }
    eprintln!("SKIP: {what} needs root");
    false
}

/// Root, kubectl and busybox-static — what a test running real pods needs —
/// or a printed skip (a failure under CI).
pub fn can_run_pods(what: &str) -> bool {
    require_root(what)
        && super::require_tool(&super::kubectl_bin(), "kubectl drives the cluster")
        && super::require_tool(
            Path::new("/bin/busybox"),
            "the test image is made from busybox-static",
        )
}

/// Whether this test process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd`, asserting that it succeeds.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace acting as one host, with address `10.254.<n>.2/24` on
/// `eth0`. Deleted on drop.
pub struct TestHost {
    pub name: String,
    pub ip: String,
}

impl TestHost {
    pub fn new() -> TestHost {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 250 + 1;
        let host = TestHost::bare(format!("10.254.{n}.2"));
        // No dummy module on these kernels: a veth pair with both ends inside.
        run(Command::new("ip").args([
            "-n", &host.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
        ]));
        run(Command::new("ip").args(["-n", &host.name, "link", "set", "eth0p", "up"]));
        host.address_eth0("24");
        host
    }

    /// A new namespace with `lo` up and nothing else; `ip` is the address the
    /// caller gives its `eth0`.
    pub fn bare(ip: String) -> TestHost {
        let name = unique("h");
        run(Command::new("ip").args(["netns", "add", &name]));
        let host = TestHost { name, ip };
        run(Command::new("ip").args(["-n", &host.name, "link", "set", "lo", "up"]));
        host
    }

    /// Puts the host's address on its `eth0` and brings it up.
    pub fn address_eth0(&self, prefix: &str) {
        run(Command::new("ip").args([
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{}/{prefix}", self.ip),
            "dev",
            "eth0",
        ]));
        run(Command::new("ip").args(["-n", &self.name, "link", "set", "eth0", "up"]));
    }

    /// Two hosts on one link: `eth0` of each is an end of the same veth pair,
    /// addresses `10.254.<n>.1/24` and `10.254.<n>.2/24`.
    pub fn pair() -> (TestHost, TestHost) {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 250 + 1;
        let a = TestHost::bare(format!("10.254.{n}.1"));
        let b = TestHost::bare(format!("10.254.{n}.2"));
        run(Command::new("ip").args([
            "-n", &a.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
            &b.name,
        ]));
        a.address_eth0("24");
        b.address_eth0("24");
        (a, b)
    }

    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `program` to be run inside this host's network namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path().display()))
            .arg("--")
            .arg(program);
        c
    }

    /// `curl -s URL` from inside the host; the body, or `None` when it failed.
    pub fn curl(&self, url: &str) -> Option<String> {
        let out = self
            .command("curl")
            .args(["-sS", "--max-time", "5", url])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Makes a busybox root filesystem from Debian's busybox-static in `dir`:
/// `bin/busybox` with its applets linked, `/etc/passwd`, `/etc/group` and a
/// marker file `/IMAGE` holding `marker`.
pub fn busybox_rootfs(dir: &Path, marker: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["etc", "tmp", "proc", "sys", "dev", "root", "var/www"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(dir.join("IMAGE"), marker).unwrap();
    std::fs::write(dir.join("var/www/index.html"), "hello from bosun\n").unwrap();
}

impl Master {
    /// Starts a master inside `host`, listening on the host's address.
    pub fn start_in(host: &TestHost, extra_args: &[&str]) -> Master {
        let mut args: Vec<&str> = extra_args.to_vec();
        let listen = format!("{}:{}", host.ip, super::free_port());
        args.extend(["--listen", &listen]);
        let netns = host.netns_path();
        Master::start_custom(&args, Some(netns))
    }
}

/// A running `bosun agent` inside a test host. On drop it is SIGKILLed and
/// everything its pods left (processes, mounts, cgroups) is removed.
pub struct Agent {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub node_name: String,
    pub cgroup_parent: String,
    pub log: PathBuf,
    netns: PathBuf,
    args: Vec<String>,
}

impl Agent {
    pub fn start(master: &Master, host: &TestHost, node_name: &str) -> Agent {
        Agent::start_with(master, host, node_name, &[])
    }

    /// [`Agent::start`] with extra flags, e.g. `["--insecure-registry", "10.254.1.2:5000"]`.
    pub fn start_with(master: &Master, host: &TestHost, node_name: &str, extra: &[&str]) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("bosun-agent")
            .tempdir()
            .expect("temp dir");
        let cgroup_parent = unique("a");
        let args = vec![
            "agent".to_string(),
            "--server".into(),
            master.url(),
            "--token-file".into(),
            master.data_dir().join("join-token").display().to_string(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
            "--node-name".into(),
            node_name.into(),
            "--node-ip".into(),
            host.ip.clone(),
            "--log-root".into(),
            dir.path().join("logs").display().to_string(),
            "--cgroup-parent".into(),
            cgroup_parent.clone(),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        let mut a = Agent {
            child: None,
            dir,
            node_name: node_name.to_string(),
            cgroup_parent,
            log: PathBuf::new(),
            netns: host.netns_path(),
            args,
        };
        a.spawn();
        a
    }

    /// Imports a busybox image (see [`busybox_rootfs`]) as `tag` into this
    /// agent's image store.
    pub fn import_busybox(&self, tag: &str) {
        let rootfs = self.dir.path().join("rootfs");
        if !rootfs.exists() {
            busybox_rootfs(&rootfs, "bosun-e2e-image");
        }
        let out = Command::new(bosun_bin())
            .args(["image", "import", "--data-dir"])
            .arg(self.data_dir())
            .arg("--rootfs")
            .arg(&rootfs)
            .args(["--tag", tag])
            .output()
            .expect("run bosun image import");
        assert!(
            out.status.success(),
            "image import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log_root(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Starts (or restarts) the agent process.
    pub fn spawn(&mut self) {
        let log = self
            .dir
            .path()
            .join(format!("agent-{}.log", super::free_port()));
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(bosun_bin())
            .args(&self.args)
            .env("BOSUN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start bosun agent");
        self.child = Some(child);
        self.log = log;
    }

    /// Runs `bosun agent --cleanup` with this agent's flags, in its host.
    pub fn run_cleanup(&self) -> std::process::Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(bosun_bin())
            .args(&self.args)
            .arg("--cleanup")
            .output()
            .expect("run bosun agent --cleanup")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would (nsenter execs, so this is the agent itself).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every cgroup directory of this agent, in every hierarchy, deepest first.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in cgroup_roots() {
            let top = root.join(&self.cgroup_parent);
            if top.is_dir() {
                walk_dirs(&top, &mut out);
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        out
    }

    /// Mount points under this agent's directories.
    pub fn mounts(&self) -> Vec<String> {
        let base = self.dir.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&base))
            .map(String::from)
            .collect()
    }

    /// Removes what the agent's pods left: kills their processes (found in the
    /// agent's cgroups), unmounts, removes the cgroups.
    pub fn clean_up(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut any = false;
            for dir in self.cgroup_dirs() {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    any = true;
                    let _ = Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
            if !any || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for m in self.mounts().into_iter().rev() {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        for dir in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.clean_up();
    }
}

/// The mounted cgroup hierarchies (v1 controllers and the v2 unified one).
pub fn cgroup_roots() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if matches!(fields.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2")) {
            out.push(PathBuf::from(fields[4]));
        }
    }
    out
}

fn walk_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk_dirs(&e.path(), out);
            }
        }
    }
}
