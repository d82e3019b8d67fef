//! The scheduler: assigns unbound pods (`schedulerName` `default-scheduler` or
//! empty) to nodes, as kube-scheduler does. One task owns the scheduling queue
//! and the node cache, fed by the shared pod and node informers; it pops a pod,
//! filters and scores nodes (`algorithm`), assumes the pod on the chosen node in
//! the cache at once and binds it through `pods/binding` in the background (up to
//! `Config::bind_concurrency` at a time) while it goes on with the next pod. A
//! failed binding forgets the assumed pod and retries it after a backoff. A pod
//! no node fits gets `PodScheduled=False`/`Unschedulable` and a
//! `FailedScheduling` event, and waits in the queue's unschedulable set until a
//! node or a bound pod changes.
//!
//! Events are written by a few background writers from a bounded buffer; when
//! the buffer is full, events are dropped (as client-go's broadcaster does), so
//! events never slow scheduling down. Preemption is not implemented.

pub mod algorithm;
pub mod cache;
pub mod filter;
pub mod pod;
pub mod queue;
pub mod score;

use crate::apiserver::{crud_resource, ApiError, Kube, PatchType};
use crate::controllers::informer::Change;
use crate::controllers::lite::Pod;
use crate::controllers::{Informers, Options};
use algorithm::{Cursor, FitError};
use cache::Cache;
use k8s_openapi::api::core::v1::Node;
use pod::PodInfo;
use queue::{Popped, SchedulingQueue};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// The scheduler's name: pods with this `schedulerName` (or none) are ours.
pub const SCHEDULER_NAME: &str = "default-scheduler";

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    /// Whether to record a `Scheduled` event for every bound pod.
    pub scheduled_events: bool,
    /// Events waiting to be written; more are dropped.
    pub event_buffer: usize,
    /// Tasks writing events.
    pub event_writers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind_concurrency: 64,
            scheduled_events: true,
            event_buffer: 1000,
            event_writers: 2,
        }
    }
}

/// Counters, for tests, logs and benchmarks.
#[derive(Debug, Default)]
pub struct Stats {
    pub scheduled: AtomicU64,
    pub unschedulable: AtomicU64,
    pub bind_errors: AtomicU64,
    pub events_dropped: AtomicU64,
}

/// Starts the scheduler with the default configuration.
pub fn start(kube: &Kube, informers: &Arc<Informers>, options: &Options) -> Arc<Stats> {
    let _ = options;
    start_with(kube, informers, Config::default())
}

/// Starts the scheduler; returns its counters.
pub fn start_with(kube: &Kube, informers: &Arc<Informers>, config: Config) -> Arc<Stats> {
    let kube = kube.with_manager(SCHEDULER_NAME);
    let stats = Arc::new(Stats::default());
    let events = EventSink::start(&kube, &config, stats.clone());
    let (bind_tx, bind_rx) = mpsc::unbounded_channel();
    let scheduler = Scheduler {
        kube,
        config,
        stats: stats.clone(),
        events,
        queue: SchedulingQueue::new(),
        cache: Cache::new(),
        cursor: Cursor {
            next_start: 0,
            pick: Picker(rand::rngs::StdRng::from_os_rng()),
        },
        in_flight: 0,
        bind_tx,
    };
    tokio::spawn(scheduler.run(informers.clone(), bind_rx));
    stats
}

/// A `FnMut(n) -> 0..n` over a sendable random generator.
struct Picker(rand::rngs::StdRng);

impl Picker {
    fn call(&mut self, n: usize) -> usize {
        self.0.random_range(0..n.max(1))
    }
}

struct Bound {
    uid: String,
    result: Result<(), ApiError>,
}

struct Scheduler {
    kube: Kube,
    config: Config,
    stats: Arc<Stats>,
    events: EventSink,
    queue: SchedulingQueue,
    cache: Cache,
    cursor: Cursor<Picker>,
    in_flight: usize,
    bind_tx: mpsc::UnboundedSender<Bound>,
}

fn is_bound(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn is_terminated(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn is_ours(p: &Pod) -> bool {
    matches!(
        p.spec.as_ref().and_then(|s| s.scheduler_name.as_deref()),
        None | Some("") | Some(SCHEDULER_NAME)
    )
}

fn uid_of(p: &Pod) -> &str {
    p.metadata.uid.as_deref().unwrap_or("")
}

/// The involved object of an event about `pod`.
fn pod_ref(pod: &Pod) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": pod.metadata.name, "namespace": pod.metadata.namespace.as_deref(),
            "uid": pod.metadata.uid, "resourceVersion": pod.metadata.resource_version,
        },
    })
}

impl Scheduler {
    async fn run(mut self, informers: Arc<Informers>, mut bound: mpsc::UnboundedReceiver<Bound>) {
        informers.nodes.wait_synced().await;
        informers.pods.wait_synced().await;
        let mut nodes = informers.nodes.subscribe();
        let mut pods = informers.pods.subscribe();
        tracing::info!("scheduler starting");
        let mut since_yield = 0u32;
        loop {
            let now = Instant::now();
            let mut moved = false;
            while let Ok(c) = nodes.try_recv() {
                moved |= self.on_node(c);
            }
            while let Ok(c) = pods.try_recv() {
                moved |= self.on_pod(c, now);
            }
            while let Ok(b) = bound.try_recv() {
                self.on_bound(b, now);
            }
            if moved {
                self.queue.move_all_to_active(now);
            }
            self.queue.flush(now);
            if self.in_flight < self.config.bind_concurrency {
                if let Some(p) = self.queue.pop(now) {
                    self.schedule_one(p, now);
                    since_yield += 1;
                    if since_yield >= 64 {
                        since_yield = 0;
                        tokio::task::yield_now().await;
                    }
                    continue;
                }
            }
            let due = self
                .queue
                .next_due()
                .unwrap_or(now + queue::UNSCHEDULABLE_TIMEOUT);
            tokio::select! {
                c = nodes.recv() => match c {
                    Some(c) => if self.on_node(c) { self.queue.move_all_to_active(Instant::now()) },
                    None => return,
                },
                c = pods.recv() => match c {
                    Some(c) => if self.on_pod(c, Instant::now()) { self.queue.move_all_to_active(Instant::now()) },
                    None => return,
                },
                Some(b) = bound.recv() => self.on_bound(b, Instant::now()),
                _ = tokio::time::sleep_until(due.into()) => {}
            }
        }
    }

    /// Applies a node change; true when unschedulable pods may now fit.
    fn on_node(&mut self, change: Change<Node>) -> bool {
        match change {
            Change::Added(n) | Change::Updated { new: n, .. } => self.cache.upsert_node(&n),
            Change::Deleted(n) => {
                self.cache
                    .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                false
            }
        }
    }

    /// Applies a pod change; true when it freed room on a node.
    fn on_pod(&mut self, change: Change<Pod>, now: Instant) -> bool {
        match change {
            Change::Deleted(p) => {
                let uid = uid_of(&p);
                self.queue.delete(uid);
                if is_bound(&p).is_some() && self.cache.contains_pod(uid) {
                    self.cache.remove_pod(uid);
                    return true;
                }
                false
            }
            Change::Added(p) => self.on_pod_present(p, None, now),
            Change::Updated { old, new } => self.on_pod_present(new, Some(old), now),
        }
    }

    fn on_pod_present(&mut self, p: Arc<Pod>, old: Option<Arc<Pod>>, now: Instant) -> bool {
        let uid = uid_of(&p).to_string();
        if let Some(node) = is_bound(&p) {
            self.queue.delete(&uid);
            if is_terminated(&p) {
                let counted = self.cache.contains_pod(&uid);
                self.cache.remove_pod(&uid);
                return counted;
            }
            // A status update of a pod already counted changes nothing here.
            let unchanged = old.as_ref().is_some_and(|o| {
                is_bound(o) == Some(node)
                    && o.spec == p.spec
                    && o.metadata.owner_references == p.metadata.owner_references
            });
            if !(unchanged && self.cache.contains_pod(&uid) && !self.cache.is_assumed(&uid)) {
                let node = node.to_string();
                self.cache.add_pod(Arc::new(PodInfo::from_pod(&p)), &node);
            }
            return false;
        }
        if p.metadata.deletion_timestamp.is_some() || !is_ours(&p) {
            self.queue.delete(&uid);
        } else if !self.cache.is_assumed(&uid) {
            self.queue.add(p, now);
        }
        false
    }

    fn schedule_one(&mut self, popped: Popped, now: Instant) {
        let pod = popped.pod;
        let info = Arc::new(PodInfo::from_pod(&pod));
        let mut cursor = Cursor {
            next_start: self.cursor.next_start,
            pick: |n| self.cursor.pick.call(n),
        };
        let result = algorithm::schedule(&info, &self.cache, &mut cursor);
        self.cursor.next_start = cursor.next_start;
        match result {
            Ok(node) => {
                self.cache.assume(info.clone(), &node);
                self.in_flight += 1;
                self.spawn_bind(pod, info, node);
            }
            Err(fit) => {
                self.stats.unschedulable.fetch_add(1, Ordering::Relaxed);
                self.queue.unschedulable(&info.uid, now);
                tracing::debug!(pod = %info.key(), attempts = popped.attempts, reason = %fit, "unschedulable");
                self.report_unschedulable(pod, fit);
            }
        }
    }

    fn spawn_bind(&self, pod: Arc<Pod>, info: Arc<PodInfo>, node: String) {
        let kube = self.kube.clone();
        let tx = self.bind_tx.clone();
        let events = self.config.scheduled_events.then(|| self.events.clone());
        let stats = self.stats.clone();
        tokio::spawn(async move {
            let result = kube
                .bind(&info.namespace, &info.name, &info.uid, &node)
                .await;
            if result.is_ok() {
                stats.scheduled.fetch_add(1, Ordering::Relaxed);
                if let Some(events) = events {
                    let msg = format!("Successfully assigned {} to {node}", info.key());
                    events.send(pod_ref(&pod), "Normal", "Scheduled", msg);
                }
            }
            let _ = tx.send(Bound {
                uid: info.uid.clone(),
                result,
            });
        });
    }

    fn on_bound(&mut self, b: Bound, now: Instant) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match b.result {
            Ok(()) => self.queue.delete(&b.uid),
            Err(e) => {
                self.stats.bind_errors.fetch_add(1, Ordering::Relaxed);
                self.cache.forget(&b.uid);
                if e.code == 404 || e.code == 409 {
                    // Gone, or bound or recreated meanwhile: the informer says.
                    self.queue.delete(&b.uid);
                } else {
                    tracing::warn!(uid = %b.uid, error = %e, "binding failed; will retry");
                    self.queue.error(&b.uid, now);
                }
            }
        }
    }

    /// Sets `PodScheduled=False` (unless already so with this message) and
    /// records a `FailedScheduling` event.
    fn report_unschedulable(&self, pod: Arc<Pod>, fit: FitError) {
        let message = fit.to_string();
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message.as_str())
        });
        self.events.send(
            pod_ref(&pod),
            "Warning",
            "FailedScheduling",
            message.clone(),
        );
        if same {
            return;
        }
        let transition = current
            .filter(|c| c.status == "False")
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| {
                jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            });
        // The version scheduled against is a precondition: a pod bound (or
        // changed) meanwhile is not marked unschedulable.
        let patch = json!({"metadata": {"resourceVersion": pod.metadata.resource_version}, "status": {"conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": message, "lastProbeTime": null, "lastTransitionTime": transition,
        }]}});
        let kube = self.kube.clone();
        tokio::spawn(async move {
            let pods = crud_resource("", "pods");
            let ns = pod.metadata.namespace.as_deref();
            let name = pod.metadata.name.as_deref().unwrap_or("");
            if let Err(e) = kube
                .patch(pods, ns, name, PatchType::Strategic, &patch, Some("status"))
                .await
            {
                tracing::debug!(pod = name, error = %e, "setting PodScheduled=False");
            }
        });
    }
}

struct EventRequest {
    involved: Value,
    type_: &'static str,
    reason: &'static str,
    message: String,
}

/// A bounded buffer of events and the tasks that write them.
#[derive(Clone)]
struct EventSink {
    tx: mpsc::Sender<EventRequest>,
    stats: Arc<Stats>,
}

impl EventSink {
    fn start(kube: &Kube, config: &Config, stats: Arc<Stats>) -> Self {
        let (tx, rx) = mpsc::channel::<EventRequest>(config.event_buffer.max(1));
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        for _ in 0..config.event_writers.max(1) {
            let (rx, kube) = (rx.clone(), kube.clone());
            tokio::spawn(async move {
                loop {
                    let Some(ev) = rx.lock().await.recv().await else {
                        return;
                    };
                    kube.event(&ev.involved, ev.type_, ev.reason, &ev.message)
                        .await;
                }
            });
        }
        Self { tx, stats }
    }

    fn send(&self, involved: Value, type_: &'static str, reason: &'static str, message: String) {
        let req = EventRequest {
            involved,
            type_,
            reason,
            message,
        };
        if self.tx.try_send(req).is_err() {
            self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;
