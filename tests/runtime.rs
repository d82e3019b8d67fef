//! Privileged tests of the agent's runtime: real sandboxes and containers from a
//! busybox rootfs built from Debian's busybox-static. Each test has its own data
//! dir and cgroup parent (`bt<pid><n>`), removed by Drop guards even on panic.
//! Skips with a printed reason when not root or without /usr/bin/busybox.

mod common;

use agent::runtime::spec::{self, SandboxPaths, SpecInput, VolumeMountSpec};
use agent::runtime::{
    ContainerSpec, ContainerState, PodResources, Runtime, RuntimeConfig, SandboxSpec,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BUSYBOX: &str = "/usr/bin/busybox";

/// Root and busybox-static, or a printed skip (a failure under CI).
fn can_run() -> bool {
    common::host::require_root("the runtime tests")
        && common::require_tool(
            Path::new(BUSYBOX),
            "the test image is made from busybox-static",
        )
}

static N: AtomicU32 = AtomicU32::new(0);

/// A runtime with its own dirs and cgroup parent; removes all on drop.
struct Env {
    rt: Runtime,
    tmp: tempfile::TempDir,
    layer: PathBuf,
    parent: String,
    pods: Vec<String>,
}

impl Env {
    fn new() -> Env {
        Env::with(|_| {})
    }

    fn with(f: impl FnOnce(&mut RuntimeConfig)) -> Env {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let parent = format!("bt{}{}", std::process::id(), n);
        let tmp = tempfile::Builder::new().prefix(&parent).tempdir().unwrap();
        let layer = tmp.path().join("layer");
        make_busybox_rootfs(&layer);
        let mut config = RuntimeConfig {
            pods_dir: tmp.path().join("pods"),
            log_root: tmp.path().join("logs"),
            cgroup_root: "/sys/fs/cgroup".into(),
            cgroup_parent: parent.clone(),
            shim_exe: env!("CARGO_BIN_EXE_bosun").into(),
            log_max_size: 10 << 20,
            pod_pids_limit: None,
        };
        f(&mut config);
        let rt = Runtime::new(config).unwrap();
        Env {
            rt,
            tmp,
            layer,
            parent,
            pods: Vec::new(),
        }
    }

    fn sandbox(&mut self, name: &str, resources: PodResources) -> SandboxSpec {
        self.sandbox_with(name, |sb| sb.resources = resources)
    }

    fn sandbox_with(&mut self, name: &str, f: impl FnOnce(&mut SandboxSpec)) -> SandboxSpec {
        let uid = format!("{}-{name}", self.parent);
        self.pods.push(uid.clone());
        let mut sb = SandboxSpec {
            uid,
            namespace: "default".into(),
            name: name.into(),
            hostname: name.into(),
            hosts_file: "127.0.0.1 localhost\n".into(),
            resolv_conf: "nameserver 10.96.0.10\n".into(),
            ..Default::default()
        };
        f(&mut sb);
        self.rt.create_sandbox(&sb).unwrap();
        sb
    }

    fn container(&self, sb: &SandboxSpec, c: &Container) -> ContainerSpec {
        let mut pod = Pod::default();
        pod.metadata.name = Some(sb.name.clone());
        pod.spec = Some(PodSpec {
            containers: vec![c.clone()],
            ..Default::default()
        });
        let paths: SandboxPaths = self.rt.sandbox_paths(&sb.uid).unwrap();
        let volumes: Vec<VolumeMountSpec> = Vec::new();
        let oci = spec::build(&SpecInput {
            pod: &pod,
            container: c,
            image: None,
            env: &[],
            volume_mounts: &volumes,
            sandbox: &paths,
        })
        .unwrap();
        ContainerSpec {
            name: c.name.clone(),
            attempt: 0,
            image_ref: "busybox:test".into(),
            image_id: "sha256:00".into(),
            layers: vec![self.layer.clone()],
            oci,
        }
    }

    fn log_file(&self, sb: &SandboxSpec, container: &str) -> PathBuf {
        self.tmp
            .path()
            .join("logs")
            .join(format!("default_{}_{}", sb.name, sb.uid))
            .join(container)
            .join("0.log")
    }

    /// Asserts that nothing of the pod is left: mounts, cgroups, dirs.
    fn assert_gone(&self, sb: &SandboxSpec) {
        let pod_dir = self.tmp.path().join("pods").join(&sb.uid);
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(pod_dir.to_str().unwrap()),
            "mounts left under {}",
            pod_dir.display()
        );
        assert!(!pod_dir.exists(), "pod dir left");
        let log_dir = self.log_file(sb, "x");
        assert!(
            !log_dir.parent().unwrap().parent().unwrap().exists(),
            "log dir left"
        );
        for d in cgroup_dirs(&self.parent) {
            assert!(
                !d.join(format!("pod{}", sb.uid)).exists(),
                "cgroup {} left",
                d.display()
            );
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for uid in &self.pods {
            let _ = self.rt.remove_sandbox(uid);
        }
        for d in cgroup_dirs(&self.parent) {
            remove_cgroup_tree(&d);
        }
    }
}

fn cgroup_dirs(parent: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            let d = e.path().join(parent);
            if d.exists() {
                out.push(d);
            }
        }
    }
    if Path::new("/sys/fs/cgroup").join(parent).exists() {
        out.push(Path::new("/sys/fs/cgroup").join(parent));
    }
    out
}

fn remove_cgroup_tree(d: &Path) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(d);
}

fn make_busybox_rootfs(root: &Path) {
    common::host::busybox_rootfs(root, "bosun-image");
}

fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        command: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
        ..Default::default()
    }
}

/// Waits for the container to exit (through its exit fd) and returns its state.
fn wait_exit(rt: &Runtime, uid: &str, id: &str, timeout: Duration) -> ContainerState {
    if let Some(fd) = rt.exit_fd(uid, id).unwrap() {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: fd.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
        assert_eq!(n, 1, "container did not exit within {timeout:?}");
    }
    rt.container_state(uid, id).unwrap()
}

fn log_text(path: &Path) -> String {
    let raw = fs::read_to_string(path).unwrap_or_default();
    for l in raw.lines() {
        let mut f = l.splitn(4, ' ');
        let ts = f.next().unwrap();
        assert!(
            ts.ends_with('Z') && ts.contains('T'),
            "bad CRI timestamp in {l:?}"
        );
        assert!(
            matches!(f.next(), Some("stdout" | "stderr")),
            "bad stream in {l:?}"
        );
        assert!(matches!(f.next(), Some("F" | "P")), "bad tag in {l:?}");
    }
    raw.lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn container_is_isolated_logs_and_leaves_nothing() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("web", PodResources::default());
    // `$$` is the Kubernetes escape of `$`.
    let script = "echo pid=$$$$; echo host=$(hostname); grep CapEff /proc/self/status; \
                  echo marker=$(cat /IMAGE); ip link 2>/dev/null | grep -c '^[0-9]' | sed 's/^/links=/'; \
                  cat /etc/resolv.conf; echo err >&2; ls /dev; \
                  echo nofile=$(ulimit -Sn)/$(ulimit -Hn)";
    let spec = env.container(&sb, &sh("main", script));
    let info = env.rt.start_container(&sb.uid, &spec).unwrap();
    assert_eq!(info.id.len(), 64);
    let state = wait_exit(&env.rt, &sb.uid, &info.id, Duration::from_secs(10));
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}"
    );
    let text = log_text(&env.log_file(&sb, "main"));
    assert!(text.contains("pid=1\n"), "not PID 1: {text}");
    assert!(text.contains("host=web\n"), "hostname: {text}");
    assert!(
        text.contains("marker=bosun-image\n"),
        "root is not the image: {text}"
    );
    assert!(text.contains("nameserver 10.96.0.10"), "{text}");
    assert!(text.contains("links=1"), "only lo in the pod netns: {text}");
    assert!(text.contains("err"), "{text}");
    let nofile = expected_nofile();
    assert!(
        text.lines()
            .any(|l| l == format!("nofile={nofile}/{nofile}")),
        "rlimit: {text}"
    );
    for dev in ["null", "zero", "urandom", "pts", "shm", "fd"] {
        assert!(text.lines().any(|l| l == dev), "/dev/{dev} missing: {text}");
    }
    let capeff = text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .expect("CapEff line");
    assert_eq!(capeff & (1 << 21), 0, "CAP_SYS_ADMIN in {capeff:x}");
    assert_eq!(capeff & (1 << 12), 0, "CAP_NET_ADMIN in {capeff:x}");
    assert_ne!(capeff & (1 << 0), 0, "CAP_CHOWN missing in {capeff:x}");
    let raw = fs::read_to_string(env.log_file(&sb, "main")).unwrap();
    assert!(raw.lines().any(|l| l.contains(" stderr F err")), "{raw}");

    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
    env.rt.remove_sandbox(&sb.uid).unwrap();
}

/// containerd's RLIMIT_NOFILE, or our own hard limit when we cannot raise it
/// (no CAP_SYS_RESOURCE, as in some CI containers).
fn expected_nofile() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills our struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if eff & (1 << 24) != 0 {
        spec::NOFILE_LIMIT
    } else {
        spec::NOFILE_LIMIT.min(lim.rlim_max)
    }
}

#[test]
fn exec_failure_is_a_clear_error() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("bad", PodResources::default());
    let c = Container {
        name: "c".into(),
        command: Some(vec!["/bin/nope".into()]),
        ..Default::default()
    };
    let err = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &c))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exec: \"/bin/nope\": no such file or directory"
    );
    let c = Container {
        name: "d".into(),
        command: Some(vec!["nope".into()]),
        ..Default::default()
    };
    let err = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &c))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "exec: \"nope\": executable file not found in $PATH"
    );
}

#[test]
fn memory_limit_oom_kills() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let c = Container {
        name: "hog".into(),
        command: Some(vec!["tail".into(), "/dev/zero".into()]),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("32Mi".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod_spec = PodSpec {
        containers: vec![c.clone()],
        ..Default::default()
    };
    let sb = env.sandbox("hog", spec::pod_resources(&pod_spec));
    let info = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &c))
        .unwrap();
    let state = wait_exit(&env.rt, &sb.uid, &info.id, Duration::from_secs(30));
    match state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            ..
        } => {
            assert!(oom_killed, "not OOMKilled (exit {exit_code})");
            assert_eq!(exit_code, 137);
        }
        s => panic!("still {s:?}"),
    }
}

#[test]
fn stop_sends_term_then_kill() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("stop", PodResources::default());
    // PID 1 without a handler ignores SIGTERM: stop must fall back to SIGKILL.
    let deaf = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &sh("deaf", "exec sleep 1000")))
        .unwrap();
    // A shell with a TERM trap exits by itself.
    let polite = env
        .rt
        .start_container(
            &sb.uid,
            &env.container(
                &sb,
                &sh(
                    "polite",
                    "trap 'exit 3' TERM; echo ready; while true; do sleep 0.05; done",
                ),
            ),
        )
        .unwrap();
    assert!(matches!(
        env.rt.container_state(&sb.uid, &deaf.id).unwrap(),
        ContainerState::Running { .. }
    ));
    let t = Instant::now();
    env.rt
        .stop_container(&sb.uid, &deaf.id, Duration::from_millis(300))
        .unwrap();
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(matches!(
        env.rt.container_state(&sb.uid, &deaf.id).unwrap(),
        ContainerState::Exited {
            exit_code: 137,
            signal: Some(9),
            ..
        }
    ));
    let t = Instant::now();
    env.rt
        .stop_container(&sb.uid, &polite.id, Duration::from_secs(10))
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        env.rt.container_state(&sb.uid, &polite.id).unwrap(),
        ContainerState::Exited { exit_code: 3, .. }
    ));
    env.rt.remove_container(&sb.uid, &deaf.id).unwrap();
    assert!(env.rt.container_state(&sb.uid, &deaf.id).is_err());
    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
}

#[test]
fn a_new_runtime_readopts_running_containers() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("keep", PodResources::default());
    let info = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &sh("s", "exec sleep 1000")))
        .unwrap();
    // A second runtime on the same dirs, as after an agent restart.
    let again = Runtime::new(env.rt.config().clone()).unwrap();
    let list = again.list().unwrap();
    let rec = list
        .iter()
        .find(|s| s.uid == sb.uid)
        .expect("sandbox listed");
    assert_eq!(rec.name, "keep");
    let c = rec
        .containers
        .iter()
        .find(|c| c.id == info.id)
        .expect("container listed");
    assert_eq!(
        c.state,
        ContainerState::Running {
            pid: info.pid,
            started_at: info.started_at
        }
    );
    let stats = again.pod_stats(&sb.uid).unwrap();
    assert_eq!(stats.containers.len(), 1);
    assert!(stats.memory_usage_bytes > 0, "{stats:?}");
    again
        .stop_container(&sb.uid, &info.id, Duration::ZERO)
        .unwrap();
    let list = again.list().unwrap();
    let rec = list.iter().find(|s| s.uid == sb.uid).unwrap();
    assert!(matches!(
        rec.containers[0].state,
        ContainerState::Exited { .. }
    ));
}

#[test]
fn timing_of_sandbox_and_container_setup_and_teardown() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let mut setup = Vec::new();
    let mut teardown = Vec::new();
    let mut sandbox = Vec::new();
    for i in 0..10 {
        let name = format!("t{i}");
        let t = Instant::now();
        let sb = env.sandbox(&name, PodResources::default());
        sandbox.push(t.elapsed());
        let c = env.container(&sb, &sh("s", "exec sleep 1000"));
        env.rt.start_container(&sb.uid, &c).unwrap();
        setup.push(t.elapsed());
        let t = Instant::now();
        env.rt.remove_sandbox(&sb.uid).unwrap();
        teardown.push(t.elapsed());
        env.assert_gone(&sb);
    }
    setup.sort();
    teardown.sort();
    sandbox.sort();
    println!(
        "runtime: create_sandbox p50 {:?}; create_sandbox+start_container p50 {:?} max {:?}; remove_sandbox p50 {:?} max {:?}",
        sandbox[sandbox.len() / 2],
        setup[setup.len() / 2],
        setup[setup.len() - 1],
        teardown[teardown.len() / 2],
        teardown[teardown.len() - 1]
    );
}

#[test]
fn security_context_applies() {
    use k8s_openapi::api::core::v1::{SeccompProfile, SecurityContext};
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("sec", PodResources::default());
    let mut c = sh(
        "main",
        "id -u; id -g; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
         touch /x 2>/dev/null || echo rootfs-ro; echo timer_list=$(wc -c < /proc/timer_list); \
         touch /proc/sys/kernel/x 2>/dev/null || echo procsys-ro",
    );
    c.security_context = Some(SecurityContext {
        run_as_user: Some(65534),
        run_as_group: Some(65534),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    let info = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &c))
        .unwrap();
    let state = wait_exit(&env.rt, &sb.uid, &info.id, Duration::from_secs(10));
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}"
    );
    let text = log_text(&env.log_file(&sb, "main"));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], &["65534", "65534"], "{text}");
    assert!(text.contains("CapEff:\t0000000000000000"), "{text}");
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.contains("rootfs-ro"), "{text}");
    assert!(
        text.contains("timer_list=0"),
        "masked /proc/timer_list: {text}"
    );
    assert!(text.contains("procsys-ro"), "{text}");
}

/// Runs `script` in a new container of `sb` to completion; returns its log.
fn run_to_end(env: &Env, sb: &SandboxSpec, name: &str, script: &str) -> String {
    run_to_end_on(&env.rt, env, sb, name, script)
}

fn run_to_end_on(rt: &Runtime, env: &Env, sb: &SandboxSpec, name: &str, script: &str) -> String {
    let info = rt
        .start_container(&sb.uid, &env.container(sb, &sh(name, script)))
        .unwrap();
    let state = wait_exit(rt, &sb.uid, &info.id, Duration::from_secs(10));
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}"
    );
    log_text(&env.log_file(sb, name))
}

/// The pid of the pod's pause process, from its record.
fn pause_pid(env: &Env, sb: &SandboxSpec) -> Option<i32> {
    let path = env.tmp.path().join("pods").join(&sb.uid).join("pause.json");
    let text = fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["pid"].as_i64().map(|p| p as i32)
}

#[test]
fn share_process_namespace_shows_the_other_containers() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox_with("shared", |sb| sb.share_process_namespace = true);
    let pause = pause_pid(&env, &sb).expect("pause.json");
    let stat = fs::read_to_string(format!("/proc/{pause}/stat")).unwrap();
    assert!(!stat.contains(") Z "), "pause is a zombie: {stat}");
    let sleeper = env
        .rt
        .start_container(
            &sb.uid,
            &env.container(&sb, &sh("sleeper", "exec sleep 1001")),
        )
        .unwrap();
    let text = run_to_end(&env, &sb, "looker", "echo pid=$$$$; ps -o pid,args");
    assert!(
        !text.contains("pid=1\n"),
        "PID 1 with a shared namespace: {text}"
    );
    assert!(text.contains("sleep 1001"), "sleeper not visible: {text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("1 ") && l.contains("pause")),
        "PID 1 is not the pause process: {text}"
    );

    // A restarted runtime re-adopts the pod and starts containers in the same
    // namespace.
    let again = Runtime::new(env.rt.config().clone()).unwrap();
    assert!(again.list().unwrap().iter().any(|s| s.uid == sb.uid));
    let text = run_to_end_on(&again, &env, &sb, "later", "ps -o args");
    assert!(text.contains("sleep 1001"), "after restart: {text}");
    assert!(matches!(
        again.container_state(&sb.uid, &sleeper.id).unwrap(),
        ContainerState::Running { .. }
    ));

    again.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
    let deadline = Instant::now() + Duration::from_secs(5);
    // Gone, or a zombie waiting for whoever adopted it to reap it.
    while fs::read_to_string(format!("/proc/{pause}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "pause process {pause} left");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn without_sharing_each_container_is_pid_1() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox("apart", PodResources::default());
    assert_eq!(pause_pid(&env, &sb), None);
    env.rt
        .start_container(
            &sb.uid,
            &env.container(&sb, &sh("sleeper", "exec sleep 1002")),
        )
        .unwrap();
    let text = run_to_end(&env, &sb, "looker", "echo pid=$$$$; ps -o args");
    assert!(text.contains("pid=1\n"), "{text}");
    assert!(
        !text.contains("sleep 1002"),
        "other container visible: {text}"
    );
    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
}

/// The pids in a cgroup of the test's parent (`rel` under it), from the first
/// hierarchy that has it.
fn cgroup_pids(env: &Env, rel: &str) -> Vec<i32> {
    for d in cgroup_dirs(&env.parent) {
        if let Ok(s) = fs::read_to_string(d.join(rel).join("cgroup.procs")) {
            return s.lines().filter_map(|l| l.trim().parse().ok()).collect();
        }
    }
    Vec::new()
}

/// Whether `pid` is gone (or a zombie about to be reaped by its adopter).
fn dead(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

/// Waits until the container's cgroup holds at least `n` processes.
fn wait_for_pids(env: &Env, rel: &str, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = cgroup_pids(env, rel);
        if pids.len() >= n {
            return pids;
        }
        assert!(Instant::now() < deadline, "only {pids:?} in {rel}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn remove_sandbox_kills_children_that_escaped_pid_1() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    // In the host's PID namespace nothing dies with the container's PID 1: only
    // the cgroup knows its children. One of them keeps forking.
    let sb = env.sandbox_with("forks", |sb| sb.host_pid = true);
    let info = env
        .rt
        .start_container(
            &sb.uid,
            &env.container(
                &sb,
                &sh(
                    "main",
                    "sleep 1000 & sleep 1000 & (while :; do /bin/sleep 0; done) & wait",
                ),
            ),
        )
        .unwrap();
    let rel = format!("pod{}/{}", sb.uid, info.id);
    let pids = wait_for_pids(&env, &rel, 4);
    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
    let left: Vec<i32> = pids.into_iter().filter(|p| !dead(*p)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn stop_container_kills_what_its_exited_main_process_left() {
    if !can_run() {
        return;
    }
    let mut env = Env::new();
    let sb = env.sandbox_with("orphans", |sb| sb.host_pid = true);
    let info = env
        .rt
        .start_container(
            &sb.uid,
            &env.container(&sb, &sh("main", "sleep 1000 & sleep 1000 & echo started")),
        )
        .unwrap();
    let state = wait_exit(&env.rt, &sb.uid, &info.id, Duration::from_secs(10));
    assert!(
        matches!(state, ContainerState::Exited { exit_code: 0, .. }),
        "{state:?}"
    );
    let rel = format!("pod{}/{}", sb.uid, info.id);
    let pids = wait_for_pids(&env, &rel, 2);
    env.rt
        .stop_container(&sb.uid, &info.id, Duration::from_secs(1))
        .unwrap();
    assert!(pids.iter().all(|p| dead(*p)), "left: {pids:?}");
    env.rt.remove_container(&sb.uid, &info.id).unwrap();
    for d in cgroup_dirs(&env.parent) {
        assert!(!d.join(&rel).exists(), "cgroup {} left", d.display());
    }
    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);
}

#[test]
fn pod_pids_limit_caps_forks() {
    if !can_run() {
        return;
    }
    let mut env = Env::with(|c| c.pod_pids_limit = Some(20));
    let sb = env.sandbox("pids", PodResources::default());
    let limits: Vec<String> = cgroup_dirs(&env.parent)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join(format!("pod{}", sb.uid)).join("pids.max")).ok())
        .collect();
    assert_eq!(limits, vec!["20\n".to_string()]);
    let c = sh(
        "forker",
        "for i in $(seq 40); do sleep 100 & done; echo done",
    );
    let info = env
        .rt
        .start_container(&sb.uid, &env.container(&sb, &c))
        .unwrap();
    let state = wait_exit(&env.rt, &sb.uid, &info.id, Duration::from_secs(10));
    let text = log_text(&env.log_file(&sb, "forker"));
    assert!(
        text.contains("can't fork"),
        "no fork failed: {state:?} {text}"
    );
    env.rt.remove_sandbox(&sb.uid).unwrap();
    env.assert_gone(&sb);

    // Without a limit the pod cgroup has none.
    let mut env = Env::new();
    let sb = env.sandbox("nolimit", PodResources::default());
    for d in cgroup_dirs(&env.parent) {
        if let Ok(v) = fs::read_to_string(d.join(format!("pod{}", sb.uid)).join("pids.max")) {
            assert_eq!(v, "max\n");
        }
    }
}
