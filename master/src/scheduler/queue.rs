//! The scheduling queue, as kube-scheduler's: an active heap ordered by
//! `spec.priority` (higher first), then creation time, then arrival; a backoff
//! set for pods that failed recently (1 s doubling to 10 s per attempt); and the
//! unschedulable pods, which go back to the active heap (or to backoff, if their
//! backoff has not run out) when the cluster changes in a way that may help them,
//! and at the latest `UNSCHEDULABLE_TIMEOUT` after they failed. Pure: the caller
//! passes the time.

use crate::controllers::lite::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod is tried again at least this often.
pub const UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The backoff after `attempts` failed attempts.
pub fn backoff(attempts: u32) -> Duration {
    let shift = attempts.saturating_sub(1).min(16);
    INITIAL_BACKOFF
        .checked_mul(1 << shift)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Active,
    Backoff,
    Unschedulable,
    /// Popped and being scheduled or bound.
    InFlight,
}

struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    last_attempt: Option<Instant>,
    state: State,
    /// The key of its current place in the heap, backoff or unschedulable map;
    /// other items for this pod there are stale.
    seq: u64,
}

struct HeapItem {
    priority: i32,
    created: Option<Time>,
    seq: u64,
    uid: String,
}

impl PartialEq for HeapItem {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for HeapItem {
    /// Greater pops first: higher priority, then older, then earlier queued.
    fn cmp(&self, o: &Self) -> Ordering {
        self.priority
            .cmp(&o.priority)
            .then_with(|| o.created.cmp(&self.created))
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

fn uid_of(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Whether an update of a queued pod may change where it fits (spec, labels or
/// annotations; status changes such as our own condition do not).
fn scheduling_changed(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
}

/// A popped pod and how many times it was tried (this one included).
pub struct Popped {
    pub pod: Arc<Pod>,
    pub attempts: u32,
}

#[derive(Default)]
pub struct SchedulingQueue {
    pods: HashMap<String, Entry>,
    active: BinaryHeap<HeapItem>,
    backoff: BTreeMap<(Instant, u64), String>,
    unschedulable: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

impl SchedulingQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pods in the queue, in flight included.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Pods waiting in the active heap.
    pub fn active_len(&self) -> usize {
        self.pods
            .values()
            .filter(|e| e.state == State::Active)
            .count()
    }

    pub fn unschedulable_len(&self) -> usize {
        self.pods
            .values()
            .filter(|e| e.state == State::Unschedulable)
            .count()
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_active(&mut self, uid: &str) {
        let seq = self.next_seq();
        if let Some(e) = self.pods.get_mut(uid) {
            e.state = State::Active;
            e.seq = seq;
            self.active.push(HeapItem {
                priority: e.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0),
                created: e.pod.metadata.creation_timestamp.clone(),
                seq,
                uid: uid.to_string(),
            });
        }
    }

    /// To the active heap if its backoff has run out, else to backoff.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let due = match self.pods.get(uid) {
            Some(e) => e.last_attempt.map(|t| t + backoff(e.attempts)),
            None => return,
        };
        match due {
            Some(due) if due > now => self.push_backoff(uid, due),
            _ => self.push_active(uid),
        }
    }

    fn push_backoff(&mut self, uid: &str, due: Instant) {
        let seq = self.next_seq();
        if let Some(e) = self.pods.get_mut(uid) {
            e.state = State::Backoff;
            e.seq = seq;
            self.backoff.insert((due, seq), uid.to_string());
        }
    }

    /// A new or updated unbound pod.
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let uid = uid_of(&pod);
        match self.pods.get_mut(&uid) {
            None => {
                self.pods.insert(
                    uid.clone(),
                    Entry {
                        pod,
                        attempts: 0,
                        last_attempt: None,
                        state: State::Active,
                        seq: 0,
                    },
                );
                self.push_active(&uid);
            }
            Some(e) => {
                let changed = scheduling_changed(&e.pod, &pod);
                let priority_changed = e.pod.spec.as_ref().and_then(|s| s.priority)
                    != pod.spec.as_ref().and_then(|s| s.priority);
                e.pod = pod;
                match e.state {
                    State::Unschedulable if changed => self.requeue(&uid, now),
                    State::Active if priority_changed => self.push_active(&uid),
                    _ => {}
                }
            }
        }
    }

    /// A pod that is gone, bound, or no longer ours.
    pub fn delete(&mut self, uid: &str) {
        self.pods.remove(uid);
    }

    /// Moves due backoff pods and long-unschedulable pods to the active heap.
    pub fn flush(&mut self, now: Instant) {
        while let Some((&(due, seq), _)) = self.backoff.first_key_value() {
            if due > now {
                break;
            }
            if let Some(uid) = self.backoff.remove(&(due, seq)) {
                if self.pods.get(&uid).is_some_and(|e| e.seq == seq) {
                    self.push_active(&uid);
                }
            }
        }
        while let Some((&(since, seq), _)) = self.unschedulable.first_key_value() {
            if since + UNSCHEDULABLE_TIMEOUT > now {
                break;
            }
            if let Some(uid) = self.unschedulable.remove(&(since, seq)) {
                if self.pods.get(&uid).is_some_and(|e| e.seq == seq) {
                    self.requeue(&uid, now);
                }
            }
        }
    }

    /// When `flush` next has something to do.
    pub fn next_due(&self) -> Option<Instant> {
        let b = self.backoff.keys().next().map(|(t, _)| *t);
        let u = self
            .unschedulable
            .keys()
            .next()
            .map(|(t, _)| *t + UNSCHEDULABLE_TIMEOUT);
        match (b, u) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        }
    }

    /// The next pod to schedule; it stays known (in flight) until `delete`,
    /// `unschedulable` or `error`.
    pub fn pop(&mut self, now: Instant) -> Option<Popped> {
        while let Some(item) = self.active.pop() {
            let Some(e) = self.pods.get_mut(&item.uid) else {
                continue;
            };
            if e.seq != item.seq || e.state != State::Active {
                continue;
            }
            e.state = State::InFlight;
            e.attempts += 1;
            e.last_attempt = Some(now);
            return Some(Popped {
                pod: e.pod.clone(),
                attempts: e.attempts,
            });
        }
        None
    }

    /// The pod fits no node: it waits for a cluster change or the timeout.
    pub fn unschedulable(&mut self, uid: &str, now: Instant) {
        let seq = self.next_seq();
        if let Some(e) = self.pods.get_mut(uid) {
            e.state = State::Unschedulable;
            e.seq = seq;
            self.unschedulable.insert((now, seq), uid.to_string());
        }
    }

    /// Scheduling or binding failed for another reason: retry after backoff.
    pub fn error(&mut self, uid: &str, now: Instant) {
        if self.pods.contains_key(uid) {
            self.requeue(uid, now);
        }
    }

    /// A node was added or changed, or a pod went away: every unschedulable pod
    /// is tried again (after its backoff).
    pub fn move_all_to_active(&mut self, now: Instant) {
        let uids: Vec<String> = std::mem::take(&mut self.unschedulable)
            .into_iter()
            .filter(|((_, seq), uid)| self.pods.get(uid).is_some_and(|e| e.seq == *seq))
            .map(|(_, uid)| uid)
            .collect();
        for uid in uids {
            self.requeue(&uid, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, priority: i32, created: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": uid, "namespace": "d", "uid": uid, "creationTimestamp": created},
                "spec": {"containers": [], "priority": priority},
            }))
            .unwrap(),
        )
    }

    fn pop_uid(q: &mut SchedulingQueue, now: Instant) -> Option<String> {
        q.pop(now).map(|p| uid_of(&p.pod))
    }

    #[test]
    fn priority_then_age_then_arrival() {
        let mut q = SchedulingQueue::new();
        let now = Instant::now();
        q.add(pod("late", 0, "2026-01-01T00:00:05Z"), now);
        q.add(pod("early", 0, "2026-01-01T00:00:01Z"), now);
        q.add(pod("same-a", 0, "2026-01-01T00:00:09Z"), now);
        q.add(pod("same-b", 0, "2026-01-01T00:00:09Z"), now);
        q.add(pod("important", 1000, "2026-01-01T00:00:10Z"), now);
        let order: Vec<_> = std::iter::from_fn(|| pop_uid(&mut q, now)).collect();
        assert_eq!(order, ["important", "early", "late", "same-a", "same-b"]);
        // Popped pods stay known until they are bound or deleted.
        assert_eq!(q.len(), 5);
        q.delete("early");
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn deleted_pods_are_not_popped_and_adds_are_deduplicated() {
        let mut q = SchedulingQueue::new();
        let now = Instant::now();
        q.add(pod("a", 0, "2026-01-01T00:00:01Z"), now);
        q.add(pod("a", 0, "2026-01-01T00:00:01Z"), now);
        q.add(pod("b", 0, "2026-01-01T00:00:02Z"), now);
        q.delete("a");
        assert_eq!(pop_uid(&mut q, now).as_deref(), Some("b"));
        assert_eq!(pop_uid(&mut q, now), None);
    }

    #[test]
    fn unschedulable_pods_retry_on_cluster_change_after_backoff() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("a", 0, "2026-01-01T00:00:01Z"), t0);
        assert!(q.pop(t0).is_some());
        q.unschedulable("a", t0);
        assert_eq!(q.unschedulable_len(), 1);
        assert!(q.pop(t0).is_none());
        // A status-only update (our own condition) does not wake it.
        let mut with_status = (*pod("a", 0, "2026-01-01T00:00:01Z")).clone();
        with_status.status = Some(Default::default());
        q.add(Arc::new(with_status), t0);
        assert_eq!(q.unschedulable_len(), 1);
        // A node is added: still in its 1 s backoff, then active.
        q.move_all_to_active(t0 + Duration::from_millis(100));
        assert_eq!(q.unschedulable_len(), 0);
        assert!(q.pop(t0 + Duration::from_millis(100)).is_none());
        assert_eq!(q.next_due(), Some(t0 + INITIAL_BACKOFF));
        q.flush(t0 + INITIAL_BACKOFF);
        let p = q.pop(t0 + INITIAL_BACKOFF).unwrap();
        assert_eq!(p.attempts, 2);
    }

    #[test]
    fn unschedulable_pods_retry_after_the_timeout_and_on_spec_change() {
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("a", 0, "2026-01-01T00:00:01Z"), t0);
        q.pop(t0);
        q.unschedulable("a", t0);
        assert_eq!(q.next_due(), Some(t0 + UNSCHEDULABLE_TIMEOUT));
        q.flush(t0 + Duration::from_secs(59));
        assert!(q.pop(t0 + Duration::from_secs(59)).is_none());
        q.flush(t0 + UNSCHEDULABLE_TIMEOUT);
        assert!(q.pop(t0 + UNSCHEDULABLE_TIMEOUT).is_some());
        let t1 = t0 + UNSCHEDULABLE_TIMEOUT;
        q.unschedulable("a", t1);
        // The user adds a toleration: tried again once the backoff allows.
        let changed = pod("a", 0, "2026-01-01T00:00:01Z");
        let mut changed = (*changed).clone();
        changed.spec.as_mut().unwrap().node_selector = Some(Default::default());
        q.add(Arc::new(changed), t1 + Duration::from_secs(5));
        assert!(q.pop(t1 + Duration::from_secs(5)).is_some());
    }

    #[test]
    fn errors_back_off_doubling_to_ten_seconds() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
        let mut q = SchedulingQueue::new();
        let t0 = Instant::now();
        q.add(pod("a", 0, "2026-01-01T00:00:01Z"), t0);
        q.pop(t0);
        q.error("a", t0);
        assert!(q.pop(t0).is_none());
        q.flush(t0 + Duration::from_secs(1));
        assert!(q.pop(t0 + Duration::from_secs(1)).is_some());
    }
}
