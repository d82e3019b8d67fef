//! In-memory event window and watcher fan-out.
//!
//! The [`Hub`] keeps the last N committed events (values as `Bytes`, never parsed
//! JSON) and the list of open watchers. A backend publishes each committed batch in
//! revision order; the hub appends the events to the window and pushes each one into
//! the bounded queue of every watcher whose prefix matches, so a watcher of another
//! prefix costs one `starts_with` per event and is never woken. Registering a
//! watcher (replaying the window) and publishing take the same lock, so a watcher
//! sees every event after its start revision exactly once. A watcher whose queue is
//! full is dropped from the hub and gets `Expired` once its queued events are read.
//!
//! An update's event carries the object before the write (`prev_value`, for
//! watches with selectors), which is the value of the key's previous event: when
//! that event is still in the window the two share one buffer, so the window
//! holds each stored version once.
//!
//! This module does not touch storage: durability and revisions belong to the backend.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Revision, StoreError};

/// What a write did to its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watchers see it.
#[derive(Clone, Debug)]
pub struct Event {
    pub revision: Revision,
    pub key: Arc<str>,
    pub event_type: EventType,
    /// The object after the write; for `Deleted` the last stored object with
    /// `metadata.resourceVersion` set to the delete's revision.
    pub value: Bytes,
    /// The object before the write (`Modified` and `Deleted`), as it was stored.
    pub prev_value: Option<Bytes>,
}

/// The event window and the open watchers of one store.
#[derive(Debug)]
pub(crate) struct Hub {
    state: Mutex<HubState>,
}

#[derive(Debug)]
struct HubState {
    /// Events in revision order, at most `window` of them.
    events: VecDeque<Arc<Event>>,
    window: usize,
    /// Queue capacity of each watcher.
    queue: usize,
    /// Every event with a revision <= this one is gone from the window; a watch
    /// may start from this revision or later.
    evicted_through: Revision,
    /// The revision of each key's newest event in the window.
    newest: HashMap<Arc<str>, Revision>,
    subscribers: Vec<Subscriber>,
    next_id: u64,
    closed: bool,
}

impl HubState {
    /// Points `event.prev_value` at the value of the key's previous event when
    /// that is still in the window and holds the same bytes (it does unless a
    /// write bypassed the hub).
    fn share_prev(&self, event: &mut Event) {
        let Some(prev) = &event.prev_value else {
            return;
        };
        let Some(&rev) = self.newest.get(&event.key) else {
            return;
        };
        let i = self.events.partition_point(|e| e.revision < rev);
        if let Some(held) = self.events.get(i).filter(|e| e.revision == rev) {
            if held.value == *prev {
                event.prev_value = Some(held.value.clone());
            }
        }
    }
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    prefix: Box<str>,
    /// Events at or below this revision were replayed from the window (or predate
    /// the watch) and must not be sent again.
    after: Revision,
    tx: mpsc::Sender<Arc<Event>>,
    status: Arc<Mutex<Option<StoreError>>>,
}

impl Hub {
    /// A hub whose window holds at most `window` events and whose watchers may fall
    /// at most `queue` events behind; `start` is the store's current revision.
    pub(crate) fn new(window: usize, queue: usize, start: Revision) -> Arc<Hub> {
        Arc::new(Hub {
            state: Mutex::new(HubState {
                events: VecDeque::with_capacity(window.min(1024)),
                window,
                queue: queue.max(1),
                evicted_through: start,
                newest: HashMap::new(),
                subscribers: Vec::new(),
                next_id: 0,
                closed: false,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves the window in a consistent state
        // (every mutation is a single push/pop), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends committed events (in ascending revision order) and fans them out.
    /// `before_fanout` runs under the lock first, so a revision counter it updates
    /// is never behind what a concurrent `watch` can observe.
    pub(crate) fn publish(&self, events: Vec<Event>, before_fanout: impl FnOnce()) {
        let mut st = self.lock();
        before_fanout();
        if st.closed {
            return;
        }
        for mut event in events {
            st.share_prev(&mut event);
            let event = Arc::new(event);
            let oldest = st.evicted_through;
            st.subscribers.retain(|sub| {
                if event.revision <= sub.after || !event.key.starts_with(&*sub.prefix) {
                    return true;
                }
                match sub.tx.try_send(Arc::clone(&event)) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let mut status = sub.status.lock().unwrap_or_else(|e| e.into_inner());
                        *status = Some(StoreError::Expired {
                            requested: event.revision - 1,
                            oldest,
                        });
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            if st.window == 0 {
                st.evicted_through = event.revision;
                continue;
            }
            if st.events.len() == st.window {
                if let Some(old) = st.events.pop_front() {
                    st.evicted_through = old.revision;
                    if st.newest.get(&old.key) == Some(&old.revision) {
                        st.newest.remove(&old.key);
                    }
                }
            }
            st.newest.insert(Arc::clone(&event.key), event.revision);
            st.events.push_back(event);
        }
    }

    /// A watcher of `prefix` for events with revision > `after`: the matching
    /// events still in the window, then live ones.
    pub(crate) fn watch(
        self: &Arc<Self>,
        prefix: &str,
        after: Revision,
    ) -> Result<Watcher, StoreError> {
        let mut st = self.lock();
        if st.closed {
            return Err(StoreError::Closed);
        }
        if after < st.evicted_through {
            return Err(StoreError::Expired {
                requested: after,
                oldest: st.evicted_through,
            });
        }
        let start = st.events.partition_point(|e| e.revision <= after);
        let backlog: VecDeque<Arc<Event>> = st
            .events
            .range(start..)
            .filter(|e| e.key.starts_with(prefix))
            .cloned()
            .collect();
        let replayed_through = st.events.back().map_or(after, |e| e.revision.max(after));
        let (tx, rx) = mpsc::channel(st.queue);
        let status = Arc::new(Mutex::new(None));
        let id = st.next_id;
        st.next_id += 1;
        st.subscribers.push(Subscriber {
            id,
            prefix: prefix.into(),
            after: replayed_through,
            tx,
            status: Arc::clone(&status),
        });
        Ok(Watcher {
            backlog,
            rx,
            status,
            hub: Arc::downgrade(self),
            id,
            done: false,
        })
    }

    /// Ends every watcher (their streams finish) and refuses new ones.
    pub(crate) fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.subscribers.clear();
    }

    /// Number of open watchers.
    pub(crate) fn watchers(&self) -> usize {
        self.lock().subscribers.len()
    }

    fn remove(&self, id: u64) {
        self.lock().subscribers.retain(|s| s.id != id);
    }
}

/// A stream of events for one prefix; see [`super::Store::watch`].
#[derive(Debug)]
pub struct Watcher {
    backlog: VecDeque<Arc<Event>>,
    rx: mpsc::Receiver<Arc<Event>>,
    status: Arc<Mutex<Option<StoreError>>>,
    hub: Weak<Hub>,
    id: u64,
    done: bool,
}

impl Watcher {
    /// The next event; `Some(Err(Expired))` once if this watcher fell too far
    /// behind, `None` when the stream has ended (after that error, or when the
    /// store closed).
    pub async fn next(&mut self) -> Option<Result<Arc<Event>, StoreError>> {
        if self.done {
            return None;
        }
        if let Some(event) = self.backlog.pop_front() {
            return Some(Ok(event));
        }
        match self.rx.recv().await {
            Some(event) => Some(Ok(event)),
            None => {
                self.done = true;
                let err = self.status.lock().unwrap_or_else(|e| e.into_inner()).take();
                err.map(Err)
            }
        }
    }

    /// The next event if one is ready now, without waiting. `None` means "nothing
    /// ready"; the end of the stream and errors are left for [`Watcher::next`].
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        if self.done {
            return None;
        }
        if let Some(event) = self.backlog.pop_front() {
            return Some(event);
        }
        self.rx.try_recv().ok()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(revision: Revision, key: &str) -> Event {
        Event {
            revision,
            key: key.into(),
            event_type: EventType::Added,
            value: Bytes::from(format!("{{\"r\":{revision}}}")),
            prev_value: None,
        }
    }

    fn publish(hub: &Hub, events: &[(Revision, &str)]) {
        hub.publish(events.iter().map(|(r, k)| ev(*r, k)).collect(), || {});
    }

    async fn revisions(w: &mut Watcher, n: usize) -> Vec<Revision> {
        let mut out = Vec::new();
        for _ in 0..n {
            match w.next().await {
                Some(Ok(e)) => out.push(e.revision),
                other => panic!("expected an event, got {other:?}"),
            }
        }
        out
    }

    #[tokio::test]
    async fn replays_window_then_live_without_gap_or_duplicate() {
        let hub = Hub::new(10, 100, 0);
        publish(&hub, &[(1, "/a/1"), (2, "/b/1"), (3, "/a/2")]);
        let mut w = hub.watch("/a/", 1).expect("watch");
        publish(&hub, &[(4, "/a/3"), (5, "/b/2"), (6, "/a/4")]);
        assert_eq!(revisions(&mut w, 3).await, vec![3, 4, 6]);
    }

    #[tokio::test]
    async fn an_update_shares_its_previous_value_with_the_window() {
        let hub = Hub::new(2, 100, 0);
        let update = |revision: Revision, prev: Revision| Event {
            event_type: EventType::Modified,
            prev_value: Some(Bytes::from(format!("{{\"r\":{prev}}}"))),
            ..ev(revision, "/a")
        };
        hub.publish(vec![ev(1, "/a"), update(2, 1)], || {});
        let mut w = hub.watch("/", 0).expect("watch");
        let (first, second) = match (w.next().await, w.next().await) {
            (Some(Ok(a)), Some(Ok(b))) => (a, b),
            other => panic!("expected two events, got {other:?}"),
        };
        let prev = second.prev_value.as_ref().expect("a previous value");
        assert_eq!(prev, &first.value);
        assert_eq!(
            prev.as_ptr(),
            first.value.as_ptr(),
            "one buffer, not a copy"
        );
        // Once revision 2 has left the window, the next update of the key keeps
        // its own copy of what was stored.
        hub.publish(vec![ev(3, "/b"), ev(4, "/c"), update(5, 2)], || {});
        let mut w = hub.watch("/a", 4).expect("watch");
        match w.next().await {
            Some(Ok(e)) => {
                assert_eq!(e.prev_value.as_deref(), Some(&b"{\"r\":2}"[..]));
            }
            other => panic!("expected an event, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn watch_ahead_of_published_skips_older_live_events() {
        // A list can see a commit before it is published; a watch from that
        // revision must not get the event again.
        let hub = Hub::new(10, 100, 0);
        let mut w = hub.watch("/", 2).expect("watch");
        publish(&hub, &[(1, "/x"), (2, "/y"), (3, "/z")]);
        assert_eq!(revisions(&mut w, 1).await, vec![3]);
    }

    #[tokio::test]
    async fn too_old_revision_is_expired() {
        let hub = Hub::new(2, 100, 5);
        assert!(matches!(
            hub.watch("/", 4),
            Err(StoreError::Expired {
                requested: 4,
                oldest: 5
            })
        ));
        publish(&hub, &[(6, "/a"), (7, "/a"), (8, "/a")]);
        assert!(matches!(
            hub.watch("/", 5),
            Err(StoreError::Expired {
                requested: 5,
                oldest: 6
            })
        ));
        let mut w = hub.watch("/", 6).expect("revision 6 is still resumable");
        assert_eq!(revisions(&mut w, 2).await, vec![7, 8]);
    }

    #[tokio::test]
    async fn slow_watcher_is_ended_with_expired() {
        let hub = Hub::new(100, 3, 0);
        let mut slow = hub.watch("/", 0).expect("watch");
        let mut other = hub.watch("/other/", 0).expect("watch");
        publish(
            &hub,
            &[(1, "/a"), (2, "/a"), (3, "/a"), (4, "/a"), (5, "/a")],
        );
        assert_eq!(hub.watchers(), 1, "the slow watcher left the hub");
        assert_eq!(revisions(&mut slow, 3).await, vec![1, 2, 3]);
        assert!(matches!(
            slow.next().await,
            Some(Err(StoreError::Expired { .. }))
        ));
        assert!(slow.next().await.is_none());
        // The watcher of another prefix was not affected.
        publish(&hub, &[(6, "/other/x")]);
        assert_eq!(revisions(&mut other, 1).await, vec![6]);
    }

    #[tokio::test]
    async fn dropped_watcher_leaves_and_close_ends_streams() {
        let hub = Hub::new(10, 10, 0);
        let w1 = hub.watch("/", 0).expect("watch");
        let mut w2 = hub.watch("/", 0).expect("watch");
        assert_eq!(hub.watchers(), 2);
        drop(w1);
        assert_eq!(hub.watchers(), 1);
        hub.close();
        assert!(w2.next().await.is_none());
        assert!(matches!(hub.watch("/", 0), Err(StoreError::Closed)));
    }
}
