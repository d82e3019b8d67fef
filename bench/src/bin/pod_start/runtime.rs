//! The agent's runtime library timed on its own, without the API server, the
//! kubelet's status writes or the image store: `create_sandbox` +
//! `start_container` of the busybox `sleep` pod ("sandbox+container setup"), and
//! `stop_container` (grace 0, as `delete -f`) + `remove_sandbox` ("teardown"),
//! in the same pattern as the baselines (and interleaved with them).
//!
//! Its pods live under the scratch dir and the cgroup parent `<tag>t`; the
//! guard removes every sandbox and that cgroup parent whatever happened.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agent::runtime::spec::{self, SpecInput};
use agent::runtime::{ContainerSpec, Runtime, RuntimeConfig, SandboxSpec};
use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::peers::Steps;

pub struct Options {
    pub tag: String,
    pub scratch: PathBuf,
    pub rootfs: PathBuf,
    /// The bosun binary, run by the runtime as its shim.
    pub bosun: PathBuf,
    pub cgroup_root: PathBuf,
}

/// The runtime part's pods: their runtime, the container id of each started one.
pub struct Pods {
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

    /// `create_sandbox` + `start_container` of pod `i`.
    pub fn setup(&self, i: usize) -> anyhow::Result<Steps> {
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
        let took = t0.elapsed();
        *self.ids[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(info.id);
        Ok(Steps {
            oci: took,
            ..Steps::default()
        })
    }

    /// `stop_container` (grace 0) + `remove_sandbox` of pod `i`.
    pub fn teardown(&self, i: usize) -> anyhow::Result<Steps> {
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
        Ok(Steps {
            oci: t0.elapsed(),
            ..Steps::default()
        })
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

impl Pods {
    pub fn new(opts: Options, count: usize) -> anyhow::Result<Pods> {
        let parent = format!("{}t", opts.tag);
        let rt = Runtime::new(RuntimeConfig {
            pods_dir: opts.scratch.join("runtime/pods"),
            log_root: opts.scratch.join("runtime/logs"),
            cgroup_root: opts.cgroup_root.clone(),
            cgroup_parent: parent.clone(),
            shim_exe: opts.bosun.clone(),
            log_max_size: 10 << 20,
            pod_pids_limit: None,
        })
        .context("starting the runtime")?;
        Ok(Pods {
            rt,
            opts,
            parent,
            ids: (0..count).map(|_| Mutex::new(None)).collect(),
        })
    }
}
