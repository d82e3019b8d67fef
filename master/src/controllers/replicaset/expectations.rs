//! Controller expectations, as upstream's `UIDTrackingControllerExpectations`: a
//! ReplicaSet that just created or deleted pods waits until the pod informer has
//! seen those changes before it counts pods again, so a pod created a moment ago
//! but not yet in the cache is never created twice. Records expire after five
//! minutes so a lost event cannot stall a ReplicaSet for ever.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a record is trusted before the controller syncs anyway.
pub const TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Record {
    adds: i64,
    deletes: HashSet<String>,
    at: Instant,
}

/// Creations and deletions each ReplicaSet (by key) still waits to observe.
#[derive(Debug, Default)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when `key` has nothing outstanding (or its record expired).
    pub fn satisfied(&self, key: &str) -> bool {
        match self.lock().get(key) {
            None => true,
            Some(r) => (r.adds <= 0 && r.deletes.is_empty()) || r.at.elapsed() > TTL,
        }
    }

    /// Expects `adds` pod creations and the deletion of the pods `deletes` (keys),
    /// replacing any previous record.
    pub fn expect(&self, key: &str, adds: i64, deletes: impl IntoIterator<Item = String>) {
        self.lock().insert(
            key.to_string(),
            Record {
                adds,
                deletes: deletes.into_iter().collect(),
                at: Instant::now(),
            },
        );
    }

    /// One expected creation happened (or will not happen).
    pub fn creation_observed(&self, key: &str) {
        if let Some(r) = self.lock().get_mut(key) {
            r.adds -= 1;
        }
    }

    /// The pod `pod_key` is being deleted or gone (or its deletion failed).
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        if let Some(r) = self.lock().get_mut(key) {
            r.deletes.remove(pod_key);
        }
    }

    /// Forgets `key` (its ReplicaSet was deleted).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_and_deletions_must_be_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs"));
        e.expect("ns/rs", 2, []);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));

        e.expect("ns/rs", 0, ["ns/p1".to_string(), "ns/p2".to_string()]);
        e.deletion_observed("ns/rs", "ns/p1");
        e.deletion_observed("ns/rs", "ns/p1");
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/p2");
        assert!(e.satisfied("ns/rs"));
        e.forget("ns/rs");
        assert!(e.satisfied("ns/rs"));
    }
}
