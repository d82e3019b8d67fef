//! The agent's runtime library timed on its own, without the API server, the
//! kubelet's status writes or the image store: `create_sandbox` +
//! `start_container` of the busybox `sleep` pod ("sandbox+container setup"), and
//! `stop_container` (grace 0, as `delete -f`) + `remove_sandbox` ("teardown"),
//! with the same N-one-after-another-then-N-as-a-burst pattern as the baselines.
//!
//! Its pods live under the scratch dir and the cgroup parent `<tag>t`; the
//! guard removes every sandbox and that cgroup parent whatever happened.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent::runtime::spec::{self, SpecInput};
use agent::runtime::{ContainerSpec, Runtime, RuntimeConfig, SandboxSpec};
use anyhow::{bail, Context as _};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::stopped;

pub struct Options {
    pub tag: String,
    pub scratch: PathBuf,
    pub rootfs: PathBuf,
    /// The bosun binary, run by the runtime as its shim.
    pub bosun: PathBuf,
    pub cgroup_root: PathBuf,
    pub pods: usize,
    pub parallel: usize,
}

/// Per-pod times in ms; for the bursts also from the burst's start until each
/// pod was done.
#[derive(Default)]
pub struct Figures {
    pub seq_setup: Vec<f64>,
    pub seq_teardown: Vec<f64>,
    pub burst_setup: Vec<f64>,
    pub burst_teardown: Vec<f64>,
    pub burst_setup_done: Vec<f64>,
    pub burst_teardown_done: Vec<f64>,
    pub burst_up_wall: f64,
    pub burst_down_wall: f64,
}

struct Pods {
    rt: Runtime,
    opts: Options,
    parent: String,
    /// Container id of each started pod, by index.
    ids: Vec<Mutex<Option<String>>>,
}

impl Pods {
    fn uid(&self, i: usize) -> String {
        format!("{}t{i}", self.opts.tag)
    }

    fn setup(&self, i: usize) -> anyhow::Result<f64> {
        let uid = self.uid(i);
        let name = format!("pod-{i}");
        let t0 = Instant::now();
        let sb = SandboxSpec {
            uid: uid.clone(),
            namespace: "default".into(),
            name: name.clone(),
            hostname: name.clone(),
            hosts_file: "127.0.0.1 localhost\n".into(),
            resolv_conf: "nameserver 10.96.0.10\n".into(),
            ..Default::default()
        };
        self.rt
            .create_sandbox(&sb)
            .with_context(|| format!("creating sandbox {uid}"))?;
        let container = Container {
            name: "sleep".into(),
            image: Some("bench/busybox:1".into()),
            command: Some(vec!["sleep".into(), "3600".into()]),
            ..Default::default()
        };
        let mut pod = Pod::default();
        pod.metadata.name = Some(name);
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some(uid.clone());
        pod.spec = Some(PodSpec {
            containers: vec![container.clone()],
            ..Default::default()
        });
        let paths = self.rt.sandbox_paths(&uid)?;
        let oci = spec::build(&SpecInput {
            pod: &pod,
            container: &container,
            image: None,
            env: &[],
            volume_mounts: &[],
            sandbox: &paths,
        })?;
        let info = self
            .rt
            .start_container(
                &uid,
                &ContainerSpec {
                    name: "sleep".into(),
                    attempt: 0,
                    image_ref: "bench/busybox:1".into(),
                    image_id: "sha256:00".into(),
                    layers: vec![self.opts.rootfs.clone()],
                    oci,
                },
            )
            .with_context(|| format!("starting the container of {uid}"))?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        *self.ids[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(info.id);
        Ok(ms)
    }

    fn teardown(&self, i: usize) -> anyhow::Result<f64> {
        let uid = self.uid(i);
        let id = self.ids[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        let t0 = Instant::now();
        if let Some(id) = id {
            self.rt
                .stop_container(&uid, &id, Duration::ZERO)
                .with_context(|| format!("stopping the container of {uid}"))?;
        }
        self.rt
            .remove_sandbox(&uid)
            .with_context(|| format!("removing sandbox {uid}"))?;
        Ok(t0.elapsed().as_secs_f64() * 1000.0)
    }
}

impl Drop for Pods {
    fn drop(&mut self) {
        for i in 0..self.ids.len() {
            let _ = self.rt.remove_sandbox(&self.uid(i));
        }
        if let Ok(entries) = std::fs::read_dir(&self.opts.cgroup_root) {
            for e in entries.flatten() {
                remove_cgroup_tree(&e.path().join(&self.parent));
            }
        }
    }
}

/// Removes a cgroup directory and its children, deepest first (best effort).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Runs `op` on pods `range` with `parallel` threads: per-pod ms of its own
/// work, per-pod ms from the start until it was done, and the wall ms.
fn run_many(
    range: std::ops::Range<usize>,
    parallel: usize,
    op: impl Fn(usize) -> anyhow::Result<f64> + Sync,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, f64)> {
    let next = AtomicUsize::new(range.start);
    let out = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..parallel.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= range.end {
                            return Ok(());
                        }
                        if stopped() {
                            bail!("interrupted");
                        }
                        let ms = op(i)?;
                        let done = started.elapsed().as_secs_f64() * 1000.0;
                        out.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((ms, done));
                    }
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(r) => r?,
                Err(_) => bail!("a worker panicked"),
            }
        }
        Ok(())
    })?;
    let wall = started.elapsed().as_secs_f64() * 1000.0;
    let out: Vec<(f64, f64)> = out.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok((
        out.iter().map(|(ms, _)| *ms).collect(),
        out.iter().map(|(_, done)| *done).collect(),
        wall,
    ))
}

pub fn run(opts: Options) -> anyhow::Result<Figures> {
    let parent = format!("{}t", opts.tag);
    let rt = Runtime::new(RuntimeConfig {
        pods_dir: opts.scratch.join("runtime/pods"),
        log_root: opts.scratch.join("runtime/logs"),
        cgroup_root: opts.cgroup_root.clone(),
        cgroup_parent: parent.clone(),
        shim_exe: opts.bosun.clone(),
        log_max_size: 10 << 20,
    })
    .context("starting the runtime")?;
    let n = opts.pods;
    let parallel = opts.parallel;
    let pods = Pods {
        rt,
        opts,
        parent,
        ids: (0..2 * n).map(|_| Mutex::new(None)).collect(),
    };
    let mut f = Figures::default();
    (f.seq_setup, _, _) = run_many(0..n, 1, |i| pods.setup(i))?;
    (f.burst_setup, f.burst_setup_done, f.burst_up_wall) =
        run_many(n..2 * n, parallel, |i| pods.setup(i))?;
    (f.seq_teardown, _, _) = run_many(0..n, 1, |i| pods.teardown(i))?;
    (f.burst_teardown, f.burst_teardown_done, f.burst_down_wall) =
        run_many(n..2 * n, parallel, |i| pods.teardown(i))?;
    Ok(f)
}
