//! A work queue of object keys, as client-go's: a key is queued at most once,
//! never handed to two workers at once (a key added while it is being processed is
//! queued again when that finishes), and failed keys come back after an
//! exponential per-key delay (5 ms doubling to 1000 s) until they succeed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

const BASE_DELAY: Duration = Duration::from_millis(5);
const MAX_DELAY: Duration = Duration::from_secs(1000);

#[derive(Default)]
struct State {
    ready: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    /// Added again while being processed.
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
    /// Keys waiting for their time, by due time.
    delayed: BTreeMap<(Instant, u64), String>,
    seq: u64,
    shut: bool,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    notify: Notify,
}

impl Queue {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `key` now.
    pub fn add(&self, key: impl Into<String>) {
        let key = key.into();
        let mut st = self.lock();
        if st.processing.contains(&key) {
            st.dirty.insert(key);
            return;
        }
        if st.queued.insert(key.clone()) {
            st.ready.push_back(key);
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.delayed.insert((Instant::now() + delay, seq), key);
        drop(st);
        self.notify.notify_one();
    }

    /// Queues `key` again after its failure delay, which doubles each time.
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let n = {
            let mut st = self.lock();
            let n = st.failures.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let delay = BASE_DELAY
            .checked_mul(1u32 << (n - 1).min(20))
            .unwrap_or(MAX_DELAY)
            .min(MAX_DELAY);
        self.add_after(key, delay);
    }

    /// Forgets the failures of `key`.
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` failed in a row.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// The next key to work on; None once the queue is shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let wait = {
                let mut st = self.lock();
                if st.shut {
                    return None;
                }
                let now = Instant::now();
                while let Some((&(due, seq), _)) = st.delayed.iter().next() {
                    if due > now {
                        break;
                    }
                    if let Some(key) = st.delayed.remove(&(due, seq)) {
                        if st.processing.contains(&key) {
                            st.dirty.insert(key);
                        } else if st.queued.insert(key.clone()) {
                            st.ready.push_back(key);
                        }
                    }
                }
                if let Some(key) = st.ready.pop_front() {
                    st.queued.remove(&key);
                    st.processing.insert(key.clone());
                    return Some(key);
                }
                st.delayed.keys().next().map(|(due, _)| *due)
            };
            match wait {
                Some(due) => {
                    tokio::select! {
                        _ = self.notify.notified() => {}
                        _ = tokio::time::sleep_until(due) => {}
                    }
                }
                None => self.notify.notified().await,
            }
        }
    }

    /// Marks `key` processed; queues it again if it was added meanwhile.
    pub fn done(&self, key: &str) {
        let mut st = self.lock();
        st.processing.remove(key);
        if st.dirty.remove(key) && st.queued.insert(key.to_string()) {
            st.ready.push_back(key.to_string());
            drop(st);
            self.notify.notify_one();
        }
    }

    /// Ends every `get`.
    pub fn shut_down(&self) {
        self.lock().shut = true;
        self.notify.notify_waiters();
    }

    pub fn len(&self) -> usize {
        let st = self.lock();
        st.ready.len() + st.delayed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A controller's periodic resync: every `period`, queues again every key that
/// `keys` returns, so that missed or failed work is redone even without changes.
pub fn resync_every<F>(queue: Arc<Queue>, period: Duration, keys: F)
where
    F: Fn() -> Vec<String> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tick.tick().await;
            for key in keys() {
                queue.add(key);
            }
        }
    });
}

/// Runs `workers` tasks taking keys from `queue` and handing them to `handle`;
/// a key whose handling fails is retried with its growing delay.
pub fn run_workers<F, Fut, E>(queue: Arc<Queue>, workers: usize, name: &'static str, handle: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let handle = Arc::new(handle);
    for _ in 0..workers.max(1) {
        let queue = queue.clone();
        let handle = handle.clone();
        tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                match handle(key.clone()).await {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        tracing::debug!(controller = name, key = %key, error = %e, "will retry");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_processed_twice_at_once() {
        let q = Queue::new();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let k = q.get().await.unwrap();
        assert_eq!(k, "a");
        q.add("a"); // while processing: comes back after done
        assert_eq!(q.get().await.unwrap(), "b");
        q.done("b");
        q.done("a");
        assert_eq!(q.get().await.unwrap(), "a");
    }

    #[tokio::test]
    async fn failures_back_off_and_forget_resets() {
        let q = Queue::new();
        q.add_rate_limited("x");
        q.add_rate_limited("x");
        assert_eq!(q.failures("x"), 2);
        let started = Instant::now();
        assert_eq!(q.get().await.unwrap(), "x");
        assert!(started.elapsed() >= Duration::from_millis(5));
        q.forget("x");
        assert_eq!(q.failures("x"), 0);
    }

    #[tokio::test]
    async fn delayed_keys_wait_their_turn() {
        let q = Queue::new();
        q.add_after("late", Duration::from_millis(30));
        q.add("now");
        assert_eq!(q.get().await.unwrap(), "now");
        let started = Instant::now();
        assert_eq!(q.get().await.unwrap(), "late");
        assert!(started.elapsed() >= Duration::from_millis(20));
    }

    #[tokio::test]
    async fn shut_down_ends_get() {
        let q = Queue::new();
        q.shut_down();
        assert!(q.get().await.is_none());
    }
}
