//! Shared by the end-to-end tests: a real `bosun master` process on a free loopback
//! port with a data dir of its own, killed (and its dir removed) on drop, plus
//! helpers to run kubectl against it. Loopback only: no test touches another address.
#![allow(dead_code)]

pub mod cluster;
pub mod host;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The bosun binary cargo built for these tests.
pub fn bosun_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bosun"))
}

/// True under CI, where a missing tool is a failure rather than a skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skips (with a printed reason) when `tool` is missing, or fails under CI.
pub fn require_tool(path: &Path, why: &str) -> bool {
    if path.exists() {
        return true;
    }
    if in_ci() {
        panic!("{} is missing under CI: {why}", path.display());
    }
    eprintln!("SKIP: {} is missing: {why}", path.display());
    false
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running master. Killed with SIGKILL and its data dir removed on drop.
pub struct Master {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub log: PathBuf,
    /// Flags added to `bosun master` (e.g. a short node grace period).
    pub extra_args: Vec<String>,
    /// The network namespace the master (and kubectl) run in, if not the test's.
    pub netns: Option<PathBuf>,
    /// The address the master listens on.
    pub host: String,
}

impl Master {
    pub fn start() -> Master {
        Self::start_with(&[])
    }

    /// Starts a master with extra flags, e.g. `["--node-monitor-grace-period", "5"]`.
    pub fn start_with(extra_args: &[&str]) -> Master {
        Self::start_custom(extra_args, None)
    }

    /// Starts a master with extra flags, in `netns` when given (then the flags
    /// must hold `--listen ADDR:PORT` on an address of that namespace).
    pub fn start_custom(extra_args: &[&str], netns: Option<PathBuf>) -> Master {
        let listen = extra_args
            .iter()
            .position(|a| *a == "--listen")
            .and_then(|i| extra_args.get(i + 1))
            .and_then(|l| l.parse::<std::net::SocketAddr>().ok());
        let dir = tempfile::Builder::new()
            .prefix("bosun-e2e")
            .tempdir()
            .expect("temp dir");
        let port = listen.map_or_else(free_port, |l| l.port());
        let host = listen.map_or("127.0.0.1".to_string(), |l| l.ip().to_string());
        let mut m = Master {
            child: None,
            dir,
            port,
            log: PathBuf::new(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            netns,
            host,
        };
        m.spawn();
        m
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("admin.kubeconfig")
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }

    /// Starts (or restarts) the process on the same port and data dir and waits
    /// until it answers.
    pub fn spawn(&mut self) {
        let log = self.dir.path().join(format!(
            "master-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = self.in_netns(&bosun_bin());
        cmd.args(["master", "--data-dir"]).arg(self.data_dir());
        if !self.extra_args.iter().any(|a| a == "--listen") {
            cmd.args(["--listen", &format!("127.0.0.1:{}", self.port)]);
        }
        let child = cmd
            .args(&self.extra_args)
            .env("BOSUN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start bosun master");
        self.child = Some(child);
        self.log = log;
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("bosun master exited early ({status}): {}", self.log_text());
                }
            }
            if self.kubeconfig().exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "master not ready in 30s: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// `kubectl apply -f -` of `manifest`; asserts success, returns stdout.
    #[track_caller]
    pub fn apply(&self, manifest: &str) -> String {
        ok(self.kubectl_with(&kubectl_bin(), &["apply", "-f", "-"], Some(manifest)))
    }

    /// Waits until Node `node` is Ready.
    #[track_caller]
    pub fn wait_node_ready(&self, node: &str) {
        eventually(60, &format!("node {node} Ready"), || {
            let out = self.kubectl(&[
                "get",
                "node",
                node,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (stdout(&out).trim() == "True").then_some(())
        });
    }

    /// The pod `name` (default namespace) as JSON, or `None` when it is not there.
    pub fn pod_json(&self, name: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", "pod", name, "-o", "json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).ok())
            .flatten()
    }

    /// Runs the 1.32 kubectl (or `BOSUN_KUBECTL`) with this master's kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&kubectl_bin(), args, None)
    }

    /// `program`, run in the master's network namespace when it has one.
    pub fn in_netns(&self, program: &Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(program);
                c
            }
        }
    }

    pub fn kubectl_with(&self, bin: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let cache = self.dir.path().join("kube-cache");
        let mut cmd = self.in_netns(bin);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        if let Some(input) = stdin {
            if let Some(mut s) = child.stdin.take() {
                let _ = s.write_all(input.as_bytes());
            }
        }
        child.wait_with_output().expect("kubectl output")
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn kubectl_bin() -> PathBuf {
    std::env::var_os("BOSUN_KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"))
}

/// Debian's kubernetes-client 1.20, unpacked by `.ci/run` into a folder of its own.
pub fn kubectl_120_bin() -> PathBuf {
    std::env::var_os("BOSUN_KUBECTL_120")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/bosun-test/kubectl-1.20/usr/bin/kubectl"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed ({}): stdout={} stderr={}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Polls `f` until it returns Some, or panics after `secs`.
#[track_caller]
/// Polls `f` every 50 ms for up to `secs` seconds; true once it holds.
pub fn poll(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `bosun hollow` process joined to a [`Master`] with its join token.
/// Killed with SIGKILL on drop; its nodes stay registered.
pub struct Hollow {
    pub child: Option<Child>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Hollow {
    /// Starts `nodes` hollow nodes named `<prefix>-0000`… against `master`.
    pub fn start(master: &Master, nodes: usize, prefix: &str) -> Hollow {
        let dir = master.dir.path();
        let stdout = dir.join(format!("hollow-{prefix}.out"));
        let stderr = dir.join(format!("hollow-{prefix}.err"));
        let child = Command::new(bosun_bin())
            .args(["hollow", "--server", &master.url(), "--token-file"])
            .arg(master.data_dir().join("join-token"))
            .arg("--ca-file")
            .arg(master.data_dir().join("tls").join("ca.crt"))
            .args(["--nodes", &nodes.to_string(), "--name-prefix", prefix])
            .env("BOSUN_LOG", "info")
            .stdout(std::fs::File::create(&stdout).expect("hollow stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("hollow stderr file"))
            .spawn()
            .expect("start bosun hollow");
        Hollow {
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// What the process printed so far, stdout then stderr.
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Hollow {
    fn drop(&mut self) {
        self.kill();
    }
}
