//! The master's durable store: a key-value map of JSON objects with one global,
//! strictly increasing revision, compare-and-swap writes and watches from a revision.
//!
//! Keys look like `/<group>/<resource>/<namespace>/<name>` (cluster-scoped objects have
//! no namespace segment); the store does not interpret them beyond prefix matching.
//! Every value the store returns or sends to a watcher carries
//! `metadata.resourceVersion` equal to the revision of its last write (for a delete
//! event: the revision of the delete). The store sets that field itself when it
//! writes, so callers never guess a revision.
//!
//! `sqlite` is the embedded backend (WAL, fsync before acknowledging, group commit).
//! An etcd backend can implement the same trait later.

mod sqlite;
mod watch;

pub use sqlite::{SqliteOptions, SqliteStore};
pub use watch::{Event, EventType, Watcher};

use async_trait::async_trait;
use bytes::Bytes;

/// A global store revision; every object's resourceVersion is one of these.
pub type Revision = i64;

/// One stored object as the store returns it.
#[derive(Clone, Debug)]
pub struct KeyValue {
    pub key: String,
    /// The serialized JSON object, with `metadata.resourceVersion` = `mod_revision`.
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}

/// One page of a prefix listing.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<KeyValue>,
    /// The store revision the page is consistent with.
    pub revision: Revision,
    /// True when more keys follow the last returned one.
    pub more: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    /// The caller's expected revision is not the stored one.
    #[error("key {key} was modified: expected revision {expected}, found {actual}")]
    Conflict {
        key: String,
        expected: Revision,
        actual: Revision,
    },
    /// A watch asked for a revision older than the events still held in memory.
    #[error("revision {requested} is too old; the oldest held is {oldest}")]
    Expired {
        requested: Revision,
        oldest: Revision,
    },
    #[error("value for key {key} is not a JSON object")]
    NotAnObject { key: String },
    #[error("sqlite at {path}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("store directory {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store is closed")]
    Closed,
}

/// Upper bounds (seconds) of the commit-latency histogram buckets.
pub const COMMIT_LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A point-in-time copy of the store's counters, for the API server's `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StoreMetrics {
    /// Transactions committed (each holds one or more writes).
    pub commits: u64,
    /// Writes that were committed (failed compare-and-swaps are not counted).
    pub writes: u64,
    /// Time from the start of a write transaction to the end of its COMMIT (fsync
    /// included).
    pub commit_latency: Histogram,
    /// Watchers currently open.
    pub watchers: usize,
}

/// A Prometheus-style histogram: cumulative bucket counts, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound in seconds, observations <= bound)`, bounds ascending; the
    /// `+Inf` bucket is `count`.
    pub buckets: Vec<(f64, u64)>,
    /// Sum of all observations, in seconds.
    pub sum: f64,
    /// Number of observations.
    pub count: u64,
}

/// The operations the API server needs from a store.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The object at `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError>;

    /// Objects whose key starts with `prefix`, in key order, beginning after
    /// `start_after` (exclusive) when given, at most `limit` of them (0 = no limit).
    /// The page is one consistent snapshot.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError>;

    /// Creates `key`; fails with `AlreadyExists` when it is present. `value` must be
    /// a JSON object; the store sets `metadata.resourceVersion`. Returns what was
    /// stored once it is durable.
    async fn create(&self, key: &str, value: serde_json::Value) -> Result<KeyValue, StoreError>;

    /// Replaces `key`. With `expected = Some(rev)` the write happens only when the
    /// stored object's mod revision is `rev` (else `Conflict`); `None` overwrites.
    /// `NotFound` when absent. Returns what was stored once it is durable.
    async fn update(
        &self,
        key: &str,
        value: serde_json::Value,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError>;

    /// Deletes `key` (with the same `expected` rule as `update`) and returns the
    /// object as it was, with `metadata.resourceVersion` set to the delete's revision.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError>;

    /// The latest committed revision.
    fn current_revision(&self) -> Revision;

    /// Events for keys under `prefix` with revision > `after`, first those still held
    /// in memory, then live ones. `Expired` when events after `after` are no longer
    /// held. A watcher that falls too far behind is ended (its next call returns an
    /// `Expired` error) rather than buffering without bound.
    fn watch(&self, prefix: &str, after: Revision) -> Result<Watcher, StoreError>;
}
