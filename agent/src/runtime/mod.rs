//! The kernel boundary of the agent: pod sandboxes (net/uts/ipc namespaces kept
//! alive by bind mounts), containers (each run by a small detached supervisor, the
//! "shim", in its own mount and PID namespaces on an overlay rootfs), cgroups, CRI
//! log files, OCI spec building, stats, and the on-disk records that let a
//! restarted agent re-adopt what is running.
//!
//! Everything here is blocking; the kubelet calls it from its own threads. No
//! namespace is ever entered on a caller's thread: sandboxes are made on a
//! dedicated `std::thread`, containers in the shim process.
//!
//! Layout of `pods_dir/<uid>/`: `sandbox.json`, `ns/{net,uts,ipc,pid}` (bind
//! mounts of namespace files; `pid` only with shareProcessNamespace, whose init
//! is recorded in `pause.json`), `etc/{hosts,hostname,resolv.conf}`, and
//! `containers/<id>/` with `config.json` (the OCI spec), `container.json`,
//! `shim.json`, `state.json`, `exit.json`, and the overlay `upper/`, `work/`,
//! `rootfs/` dirs.

mod cgroups;
mod ids;
mod log;
mod mounts;
mod pause;
mod record;
mod sandbox;
mod sys;
mod user;
mod warm;

pub mod container;
pub mod seccomp;
pub mod shim;
pub mod spec;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use record::{ContainerMeta, ExitRecord};
pub use spec::{PodResources, SandboxPaths, SpecInput};

/// Where the runtime keeps its things and how it names them.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// `DIR/pods`.
    pub pods_dir: PathBuf,
    /// `--log-root`, e.g. /var/log/pods.
    pub log_root: PathBuf,
    /// Where the cgroup hierarchies are mounted, e.g. /sys/fs/cgroup.
    pub cgroup_root: PathBuf,
    /// The agent's own cgroup parent, e.g. "bosun/<node-name>".
    pub cgroup_parent: String,
    /// The bosun binary, run as `<shim_exe> shim <container-dir>`.
    pub shim_exe: PathBuf,
    /// A container log file is rotated when it passes this many bytes.
    pub log_max_size: u64,
    /// pids.max of every pod cgroup (the kubelet's podPidsLimit); None =
    /// unlimited.
    pub pod_pids_limit: Option<i64>,
}

/// An error of the runtime. The message of a failed start is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}")]
    Sys {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("cgroup {path}")]
    Cgroup {
        path: PathBuf,
        #[source]
        source: libcgroups::common::WrappedIoError,
    },
    #[error("no cgroup hierarchy found under {0}")]
    NoCgroups(PathBuf),
    #[error("pod {0} has no sandbox")]
    NoSandbox(String),
    #[error("container {id} of pod {uid} not found")]
    NoContainer { uid: String, id: String },
    #[error("bad record {path}")]
    Record {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid spec: {0}")]
    Spec(String),
    /// The container could not be started; the message is for the user.
    #[error("{0}")]
    Start(String),
    /// The init of the pod's shared PID namespace could not be started.
    #[error("pause process: {0}")]
    Pause(String),
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout { what: String, secs: u64 },
}

impl RuntimeError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| RuntimeError::Io { op, path, source }
    }
    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let what = what.into();
        move |source| RuntimeError::Sys { what, source }
    }
}

/// What a pod sandbox is made from.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    /// The pod's hostname (pod name or spec.hostname), at most 63 chars.
    pub hostname: String,
    /// Use the host's network and UTS namespaces.
    pub host_network: bool,
    pub host_ipc: bool,
    pub host_pid: bool,
    /// One PID namespace for all containers of the pod, whose init is a pause
    /// process (ignored with `host_pid`).
    pub share_process_namespace: bool,
    /// Contents of /etc/hosts.
    pub hosts_file: String,
    /// Contents of /etc/resolv.conf.
    pub resolv_conf: String,
    /// Pod cgroup limits.
    pub resources: PodResources,
}

/// One container to start in a sandbox.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    pub name: String,
    /// restartCount; part of the log file name.
    pub attempt: u32,
    pub image_ref: String,
    pub image_id: String,
    /// Unpacked layer dirs, bottom first.
    pub layers: Vec<PathBuf>,
    /// Built by [`spec::build`]; the runtime sets `linux.cgroupsPath` itself.
    pub oci: oci_spec::runtime::Spec,
}

/// A started container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    pub pid: i32,
    pub started_at: SystemTime,
}

/// What a container is doing, as far as the runtime knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        pid: i32,
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        signal: Option<i32>,
        oom_killed: bool,
        started_at: SystemTime,
        finished_at: SystemTime,
        message: Option<String>,
    },
    /// State lost (e.g. host reboot): the kubelet treats it as exited with 255.
    Unknown,
}

/// A sandbox found on disk.
#[derive(Clone, Debug)]
pub struct SandboxRecord {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerRecord>,
}

/// A container found on disk.
#[derive(Clone, Debug)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub image_ref: String,
    pub image_id: String,
    pub state: ContainerState,
}

/// Resource usage of a pod and its containers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodStats {
    pub timestamp: Option<SystemTime>,
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
    pub containers: Vec<ContainerStats>,
}

/// Resource usage of one container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_working_set_bytes: u64,
}

pub use spec::{pod_resources, qos_class};
pub use sys::readable as wait_readable;

/// The runtime; cheap to clone, all methods blocking.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuntimeConfig,
    cgroups: cgroups::Cgroups,
    /// A shim started ahead of time, waiting for its container: starting the
    /// bosun binary (exec, loading, relocating 36,000 pointers) costs several
    /// milliseconds that need not be on a container's start.
    warm: std::sync::Mutex<Option<warm::WarmShim>>,
}

/// How long to wait for a shim to report that its container exec'd.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for a killed container's shim to write its exit record.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

impl Runtime {
    /// Discovers the cgroup hierarchy once, makes the dirs and keeps a warm
    /// shim ready for the first container.
    pub fn new(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        let rt = Self::open(config)?;
        rt.refill_warm_shim();
        Ok(rt)
    }

    /// [`Runtime::new`] without the warm shim: for one-off work such as
    /// `bosun agent --cleanup`.
    pub fn open(config: RuntimeConfig) -> Result<Runtime, RuntimeError> {
        fs::create_dir_all(&config.pods_dir)
            .map_err(RuntimeError::io("create", &config.pods_dir))?;
        let cgroups = cgroups::Cgroups::discover(&config.cgroup_root)?;
        sandbox::empty_trash(&config.pods_dir);
        sandbox::empty_trash(&config.log_root);
        let rt = Runtime {
            inner: Arc::new(Inner {
                config,
                cgroups,
                warm: std::sync::Mutex::new(None),
            }),
        };
        Ok(rt)
    }

    /// Deletes what removed pods left in the trash now, not in the background
    /// (for a process about to exit).
    pub fn empty_trash_now(&self) -> Result<(), RuntimeError> {
        for parent in [&self.inner.config.pods_dir, &self.inner.config.log_root] {
            let trash = parent.join(sandbox::TRASH);
            match fs::remove_dir_all(&trash) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RuntimeError::io("remove", &trash)(e)),
            }
        }
        Ok(())
    }

    /// Starts the next warm shim in the background (if none is waiting).
    fn refill_warm_shim(&self) {
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("bosun-shim-warm".into())
            .spawn(move || {
                let Some(shim) = warm::WarmShim::start(&inner.config.shim_exe) else {
                    return;
                };
                let mut slot = inner.warm.lock().unwrap_or_else(|e| e.into_inner());
                if slot.is_none() {
                    *slot = Some(shim);
                }
                // else: `shim` is dropped, which ends it.
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "no thread for a warm shim; starting shims cold");
        }
    }

    /// Hands `dir` to the warm shim, or starts a shim for it; returns the
    /// shim's report line.
    fn start_shim(&self, dir: &Path) -> Result<String, RuntimeError> {
        let warm = self
            .inner
            .warm
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let line = match warm.and_then(|w| w.hand_over(dir)) {
            Some(line) => Ok(line),
            None => spawn_shim(&self.inner.config.shim_exe, vec![dir.into()], dir),
        };
        self.refill_warm_shim();
        line
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.inner.config.pods_dir.join(uid)
    }

    fn container_dir(&self, uid: &str, id: &str) -> PathBuf {
        self.pod_dir(uid).join("containers").join(id)
    }

    /// The cgroup of a pod, relative to each hierarchy.
    fn pod_cgroup(&self, uid: &str) -> PathBuf {
        Path::new(&self.inner.config.cgroup_parent).join(format!("pod{uid}"))
    }

    /// The files of a pod's sandbox, for [`spec::build`].
    pub fn sandbox_paths(&self, uid: &str) -> Result<SandboxPaths, RuntimeError> {
        let dir = self.pod_dir(uid);
        let sb =
            record::read_sandbox(&dir)?.ok_or_else(|| RuntimeError::NoSandbox(uid.to_string()))?;
        Ok(sandbox::paths(&dir, &sb))
    }

    /// Makes the pod's namespaces, etc files and cgroup. Idempotent.
    pub fn create_sandbox(&self, spec: &SandboxSpec) -> Result<(), RuntimeError> {
        ids::check_uid(&spec.uid)?;
        let dir = self.pod_dir(&spec.uid);
        if record::read_sandbox(&dir)?.is_some() {
            return Ok(());
        }
        let rel = self.pod_cgroup(&spec.uid);
        let log_dir = self.pod_log_dir(spec);
        let env = sandbox::Env {
            cgroups: &self.inner.cgroups,
            rel: &rel,
            log_dir: &log_dir,
            shim_exe: &self.inner.config.shim_exe,
            pids_limit: self.inner.config.pod_pids_limit,
        };
        let res = sandbox::create(&dir, spec, &env);
        if res.is_err() {
            let _ = sandbox::remove(&dir, &self.inner.cgroups, &rel, Some(&log_dir));
        }
        res
    }

    fn pod_log_dir(&self, sb: &SandboxSpec) -> PathBuf {
        self.inner
            .config
            .log_root
            .join(format!("{}_{}_{}", sb.namespace, sb.name, sb.uid))
    }

    /// Starts a container in the pod's sandbox; returns once it exec'd, or the
    /// error the user should see.
    pub fn start_container(
        &self,
        uid: &str,
        spec: &ContainerSpec,
    ) -> Result<ContainerInfo, RuntimeError> {
        let pod_dir = self.pod_dir(uid);
        let sb = record::read_sandbox(&pod_dir)?
            .ok_or_else(|| RuntimeError::NoSandbox(uid.to_string()))?;
        if sandbox::shares_pid(&sb) && !pause::alive(&pod_dir) {
            return Err(RuntimeError::Start(
                "the pod's shared process namespace is gone (its pause process exited)".into(),
            ));
        }
        let id = ids::new_container_id();
        let dir = self.container_dir(uid, &id);
        for d in ["upper", "work", "rootfs"] {
            fs::create_dir_all(dir.join(d)).map_err(RuntimeError::io("create", dir.join(d)))?;
        }
        let rel = self.pod_cgroup(uid).join(&id);
        let mut oci = spec.oci.clone();
        if let Some(linux) = oci.linux_mut() {
            linux.set_cgroups_path(Some(rel.clone()));
        }
        let resources = oci.linux().as_ref().and_then(|l| l.resources().clone());
        self.inner.cgroups.create(&rel, resources.as_ref())?;
        let log_path = self
            .pod_log_dir(&sb)
            .join(&spec.name)
            .join(format!("{}.log", spec.attempt));
        if let Some(p) = log_path.parent() {
            fs::create_dir_all(p).map_err(RuntimeError::io("create", p))?;
        }
        let meta = ContainerMeta {
            id: id.clone(),
            name: spec.name.clone(),
            attempt: spec.attempt,
            image_ref: spec.image_ref.clone(),
            image_id: spec.image_id.clone(),
            layers: spec.layers.clone(),
            log_path,
            log_max_size: self.inner.config.log_max_size,
            cgroup_join: self.inner.cgroups.join_files(&rel),
            oom_files: [
                self.inner.cgroups.oom_file(&rel),
                self.inner.cgroups.oom_file(&self.pod_cgroup(uid)),
            ]
            .into_iter()
            .flatten()
            .collect(),
            created_at_ns: record::unix_nanos(SystemTime::now()),
        };
        let config_path = dir.join("config.json");
        let json = serde_json::to_vec(&oci).map_err(|e| RuntimeError::Spec(e.to_string()))?;
        fs::write(&config_path, json).map_err(RuntimeError::io("write", &config_path))?;
        record::write_json(&dir.join("container.json"), &meta)?;

        let line = self.start_shim(&dir)?;
        match line.split_once(' ') {
            Some(("ok", rest)) => {
                let mut it = rest.split(' ');
                let pid = it.next().and_then(|p| p.parse::<i32>().ok());
                let ns = it.next().and_then(|p| p.parse::<u64>().ok());
                match (pid, ns) {
                    (Some(pid), Some(ns)) => Ok(ContainerInfo {
                        id,
                        pid,
                        started_at: record::from_unix_nanos(ns),
                    }),
                    _ => Err(RuntimeError::Start(format!("shim said {line:?}"))),
                }
            }
            Some(("err", msg)) => Err(RuntimeError::Start(msg.to_string())),
            _ => Err(RuntimeError::Start(format!(
                "container supervisor failed{}",
                if line.is_empty() {
                    String::new()
                } else {
                    format!(": {line}")
                }
            ))),
        }
    }

    /// The state of a container from its records.
    pub fn container_state(&self, uid: &str, id: &str) -> Result<ContainerState, RuntimeError> {
        let dir = self.container_dir(uid, id);
        if !dir.join("container.json").exists() {
            return Err(RuntimeError::NoContainer {
                uid: uid.to_string(),
                id: id.to_string(),
            });
        }
        Ok(record::state_of(&dir))
    }

    /// A pidfd of the container's shim: readable once the container exited and its
    /// exit record is written. None if it already exited (or its state is lost).
    pub fn exit_fd(&self, uid: &str, id: &str) -> Result<Option<OwnedFd>, RuntimeError> {
        let dir = self.container_dir(uid, id);
        if record::read_exit(&dir)?.is_some() {
            return Ok(None);
        }
        let Some(shim) = record::read_shim(&dir)? else {
            return Ok(None);
        };
        let Some(fd) = sys::pidfd_open_checked(shim.pid, shim.start_ticks) else {
            return Ok(None);
        };
        Ok(Some(fd))
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL; returns once exited.
    /// Asks a running container to stop — SIGTERM to its main process — and
    /// returns at once; [`Runtime::stop_container`] with a zero grace finishes
    /// the job. Lets a caller wait out a grace period without a thread.
    pub fn terminate_container(&self, uid: &str, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(uid, id);
        if let ContainerState::Running { pid, .. } = self.container_state(uid, id)? {
            sys::kill_if_child_of(pid, shim_pid(&dir), libc::SIGTERM);
        }
        Ok(())
    }

    pub fn stop_container(&self, uid: &str, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let dir = self.container_dir(uid, id);
        let state = self.container_state(uid, id)?;
        let ContainerState::Running { pid, .. } = state else {
            // Its main process is gone; what it forked may not be.
            self.empty_cgroup(uid, id);
            return Ok(());
        };
        let shim_fd = self.exit_fd(uid, id)?;
        let Some(shim_fd) = shim_fd else {
            self.empty_cgroup(uid, id);
            return Ok(());
        };
        if !grace.is_zero() {
            sys::kill_if_child_of(pid, shim_pid(&dir), libc::SIGTERM);
            if sys::wait_readable(&shim_fd, grace) {
                self.empty_cgroup(uid, id);
                return Ok(());
            }
        }
        sys::kill_if_child_of(pid, shim_pid(&dir), libc::SIGKILL);
        if !sys::wait_readable(&shim_fd, KILL_TIMEOUT) {
            return Err(RuntimeError::Timeout {
                what: format!("container {id} to exit"),
                secs: KILL_TIMEOUT.as_secs(),
            });
        }
        self.empty_cgroup(uid, id);
        Ok(())
    }

    /// Kills whatever is left in a container's cgroup (its main process is gone)
    /// and waits a little for it to be empty.
    fn empty_cgroup(&self, uid: &str, id: &str) {
        let rel = self.pod_cgroup(uid).join(id);
        self.inner.cgroups.kill_all(&rel);
        self.inner
            .cgroups
            .wait_empty(&rel, Instant::now() + KILL_TIMEOUT);
    }

    /// Removes a container's state dir and cgroup; keeps its log file.
    pub fn remove_container(&self, uid: &str, id: &str) -> Result<(), RuntimeError> {
        let dir = self.container_dir(uid, id);
        if !dir.exists() {
            return Ok(());
        }
        if matches!(record::state_of(&dir), ContainerState::Running { .. }) {
            self.stop_container(uid, id, Duration::ZERO)?;
        }
        let rel = self.pod_cgroup(uid).join(id);
        self.empty_cgroup(uid, id);
        self.inner.cgroups.remove(&rel)?;
        fs::remove_dir_all(&dir).map_err(RuntimeError::io("remove", &dir))
    }

    /// Kills what is left of a pod and removes its namespaces, cgroups, state and
    /// logs. Idempotent.
    pub fn remove_sandbox(&self, uid: &str) -> Result<(), RuntimeError> {
        ids::check_uid(uid)?;
        let dir = self.pod_dir(uid);
        let rel = self.pod_cgroup(uid);
        let sb = record::read_sandbox(&dir).ok().flatten();
        let log_dir = sb.as_ref().map(|sb| self.pod_log_dir(sb));
        // Kill every container: SIGKILL to all tasks of the pod cgroup and to the
        // main processes, then wait for their shims to write the exit records.
        let mut shims = Vec::new();
        for id in record::container_ids(&dir) {
            let cdir = self.container_dir(uid, &id);
            if let ContainerState::Running { pid, .. } = record::state_of(&cdir) {
                sys::kill_if_child_of(pid, shim_pid(&cdir), libc::SIGKILL);
            }
            if let Ok(Some(fd)) = self.exit_fd(uid, &id) {
                shims.push(fd);
            }
        }
        self.inner.cgroups.kill_all(&rel);
        let deadline = Instant::now() + KILL_TIMEOUT;
        for fd in &shims {
            let left = deadline.saturating_duration_since(Instant::now());
            sys::wait_readable(fd, left);
        }
        let r = sandbox::remove(&dir, &self.inner.cgroups, &rel, log_dir.as_deref());
        r
    }

    /// The sandboxes and containers on disk, for re-adoption after a restart.
    pub fn list(&self) -> Result<Vec<SandboxRecord>, RuntimeError> {
        let mut out = Vec::new();
        let rd = match fs::read_dir(&self.inner.config.pods_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RuntimeError::io("read", &self.inner.config.pods_dir)(e)),
        };
        for entry in rd.flatten() {
            let dir = entry.path();
            let Ok(Some(sb)) = record::read_sandbox(&dir) else {
                continue;
            };
            let mut containers = Vec::new();
            for id in record::container_ids(&dir) {
                let cdir = dir.join("containers").join(&id);
                let Ok(Some(meta)) = record::read_meta(&cdir) else {
                    continue;
                };
                containers.push(ContainerRecord {
                    id,
                    name: meta.name,
                    attempt: meta.attempt,
                    image_ref: meta.image_ref,
                    image_id: meta.image_id,
                    state: record::state_of(&cdir),
                });
            }
            out.push(SandboxRecord {
                uid: sb.uid,
                namespace: sb.namespace,
                name: sb.name,
                containers,
            });
        }
        Ok(out)
    }

    /// CPU and memory usage of a pod and of each of its containers.
    pub fn pod_stats(&self, uid: &str) -> Result<PodStats, RuntimeError> {
        let dir = self.pod_dir(uid);
        if !dir.join("sandbox.json").exists() {
            return Err(RuntimeError::NoSandbox(uid.to_string()));
        }
        let rel = self.pod_cgroup(uid);
        let pod = self.inner.cgroups.stats(&rel);
        let mut containers = Vec::new();
        for id in record::container_ids(&dir) {
            let cdir = dir.join("containers").join(&id);
            if !matches!(record::state_of(&cdir), ContainerState::Running { .. }) {
                continue;
            }
            let Ok(Some(meta)) = record::read_meta(&cdir) else {
                continue;
            };
            let s = self.inner.cgroups.stats(&rel.join(&id));
            containers.push(ContainerStats {
                id,
                name: meta.name,
                cpu_usage_ns: s.cpu_ns,
                memory_usage_bytes: s.memory_usage,
                memory_working_set_bytes: s.working_set,
            });
        }
        Ok(PodStats {
            timestamp: Some(SystemTime::now()),
            cpu_usage_ns: pod.cpu_ns,
            memory_usage_bytes: pod.memory_usage,
            memory_working_set_bytes: pod.working_set,
            containers,
        })
    }
}

fn shim_pid(dir: &Path) -> Option<i32> {
    record::read_shim(dir).ok().flatten().map(|s| s.pid)
}

/// Runs `<exe> shim <args>` (for the container or pause at `dir`) from a
/// dedicated thread and returns the line it reports ("ok …" or "err <message>").
fn spawn_shim(
    exe: &Path,
    args: Vec<std::ffi::OsString>,
    dir: &Path,
) -> Result<String, RuntimeError> {
    let exe = exe.to_path_buf();
    let dir = dir.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("bosun-shim-spawn".into())
        .spawn(move || -> Result<String, RuntimeError> {
            let mut child = Command::new(&exe)
                .arg("shim")
                .args(&args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(RuntimeError::io("run", &exe))?;
            let out = child.stdout.take();
            // The first process forks and exits at once; reap it.
            let _ = child.wait();
            let mut line = String::new();
            if let Some(out) = out {
                // SAFETY: the fd is owned by `out`, which we turn into an OwnedFd.
                let fd = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(out)) };
                if sys::wait_readable(&fd, START_TIMEOUT) {
                    let _ = BufReader::new(fs::File::from(fd)).read_line(&mut line);
                } else {
                    return Err(RuntimeError::Timeout {
                        what: format!("the shim of {}", dir.display()),
                        secs: START_TIMEOUT.as_secs(),
                    });
                }
            }
            Ok(line.trim_end().to_string())
        })
        .map_err(RuntimeError::io("spawn thread for", "shim"))?;
    handle
        .join()
        .unwrap_or_else(|_| Err(RuntimeError::Start("shim spawner panicked".into())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_is_send_sync_clone() {
        fn f<T: Send + Sync + Clone>() {}
        f::<Runtime>();
    }
}
