//! One pod's worker: a task that keeps the pod's containers as its spec says —
//! sandbox first, init containers, then the containers, restarts by policy with
//! crash-loop back-off — writes pods/status when it changed, and on deletion
//! stops the containers within the grace period, removes everything the pod had
//! on the host and lets the API server forget the pod.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::backoff;
use super::cri::{FoundPod, StartFailure, StartRequest};
use super::env::{environment, Context};
use super::images::{self, Ensured};
use super::model::{Instance, RunState, Track, Waiting};
use super::plan::{plan, Plan, Policy, Shape};
use super::status::{pod_status, Inputs};
use super::volumes::{self, Fetched};
use super::Shared;
use crate::hollow::requests::{not_found, Attempts};

/// How often a quiet pod is looked at anyway.
const RESYNC: Duration = Duration::from_secs(60);
/// How soon a container that could not be made is tried again.
const RETRY: Duration = Duration::from_secs(10);

/// What a worker is told.
#[derive(Debug)]
pub enum Msg {
    /// The pod as the API server has it now.
    Update(Box<Pod>),
    /// The pod is gone from the API server.
    Deleted,
    /// One of the pod's containers has exited.
    Exited,
}

struct Worker {
    shared: Arc<Shared>,
    uid: String,
    /// The pod, shared with [`Shared`]'s map (one copy per pod).
    pod: Arc<Pod>,
    tracks: HashMap<String, Track>,
    sandbox_ready: bool,
    /// The pod's address on the pod network, once its sandbox is wired.
    sandbox_ip: Option<String>,
    start_time: SystemTime,
    /// A hash of the status last written (the status itself is not kept).
    last_status: Option<u64>,
    /// Set for a pod that had finished before this agent took it on: nothing runs.
    dormant: bool,
    /// When this worker took the pod on, until the pod first ran (for the
    /// `pod running` log line that bench/pod-start reads).
    seen: Option<std::time::Instant>,
    deleted: bool,
    tx: mpsc::Sender<Msg>,
}

/// Runs the worker of one pod until the pod is gone (or the agent stops, which
/// leaves the containers running for the next agent to adopt).
pub async fn run(
    shared: Arc<Shared>,
    pod: Arc<Pod>,
    found: Option<FoundPod>,
    tx: mpsc::Sender<Msg>,
    mut rx: mpsc::Receiver<Msg>,
) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| SystemTime::from(t.0))
        .unwrap_or_else(SystemTime::now);
    let mut w = Worker {
        shared,
        uid,
        pod,
        tracks: HashMap::new(),
        sandbox_ready: false,
        sandbox_ip: None,
        start_time,
        last_status: None,
        seen: Some(std::time::Instant::now()),
        dormant: terminal && found.is_none(),
        deleted: false,
        tx,
    };
    if let Some(found) = found {
        w.adopt(found);
    }
    loop {
        if w.deleted || w.pod.metadata.deletion_timestamp.is_some() {
            // Boxed, like sync: the idle worker task stays small (its future
            // would otherwise be sized for the deepest await in them).
            Box::pin(w.terminate()).await;
            return;
        }
        let wake = if w.dormant {
            RESYNC
        } else {
            Box::pin(w.sync()).await
        };
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = tokio::time::sleep(wake) => continue,
        };
        let Some(msg) = msg else { return };
        w.take(msg);
        while let Ok(m) = rx.try_recv() {
            w.take(m);
        }
    }
}

impl Worker {
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Update(p) => self.pod = Arc::new(super::slim(*p)),
            Msg::Deleted => self.deleted = true,
            Msg::Exited => {}
        }
    }

    fn shape(&self) -> Shape {
        let spec = self.pod.spec.as_ref();
        Shape {
            init: spec
                .into_iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .map(|c| c.name.clone())
                .collect(),
            containers: spec
                .into_iter()
                .flat_map(|s| s.containers.iter())
                .map(|c| c.name.clone())
                .collect(),
            policy: Policy::parse(spec.and_then(|s| s.restart_policy.as_deref())),
        }
    }

    /// Takes over the runs an earlier agent left on disk.
    fn adopt(&mut self, found: FoundPod) {
        self.sandbox_ready = true;
        self.sandbox_ip = self.shared.cri.pod_ip(&self.uid);
        self.seen = None;
        let mut by_name: HashMap<String, Vec<Instance>> = HashMap::new();
        for c in found.containers {
            by_name.entry(c.name).or_default().push(c.instance);
        }
        for (name, mut runs) in by_name {
            runs.sort_by_key(|i| i.attempt);
            let mut track = Track::default();
            for old in runs.iter().rev().skip(2) {
                self.remove_in_background(old.id.clone());
            }
            let n = runs.len();
            for run in runs.into_iter().skip(n.saturating_sub(2)) {
                track.push(run);
            }
            track.backoff_level = track.restart_count();
            if track.is_running() {
                if let Some(cur) = &track.current {
                    self.watch_exit(cur.id.clone());
                }
            }
            self.tracks.insert(name, track);
        }
    }

    fn remove_in_background(&self, id: String) {
        let cri = self.shared.cri.clone();
        let uid = self.uid.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = cri.remove_container(&uid, &id) {
                tracing::warn!(pod = %uid, container = %id, error = %e, "removing an old container run");
            }
        });
    }

    fn watch_exit(&self, id: String) {
        let cri = self.shared.cri.clone();
        let uid = self.uid.clone();
        let tx = self.tx.clone();
        tokio::spawn(async move {
            exited(cri, uid, id).await;
            let _ = tx.send(Msg::Exited).await;
        });
    }

    /// Refreshes what the runtime says of every running container.
    async fn refresh(&mut self) {
        let running: Vec<(String, String)> = self
            .tracks
            .iter()
            .filter_map(|(n, t)| {
                t.current
                    .as_ref()
                    .filter(|i| i.state.is_running())
                    .map(|i| (n.clone(), i.id.clone()))
            })
            .collect();
        if running.is_empty() {
            return;
        }
        let cri = self.shared.cri.clone();
        let uid = self.uid.clone();
        let states = tokio::task::spawn_blocking(move || {
            running
                .into_iter()
                .map(|(n, id)| {
                    let s = cri.container_state(&uid, &id);
                    (n, s)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (name, state) in states {
            let Some(cur) = self.tracks.get_mut(&name).and_then(|t| t.current.as_mut()) else {
                continue;
            };
            cur.state = state.unwrap_or_else(RunState::lost);
        }
    }

    /// One round: make the sandbox, start what should run, report. Returns when
    /// to look again.
    async fn sync(&mut self) -> Duration {
        self.refresh().await;
        if !self.sandbox_ready {
            let cri = self.shared.cri.clone();
            let pod = self.pod.clone();
            let uid = self.uid.clone();
            let made = tokio::task::spawn_blocking(move || {
                cri.create_sandbox(&pod).map(|()| cri.pod_ip(&uid))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match made {
                Ok(ip) => {
                    self.sandbox_ready = true;
                    self.sandbox_ip = ip;
                }
                Err(e) => {
                    tracing::warn!(pod = %self.uid, error = %e, "creating the pod sandbox");
                    self.write_status(&Plan::default()).await;
                    return Duration::from_secs(2);
                }
            }
        }
        let shape = self.shape();
        let first = plan(&shape, &self.tracks, SystemTime::now());
        if !first.start.is_empty() {
            let fetched = self.fetch_sources().await;
            for name in &first.start {
                self.start(name, &fetched).await;
            }
        }
        let now_plan = plan(&shape, &self.tracks, SystemTime::now());
        self.write_status(&now_plan).await;
        now_plan.wake_in.unwrap_or(RESYNC).min(RESYNC)
    }

    /// ConfigMaps and Secrets the pod refers to; `Err` when the API could not say.
    async fn fetch_sources(&self) -> Result<Fetched, String> {
        let (cms, secrets) = volumes::referenced(&self.pod);
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let mut out = Fetched::default();
        for (kind, names) in [("configmaps", cms), ("secrets", secrets)] {
            for name in names {
                let path = format!("/api/v1/namespaces/{ns}/{kind}/{name}");
                let data = match self.shared.api.get(&path, Attempts(3)).await {
                    Ok(obj) => Some(decode_data(&obj, kind == "secrets")),
                    Err(e) if not_found(&e) => None,
                    Err(e) => return Err(format!("reading {kind} {ns}/{name}: {e}")),
                };
                if kind == "secrets" {
                    out.secrets.insert(name, data);
                } else {
                    out.config_maps.insert(name, data);
                }
            }
        }
        Ok(out)
    }

    async fn start(&mut self, name: &str, fetched: &Result<Fetched, String>) {
        let Some(container) = self.pod.spec.as_ref().and_then(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .find(|c| c.name == name)
                .cloned()
        }) else {
            return;
        };
        let attempt = self.tracks.get(name).map_or(0, Track::next_attempt);
        let wait = |reason: &str, message: String| Waiting {
            reason: reason.to_string(),
            message,
            retry_at: SystemTime::now() + RETRY,
        };
        let fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                self.set_waiting(name, wait("CreateContainerConfigError", e.clone()));
                return;
            }
        };
        let host_ip = self.shared.host_ip.clone();
        let pod_ip = self.pod_ip().unwrap_or_default();
        let ctx = Context {
            pod: &self.pod,
            host_ip: &host_ip,
            pod_ip: &pod_ip,
        };
        let env = environment(
            &ctx,
            &container,
            fetched,
            self.shared.node_cpu_millis,
            self.shared.node_memory,
        )
        .map_err(|e| e.to_string());
        let pod_dir = self.shared.pods_dir.join(&self.uid);
        let mounts = volumes::prepare(&self.pod, &pod_dir, fetched, &ctx)
            .and_then(|vols| volumes::mounts(&container, &vols))
            .map_err(|e| e.to_string());
        let (env, mounts) = match (env, mounts) {
            (Ok(env), Ok(mounts)) => (env, mounts),
            (Err(e), _) | (_, Err(e)) => {
                self.set_waiting(name, wait("CreateContainerConfigError", e));
                return;
            }
        };
        if let Some(puller) = self.shared.puller.clone() {
            let mut failures = self
                .tracks
                .get(name)
                .map(|t| t.pull.clone())
                .unwrap_or_default();
            let ensured =
                images::ensure_image(&self.shared, &puller, &self.pod, &container, &mut failures)
                    .await;
            let track = self.tracks.entry(name.to_string()).or_default();
            track.pull = failures;
            if let Ensured::Waiting(reason, message, retry_at) = ensured {
                track.waiting = Some(Waiting {
                    reason: reason.to_string(),
                    message,
                    retry_at,
                });
                return;
            }
        }
        let track = self.tracks.entry(name.to_string()).or_default();
        // A restart moves the back-off one step (or back to the start after a long run).
        if let Some(RunState::Exited {
            started_at,
            finished_at,
            ..
        }) = track.current.as_ref().map(|i| &i.state)
        {
            track.backoff_level =
                backoff::level_after_run(track.backoff_level, *started_at, *finished_at) + 1;
        }
        let cri = self.shared.cri.clone();
        let pod = self.pod.clone();
        let permit = self.shared.starts.clone().acquire_owned().await;
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            cri.start_container(&StartRequest {
                pod: &pod,
                container: &container,
                attempt,
                env,
                mounts,
            })
        })
        .await
        .unwrap_or_else(|e| Err(StartFailure::Create(e.to_string())));
        let never_pull = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| {
                s.init_containers
                    .iter()
                    .flatten()
                    .chain(&s.containers)
                    .find(|c| c.name == name)
            })
            .and_then(|c| c.image_pull_policy.as_deref())
            == Some("Never");
        let track = self.tracks.entry(name.to_string()).or_default();
        match result {
            Ok(instance) => {
                let id = instance.id.clone();
                let dropped = track.previous.take();
                track.previous = track.current.take();
                track.current = Some(instance);
                track.waiting = None;
                if let Some(old) = dropped.filter(|o| !o.id.is_empty()) {
                    self.remove_in_background(old.id);
                }
                self.watch_exit(id);
            }
            Err(StartFailure::ImageMissing(m)) => {
                let reason = if never_pull {
                    "ErrImageNeverPull"
                } else {
                    "ErrImagePull"
                };
                track.waiting = Some(wait(reason, m));
            }
            Err(StartFailure::ImageBroken(m)) => track.waiting = Some(wait("ErrImagePull", m)),
            Err(StartFailure::Create(m)) => {
                track.waiting = Some(wait("CreateContainerError", m));
            }
            Err(StartFailure::Start(m)) => {
                let now = SystemTime::now();
                let image = track
                    .current
                    .as_ref()
                    .map(|i| i.image.clone())
                    .unwrap_or_default();
                let image_id = track
                    .current
                    .as_ref()
                    .map(|i| i.image_id.clone())
                    .unwrap_or_default();
                let dropped = track.previous.take();
                track.push(Instance {
                    id: String::new(),
                    attempt,
                    image,
                    image_id,
                    state: RunState::Exited {
                        exit_code: 128,
                        signal: None,
                        reason: Some("StartError".into()),
                        message: Some(m),
                        started_at: Some(now),
                        finished_at: now,
                    },
                });
                if let Some(old) = dropped.filter(|o| !o.id.is_empty()) {
                    self.remove_in_background(old.id);
                }
            }
        }
    }

    fn set_waiting(&mut self, name: &str, waiting: Waiting) {
        self.tracks.entry(name.to_string()).or_default().waiting = Some(waiting);
    }

    fn pod_ip(&self) -> Option<String> {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            Some(self.shared.host_ip.clone())
        } else {
            self.sandbox_ip.clone()
        }
    }

    /// Writes pods/status when it differs from what was last written.
    async fn write_status(&mut self, plan: &Plan) {
        let shape = self.shape();
        let spec = self.pod.spec.clone().unwrap_or_default();
        let qos = crate::runtime::spec::qos_class(&spec);
        let pod_ip = self.pod_ip();
        let status = pod_status(&Inputs {
            pod: &self.pod,
            shape: &shape,
            tracks: &self.tracks,
            plan,
            sandbox_ready: self.sandbox_ready,
            host_ip: &self.shared.host_ip,
            pod_ip: pod_ip.as_deref(),
            qos_class: qos,
            start_time: self.start_time,
            now: SystemTime::now(),
        });
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            status.to_string().hash(&mut h);
            h.finish()
        };
        if self.last_status == Some(hash) {
            return;
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        let patch = json!({ "status": status });
        match self
            .shared
            .api
            .merge_patch(&path, &patch, Attempts(5))
            .await
        {
            Ok(updated) => {
                if let Ok(p) = serde_json::from_value::<Pod>(updated) {
                    // Keep our own status as the base for conditions' transition times.
                    Arc::make_mut(&mut self.pod).status = p.status;
                    self.shared.remember(&self.uid, self.pod.clone());
                }
                if status["phase"] == "Running" {
                    if let Some(seen) = self.seen.take() {
                        let ms = seen.elapsed().as_secs_f64() * 1000.0;
                        tracing::info!(pod = %self.uid, seen_to_running_ms = ms, "pod running");
                    }
                }
                self.last_status = Some(hash);
            }
            Err(e) if not_found(&e) => self.deleted = true,
            Err(e) => tracing::warn!(pod = %self.uid, error = %e, "writing pod status"),
        }
    }

    /// Stops the pod's containers within its grace period, removes its sandbox
    /// and, when the pod still exists, lets the API server delete it.
    async fn terminate(&mut self) {
        let began = std::time::Instant::now();
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        let grace = Duration::from_secs(grace);
        self.refresh().await;
        // SIGTERM to each, the grace period waited out here (no thread held),
        // then SIGKILL for what is still running.
        let mut stops = Vec::new();
        for t in self.tracks.values() {
            let Some(cur) = t.current.as_ref().filter(|i| i.state.is_running()) else {
                continue;
            };
            let cri = self.shared.cri.clone();
            let uid = self.uid.clone();
            let id = cur.id.clone();
            stops.push(tokio::spawn(async move {
                let (c, u, i) = (cri.clone(), uid.clone(), id.clone());
                let termed = tokio::task::spawn_blocking(move || c.terminate_container(&u, &i)).await;
                if let Ok(Err(e)) = termed {
                    tracing::warn!(pod = %uid, container = %id, error = %e, "signalling a container");
                }
                let _ = tokio::time::timeout(grace, exited(cri.clone(), uid.clone(), id.clone())).await;
                let (c, u, i) = (cri, uid.clone(), id.clone());
                let stopped =
                    tokio::task::spawn_blocking(move || c.stop_container(&u, &i, Duration::ZERO)).await;
                if let Ok(Err(e)) = stopped {
                    tracing::warn!(pod = %uid, container = %id, error = %e, "stopping a container");
                }
            }));
        }
        for s in stops {
            let _ = s.await;
        }
        let cri = self.shared.cri.clone();
        let uid = self.uid.clone();
        let removed = tokio::task::spawn_blocking(move || cri.remove_sandbox(&uid)).await;
        if let Ok(Err(e)) = removed {
            tracing::warn!(pod = %self.uid, error = %e, "removing the pod sandbox");
        }
        self.shared.forget(&self.uid);
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(pod = %self.uid, teardown_ms = ms, "pod torn down");
        if self.deleted {
            return;
        }
        let ns = self.pod.metadata.namespace.clone().unwrap_or_default();
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}");
        let options = json!({
            "kind": "DeleteOptions", "apiVersion": "v1",
            "gracePeriodSeconds": 0,
            "preconditions": { "uid": self.uid },
        });
        if let Err(e) = self
            .shared
            .api
            .delete_with(&path, &options, Attempts(5))
            .await
        {
            if !not_found(&e) && e.code() != Some(409) {
                tracing::warn!(pod = %self.uid, error = %e, "deleting the pod");
            }
        }
    }
}

/// Returns once the run `id` of pod `uid` has exited (its exit record written).
async fn exited(cri: Arc<dyn super::cri::Cri>, uid: String, id: String) {
    let fd = tokio::task::spawn_blocking(move || cri.exit_fd(&uid, &id))
        .await
        .ok()
        .flatten();
    let Some(fd) = fd else { return };
    if let Err(e) = crate::runtime::wait_readable(fd).await {
        tracing::warn!(error = %e, "watching a container's exit");
    }
}

/// The data of a ConfigMap (data + binaryData) or a Secret (base64 data).
fn decode_data(obj: &Value, secret: bool) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(data) = obj.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let s = v.as_str().unwrap_or_default();
            let bytes = if secret {
                b64.decode(s).unwrap_or_default()
            } else {
                s.as_bytes().to_vec()
            };
            out.insert(k.clone(), bytes);
        }
    }
    if let Some(data) = obj.get("binaryData").and_then(Value::as_object) {
        for (k, v) in data {
            out.insert(
                k.clone(),
                b64.decode(v.as_str().unwrap_or_default())
                    .unwrap_or_default(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A worker waits most of its life; its task must not carry the state of
    /// a whole sync (the agent runs one per pod and counts its memory). Without
    /// the boxing in `run` it is about 4 KB.
    #[test]
    fn an_idle_worker_task_is_small() {
        fn size_of_future<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let ca = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        let client = api::client::Client::new(
            "https://127.0.0.1:1",
            &ca.cert.pem(),
            api::client::Credentials::Token("t".into()),
        )
        .unwrap();
        let shared = Arc::new(Shared::new(
            crate::hollow::requests::Api::new(client, 1),
            Arc::new(NoCri),
            "n".into(),
            "10.0.0.1".into(),
            1000,
            1 << 30,
            "/nonexistent".into(),
        ));
        let (tx, rx) = mpsc::channel(1);
        let fut = run(shared, Arc::new(Pod::default()), None, tx, rx);
        let size = size_of_future(&fut);
        assert!(size < 1024, "the worker's future is {size} bytes");
    }

    struct NoCri;
    impl super::super::cri::Cri for NoCri {
        fn create_sandbox(&self, _: &Pod) -> Result<(), String> {
            Err("no".into())
        }
        fn pod_ip(&self, _: &str) -> Option<String> {
            None
        }
        fn start_container(&self, _: &StartRequest<'_>) -> Result<Instance, StartFailure> {
            Err(StartFailure::Create("no".into()))
        }
        fn container_state(&self, _: &str, _: &str) -> Option<RunState> {
            None
        }
        fn exit_fd(&self, _: &str, _: &str) -> Option<std::os::fd::OwnedFd> {
            None
        }
        fn terminate_container(&self, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn stop_container(&self, _: &str, _: &str, _: Duration) -> Result<(), String> {
            Ok(())
        }
        fn remove_container(&self, _: &str, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn remove_sandbox(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn list(&self) -> Result<Vec<FoundPod>, String> {
            Ok(vec![])
        }
    }
}
