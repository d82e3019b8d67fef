//! SQLite backend of the store: one file in WAL mode with `synchronous=FULL`.
//!
//! Writes go to one dedicated writer thread that owns the only write connection. It
//! takes every request waiting in its channel, applies them in one transaction (each
//! with its own compare-and-swap check, so a failed check fails only that request),
//! commits once, publishes the events to the watch hub in revision order and only
//! then answers the callers: an acknowledged write has been fsynced (group commit).
//! The global revision counter lives in the `meta` table and is written in the same
//! transaction, so it never goes back, even when the newest keys were deleted.
//!
//! Reads use a small pool of read-only connections on blocking threads; WAL lets them
//! read a consistent snapshot while the writer commits. Watch fan-out lives in
//! [`super::watch`]; this module only feeds it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};
use serde_json::{Map, Value};
use tokio::sync::{oneshot, Semaphore};

use super::watch::{Event, EventType, Hub, Watcher};
use super::{
    Histogram, KeyValue, ListPage, Revision, Store, StoreError, StoreMetrics,
    COMMIT_LATENCY_BUCKETS,
};

/// Most writes applied in one transaction; bounds the latency of a batch.
const MAX_BATCH: usize = 512;
/// How long a connection waits for a lock held by another one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0);
";

/// Tuning of a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Committed events kept in memory for watches that resume from a past revision.
    pub event_window: usize,
    /// Events a watcher may fall behind before it is ended with `Expired`.
    pub watcher_queue: usize,
    /// Read-only connections serving `get` and `list` concurrently.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            event_window: 10_000,
            watcher_queue: 10_000,
            readers: 3,
        }
    }
}

/// The embedded store; see the module documentation.
pub struct SqliteStore {
    path: String,
    requests: std_mpsc::Sender<Message>,
    writer: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    shared: Arc<Shared>,
}

/// State the writer thread shares with the store handle.
struct Shared {
    revision: AtomicI64,
    closed: AtomicBool,
    hub: Arc<Hub>,
    metrics: Mutex<Counters>,
}

#[derive(Default)]
struct Counters {
    commits: u64,
    writes: u64,
    /// Non-cumulative counts per bucket of `COMMIT_LATENCY_BUCKETS`.
    buckets: [u64; COMMIT_LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

enum Message {
    Write(WriteRequest),
    Shutdown,
}

struct WriteRequest {
    op: Op,
    reply: oneshot::Sender<Result<KeyValue, StoreError>>,
}

enum Op {
    Create {
        key: String,
        object: Map<String, Value>,
    },
    Update {
        key: String,
        object: Map<String, Value>,
        expected: Option<Revision>,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// A write that was applied inside the current transaction.
struct Applied {
    kv: KeyValue,
    event: Event,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SqliteStore {
    /// Opens (creating when absent) the database at `path` and its parent directory,
    /// and starts the writer thread.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<Arc<SqliteStore>, StoreError> {
        let shown = path.display().to_string();
        let sql_err = |source| StoreError::Sqlite {
            path: shown.clone(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        let conn = open_writer(path).map_err(sql_err)?;
        let revision = read_revision(&conn).map_err(sql_err)?;
        let hub = Hub::new(options.event_window, options.watcher_queue, revision);
        let shared = Arc::new(Shared {
            revision: AtomicI64::new(revision),
            closed: AtomicBool::new(false),
            hub,
            metrics: Mutex::new(Counters::default()),
        });
        let (requests, inbox) = std_mpsc::channel();
        let writer = Writer {
            conn,
            revision,
            shared: Arc::clone(&shared),
        };
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(inbox))
            .map_err(|source| StoreError::Io {
                path: shown.clone(),
                source,
            })?;
        let readers = options.readers.max(1);
        tracing::info!(path = %shown, revision, "store opened");
        Ok(Arc::new(SqliteStore {
            readers: Arc::new(ReaderPool {
                path: path.to_path_buf(),
                shown: shown.clone(),
                idle: Mutex::new(Vec::with_capacity(readers)),
                permits: Semaphore::new(readers),
            }),
            path: shown,
            requests,
            writer: Mutex::new(Some(handle)),
            shared,
        }))
    }

    /// Stops the writer after the batch it is committing; requests not yet taken
    /// get `Closed`, open watchers end, later calls get `Closed`. Blocks until the
    /// writer thread has exited (at most one commit).
    pub fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        // The writer may already be gone; then there is nothing to stop.
        let _ = self.requests.send(Message::Shutdown);
        if let Some(handle) = lock(&self.writer).take() {
            if handle.join().is_err() {
                tracing::error!(path = %self.path, "store writer thread panicked");
            }
        }
        self.shared.hub.close();
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> StoreMetrics {
        let watchers = self.shared.hub.watchers();
        let c = lock(&self.shared.metrics);
        let mut cumulative = 0;
        let buckets = COMMIT_LATENCY_BUCKETS
            .iter()
            .zip(c.buckets.iter())
            .map(|(bound, n)| {
                cumulative += n;
                (*bound, cumulative)
            })
            .collect();
        StoreMetrics {
            commits: c.commits,
            writes: c.writes,
            commit_latency: Histogram {
                buckets,
                sum: c.sum,
                count: c.count,
            },
            watchers,
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    async fn write(&self, op: Op) -> Result<KeyValue, StoreError> {
        self.check_open()?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Message::Write(WriteRequest { op, reply }))
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("revision", &self.current_revision())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        self.check_open()?;
        let key = key.to_owned();
        self.readers
            .run(move |conn| {
                conn.prepare_cached(
                    "SELECT key, value, create_rev, mod_rev FROM kv WHERE key = ?1",
                )?
                .query_row([&key], row_to_kv)
                .optional()
            })
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, StoreError> {
        self.check_open()?;
        let range = KeyRange::new(prefix, start_after);
        self.readers
            .run(move |conn| {
                let tx = conn.transaction()?;
                // The first read fixes the snapshot: the counter and the rows agree.
                let revision = read_revision(&tx)?;
                let sql = range.sql();
                let fetch = if limit == 0 {
                    -1
                } else {
                    i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1)
                };
                let mut items = {
                    let mut stmt = tx.prepare_cached(&sql)?;
                    let rows = match &range.upper {
                        Some(upper) => {
                            stmt.query_map(rusqlite::params![range.lower, upper, fetch], row_to_kv)?
                        }
                        None => stmt.query_map(rusqlite::params![range.lower, fetch], row_to_kv)?,
                    };
                    rows.collect::<Result<Vec<_>, _>>()?
                };
                tx.commit()?;
                let more = limit != 0 && items.len() > limit;
                items.truncate(if limit == 0 { items.len() } else { limit });
                Ok(ListPage {
                    items,
                    revision,
                    more,
                })
            })
            .await
    }

    async fn create(&self, key: &str, value: Value) -> Result<KeyValue, StoreError> {
        let object = into_object(key, value)?;
        self.write(Op::Create {
            key: key.to_owned(),
            object,
        })
        .await
    }

    async fn update(
        &self,
        key: &str,
        value: Value,
        expected: Option<Revision>,
    ) -> Result<KeyValue, StoreError> {
        let object = into_object(key, value)?;
        self.write(Op::Update {
            key: key.to_owned(),
            object,
            expected,
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        self.write(Op::Delete {
            key: key.to_owned(),
            expected,
        })
        .await
    }

    fn current_revision(&self) -> Revision {
        self.shared.revision.load(Ordering::SeqCst)
    }

    fn watch(&self, prefix: &str, after: Revision) -> Result<Watcher, StoreError> {
        self.check_open()?;
        self.shared.hub.watch(prefix, after)
    }
}

/// `value` as a JSON object with a `metadata` object (inserted when missing).
fn into_object(key: &str, value: Value) -> Result<Map<String, Value>, StoreError> {
    let not_object = || StoreError::NotAnObject {
        key: key.to_owned(),
    };
    let Value::Object(mut object) = value else {
        return Err(not_object());
    };
    match object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(_) => Ok(object),
        _ => Err(not_object()),
    }
}

/// Serializes `object` with `metadata.resourceVersion` = `revision`.
fn encode(
    key: &str,
    object: &mut Map<String, Value>,
    revision: Revision,
) -> Result<Bytes, StoreError> {
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
    serde_json::to_vec(object)
        .map(Bytes::from)
        .map_err(|_| StoreError::NotAnObject {
            key: key.to_owned(),
        })
}

fn row_to_kv(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(0)?,
        value: Bytes::from(row.get::<_, Vec<u8>>(1)?),
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
    })
}

fn read_revision(conn: &Connection) -> rusqlite::Result<Revision> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = 'revision'")?
        .query_row([], |r| r.get(0))
}

fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "sqlite refused WAL mode");
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The smallest string greater than every string that starts with `prefix`, or
/// `None` when there is none. UTF-8 byte order is code point order, so the range
/// `[prefix, upper)` holds exactly the keys with that prefix.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The key range of one `list` call.
struct KeyRange {
    lower: String,
    /// `key > lower` rather than `key >= lower`.
    exclusive: bool,
    upper: Option<String>,
}

impl KeyRange {
    fn new(prefix: &str, start_after: Option<&str>) -> KeyRange {
        let (lower, exclusive) = match start_after {
            Some(after) if after >= prefix => (after.to_owned(), true),
            _ => (prefix.to_owned(), false),
        };
        KeyRange {
            lower,
            exclusive,
            upper: prefix_upper_bound(prefix),
        }
    }

    fn sql(&self) -> String {
        let op = if self.exclusive { ">" } else { ">=" };
        match self.upper {
            Some(_) => format!(
                "SELECT key, value, create_rev, mod_rev FROM kv \
                 WHERE key {op} ?1 AND key < ?2 ORDER BY key LIMIT ?3"
            ),
            None => format!(
                "SELECT key, value, create_rev, mod_rev FROM kv \
                 WHERE key {op} ?1 ORDER BY key LIMIT ?2"
            ),
        }
    }
}

/// Read-only connections, used on blocking threads.
struct ReaderPool {
    path: PathBuf,
    shown: String,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

impl ReaderPool {
    /// Runs `f` with a read-only connection on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        let permit = pool
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let worker = Arc::clone(self);
        let joined = tokio::task::spawn_blocking(move || {
            let taken = lock(&worker.idle).pop();
            let mut conn = match taken {
                Some(conn) => conn,
                None => open_reader(&worker.path)?,
            };
            let out = f(&mut conn);
            lock(&worker.idle).push(conn);
            out
        })
        .await;
        drop(permit);
        match joined {
            Ok(result) => result.map_err(|source| StoreError::Sqlite {
                path: self.shown.clone(),
                source,
            }),
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => Err(StoreError::Closed),
            },
        }
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    /// The last committed revision.
    revision: Revision,
    shared: Arc<Shared>,
}

impl Writer {
    fn run(mut self, inbox: std_mpsc::Receiver<Message>) {
        loop {
            let mut batch = match inbox.recv() {
                Ok(Message::Write(request)) => vec![request],
                Ok(Message::Shutdown) | Err(_) => return,
            };
            let mut stop = false;
            while batch.len() < MAX_BATCH {
                match inbox.try_recv() {
                    Ok(Message::Write(request)) => batch.push(request),
                    Ok(Message::Shutdown) => {
                        stop = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            self.commit(batch);
            if stop {
                return;
            }
        }
    }

    /// Applies `batch` in one transaction and answers every request. If SQLite
    /// itself fails, the transaction is rolled back and each request is retried
    /// alone, so only the one that cannot be written gets the error.
    fn commit(&mut self, mut batch: Vec<WriteRequest>) {
        let started = Instant::now();
        match self.transact(&mut batch) {
            Ok((outcomes, revision, wrote)) => {
                let elapsed = started.elapsed();
                let mut events = Vec::new();
                let mut answers = Vec::with_capacity(batch.len());
                for (request, outcome) in batch.into_iter().zip(outcomes) {
                    let answer = outcome.map(|applied| {
                        events.push(applied.event);
                        applied.kv
                    });
                    answers.push((request.reply, answer));
                }
                if wrote {
                    self.record(elapsed, events.len());
                    self.revision = revision;
                    let shared = &self.shared;
                    shared
                        .hub
                        .publish(events, || shared.revision.store(revision, Ordering::SeqCst));
                }
                for (reply, answer) in answers {
                    // The caller may have given up waiting; the write stands.
                    let _ = reply.send(answer);
                }
            }
            Err(source) if batch.len() > 1 => {
                tracing::warn!(error = %source, writes = batch.len(), "store batch failed; retrying writes one by one");
                for request in batch {
                    self.commit(vec![request]);
                }
            }
            Err(source) => {
                for request in batch {
                    tracing::warn!(key = request.op.key(), error = %source, "store write failed");
                    let _ = request.reply.send(Err(StoreError::Sqlite {
                        path: self.conn.path().unwrap_or_default().to_owned(),
                        source: clone_error(&source),
                    }));
                }
            }
        }
    }

    /// Runs the batch in one transaction; returns each request's outcome, the new
    /// revision and whether anything was written (and committed).
    #[allow(clippy::type_complexity)]
    fn transact(
        &mut self,
        batch: &mut [WriteRequest],
    ) -> rusqlite::Result<(Vec<Result<Applied, StoreError>>, Revision, bool)> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut revision = self.revision;
        let mut outcomes = Vec::with_capacity(batch.len());
        for request in batch.iter_mut() {
            outcomes.push(apply(&tx, &mut revision, &mut request.op)?);
        }
        let wrote = revision != self.revision;
        if wrote {
            tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
                .execute([revision])?;
            tx.commit()?;
        } else {
            tx.rollback()?;
        }
        Ok((outcomes, revision, wrote))
    }

    fn record(&self, elapsed: Duration, writes: usize) {
        let seconds = elapsed.as_secs_f64();
        let mut c = lock(&self.shared.metrics);
        c.commits += 1;
        c.writes += writes as u64;
        c.sum += seconds;
        c.count += 1;
        if let Some(i) = COMMIT_LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            c.buckets[i] += 1;
        }
    }
}

/// A fresh copy of a SQLite error for every request of a failed single-write batch
/// (there is exactly one, but `rusqlite::Error` is not `Clone`).
fn clone_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e.sqlite_error() {
        Some(code) => rusqlite::Error::SqliteFailure(*code, Some(e.to_string())),
        None => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(e.to_string()),
        ),
    }
}

/// Applies one write inside `tx`. The outer error aborts the whole batch; the
/// inner one (CAS failure, missing key) fails only this request.
fn apply(
    tx: &Transaction<'_>,
    revision: &mut Revision,
    op: &mut Op,
) -> rusqlite::Result<Result<Applied, StoreError>> {
    let next = *revision + 1;
    match op {
        Op::Create { key, object } => {
            let value = match encode(key, object, next) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?3) \
                     ON CONFLICT (key) DO NOTHING",
                )?
                .execute(rusqlite::params![key.as_str(), &value[..], next])?;
            if inserted == 0 {
                return Ok(Err(StoreError::AlreadyExists { key: key.clone() }));
            }
            *revision = next;
            Ok(Ok(applied(key, EventType::Added, value, None, next, next)))
        }
        Op::Update {
            key,
            object,
            expected,
        } => {
            let (prev, create_rev) = match current(tx, key, *expected)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let value = match encode(key, object, next) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            tx.prepare_cached("UPDATE kv SET value = ?2, mod_rev = ?3 WHERE key = ?1")?
                .execute(rusqlite::params![key.as_str(), &value[..], next])?;
            *revision = next;
            Ok(Ok(applied(
                key,
                EventType::Modified,
                value,
                Some(prev),
                create_rev,
                next,
            )))
        }
        Op::Delete { key, expected } => {
            let (prev, create_rev) = match current(tx, key, *expected)? {
                Ok(found) => found,
                Err(e) => return Ok(Err(e)),
            };
            let value = match serde_json::from_slice(&prev)
                .map_err(|_| StoreError::NotAnObject { key: key.clone() })
                .and_then(|v| into_object(key, v))
                .and_then(|mut object| encode(key, &mut object, next))
            {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            tx.prepare_cached("DELETE FROM kv WHERE key = ?1")?
                .execute([&*key])?;
            *revision = next;
            Ok(Ok(applied(
                key,
                EventType::Deleted,
                value,
                Some(prev),
                create_rev,
                next,
            )))
        }
    }
}

/// The stored value and create revision of `key`, checked against `expected`.
fn current(
    tx: &Transaction<'_>,
    key: &str,
    expected: Option<Revision>,
) -> rusqlite::Result<Result<(Bytes, Revision), StoreError>> {
    let row: Option<(Vec<u8>, Revision, Revision)> = tx
        .prepare_cached("SELECT value, create_rev, mod_rev FROM kv WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(match row {
        None => Err(StoreError::NotFound {
            key: key.to_owned(),
        }),
        Some((_, _, actual)) if expected.is_some_and(|e| e != actual) => {
            Err(StoreError::Conflict {
                key: key.to_owned(),
                expected: expected.unwrap_or_default(),
                actual,
            })
        }
        Some((value, create_rev, _)) => Ok((Bytes::from(value), create_rev)),
    })
}

fn applied(
    key: &str,
    event_type: EventType,
    value: Bytes,
    prev_value: Option<Bytes>,
    create_revision: Revision,
    revision: Revision,
) -> Applied {
    Applied {
        kv: KeyValue {
            key: key.to_owned(),
            value: value.clone(),
            create_revision,
            mod_revision: revision,
        },
        event: Event {
            revision,
            key: key.into(),
            event_type,
            value,
            prev_value,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(window: usize, queue: usize) -> SqliteOptions {
        SqliteOptions {
            event_window: window,
            watcher_queue: queue,
            readers: 2,
        }
    }

    fn open(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
        SqliteStore::open(&dir.path().join("data/store.db"), SqliteOptions::default())
            .expect("open store")
    }

    fn pod(name: &str) -> Value {
        json!({"kind": "Pod", "metadata": {"name": name}, "spec": {"x": 1}})
    }

    fn json_of(kv: &KeyValue) -> Value {
        serde_json::from_slice(&kv.value).expect("stored value is JSON")
    }

    fn rv(kv: &KeyValue) -> String {
        json_of(kv)["metadata"]["resourceVersion"]
            .as_str()
            .expect("resourceVersion is a string")
            .to_owned()
    }

    #[tokio::test]
    async fn round_trip_sets_resource_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let created = store
            .create("/core/pods/ns/a", pod("a"))
            .await
            .expect("create");
        assert_eq!(created.create_revision, created.mod_revision);
        assert_eq!(rv(&created), created.mod_revision.to_string());
        assert_eq!(store.current_revision(), created.mod_revision);

        let got = store
            .get("/core/pods/ns/a")
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.value, created.value);
        assert_eq!(json_of(&got)["metadata"]["name"], "a");

        let mut changed = pod("a");
        changed["spec"]["x"] = json!(2);
        let updated = store
            .update("/core/pods/ns/a", changed, Some(created.mod_revision))
            .await
            .expect("update");
        assert!(updated.mod_revision > created.mod_revision);
        assert_eq!(updated.create_revision, created.create_revision);
        assert_eq!(rv(&updated), updated.mod_revision.to_string());
        assert_eq!(json_of(&updated)["spec"]["x"], 2);

        let deleted = store.delete("/core/pods/ns/a", None).await.expect("delete");
        assert!(deleted.mod_revision > updated.mod_revision);
        assert_eq!(rv(&deleted), deleted.mod_revision.to_string());
        assert_eq!(json_of(&deleted)["spec"]["x"], 2);
        assert!(store.get("/core/pods/ns/a").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn metadata_is_added_and_non_objects_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let kv = store
            .create("/k/plain", json!({"a": 1}))
            .await
            .expect("create");
        assert_eq!(rv(&kv), kv.mod_revision.to_string());
        for bad in [json!([1]), json!("s"), json!({"metadata": 3})] {
            assert!(matches!(
                store.create("/k/bad", bad).await,
                Err(StoreError::NotAnObject { .. })
            ));
        }
        assert!(store.get("/k/bad").await.expect("get").is_none());
    }

    #[tokio::test]
    async fn cas_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let a = store.create("/k/a", pod("a")).await.expect("create");
        assert!(matches!(
            store.create("/k/a", pod("a")).await,
            Err(StoreError::AlreadyExists { key }) if key == "/k/a"
        ));
        let stale = a.mod_revision;
        store
            .update("/k/a", pod("a"), Some(stale))
            .await
            .expect("update");
        match store.update("/k/a", pod("a"), Some(stale)).await {
            Err(StoreError::Conflict {
                expected, actual, ..
            }) => {
                assert_eq!(expected, stale);
                assert!(actual > stale);
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert!(matches!(
            store.delete("/k/a", Some(stale)).await,
            Err(StoreError::Conflict { .. })
        ));
        assert!(matches!(
            store.update("/k/missing", pod("m"), None).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.delete("/k/missing", None).await,
            Err(StoreError::NotFound { .. })
        ));
        // Failed writes do not use up revisions.
        let before = store.current_revision();
        let _ = store.create("/k/a", pod("a")).await;
        assert_eq!(store.current_revision(), before);
    }

    #[tokio::test]
    async fn revisions_survive_reopen_after_deleting_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("store.db");
        let last = {
            let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
            let mut prev = 0;
            for i in 0..5 {
                let kv = store
                    .create(&format!("/k/{i}"), pod("x"))
                    .await
                    .expect("create");
                assert!(kv.mod_revision > prev, "revisions strictly increase");
                prev = kv.mod_revision;
            }
            let deleted = store.delete("/k/4", None).await.expect("delete");
            assert!(deleted.mod_revision > prev);
            store.close();
            assert!(matches!(
                store.create("/k/late", pod("x")).await,
                Err(StoreError::Closed)
            ));
            deleted.mod_revision
        };
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
        assert_eq!(store.current_revision(), last);
        let kv = store.create("/k/4", pod("x")).await.expect("create again");
        assert_eq!(kv.mod_revision, last + 1);
        assert_eq!(
            store.list("/k/", None, 0).await.expect("list").items.len(),
            5
        );
        // The window starts empty at the persisted revision.
        assert!(matches!(
            store.watch("/", last - 1),
            Err(StoreError::Expired { .. })
        ));
        let mut w = store
            .watch("/", last)
            .expect("watch from the persisted revision");
        let e = w.next().await.expect("event").expect("not an error");
        assert_eq!((e.revision, e.event_type), (last + 1, EventType::Added));
    }

    #[tokio::test]
    async fn list_prefix_isolation_and_pagination() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        for key in [
            "/core/pods/a/1",
            "/core/pods/a/2",
            "/core/pods/a/3",
            "/core/pods/ab/x",
            "/core/pods/a_/y",
            "/core/pods/b/1",
        ] {
            store.create(key, pod("p")).await.expect("create");
        }
        let keys = |page: &ListPage| {
            page.items
                .iter()
                .map(|kv| kv.key.clone())
                .collect::<Vec<_>>()
        };
        let all = store.list("/core/pods/a/", None, 0).await.expect("list");
        assert_eq!(
            keys(&all),
            ["/core/pods/a/1", "/core/pods/a/2", "/core/pods/a/3"]
        );
        assert!(!all.more);
        assert_eq!(all.revision, store.current_revision());

        let p1 = store.list("/core/pods/a/", None, 2).await.expect("page 1");
        assert_eq!(keys(&p1), ["/core/pods/a/1", "/core/pods/a/2"]);
        assert!(p1.more);
        let p2 = store
            .list("/core/pods/a/", Some("/core/pods/a/2"), 2)
            .await
            .expect("page 2");
        assert_eq!(keys(&p2), ["/core/pods/a/3"]);
        assert!(!p2.more);
        let exact = store
            .list("/core/pods/a/", None, 3)
            .await
            .expect("exact page");
        assert!(!exact.more);
        let huge = store
            .list("/core/pods/a/", None, usize::MAX)
            .await
            .expect("huge limit");
        assert_eq!((huge.items.len(), huge.more), (3, false));

        assert_eq!(
            store
                .list("/core/pods/a_", None, 0)
                .await
                .expect("list")
                .items
                .len(),
            1
        );
        assert_eq!(
            store
                .list("/core/pods/", None, 0)
                .await
                .expect("list")
                .items
                .len(),
            6
        );
        assert_eq!(store.list("", None, 0).await.expect("list").items.len(), 6);
        assert!(store
            .list("/core/pods/c/", None, 0)
            .await
            .expect("list")
            .items
            .is_empty());
    }

    #[test]
    fn writer_connection_is_wal_and_fsyncs_every_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("p.db")).expect("open writer");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(read_revision(&conn).expect("revision"), 0);
    }

    #[test]
    fn upper_bound_covers_exactly_the_prefix() {
        assert_eq!(prefix_upper_bound("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }

    #[tokio::test]
    async fn watch_replays_then_goes_live_with_prev_values() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let a = store.create("/w/a", pod("a")).await.expect("create");
        store.create("/other/z", pod("z")).await.expect("create");
        let b = store.create("/w/b", pod("b")).await.expect("create");
        let mut w = store.watch("/w/", a.mod_revision - 1).expect("watch");
        assert_eq!(store.metrics().watchers, 1);
        let up = store.update("/w/a", pod("a2"), None).await.expect("update");
        let del = store.delete("/w/b", None).await.expect("delete");

        let mut seen = Vec::new();
        for _ in 0..4 {
            let e = w.next().await.expect("event").expect("not an error");
            seen.push((e.revision, e.key.to_string(), e.event_type));
            if e.event_type == EventType::Deleted {
                assert_eq!(e.value, del.value);
                assert_eq!(e.prev_value.as_ref(), Some(&b.value));
            }
            if e.event_type == EventType::Modified {
                assert_eq!(e.prev_value.as_ref(), Some(&a.value));
            }
        }
        assert_eq!(
            seen,
            vec![
                (a.mod_revision, "/w/a".to_owned(), EventType::Added),
                (b.mod_revision, "/w/b".to_owned(), EventType::Added),
                (up.mod_revision, "/w/a".to_owned(), EventType::Modified),
                (del.mod_revision, "/w/b".to_owned(), EventType::Deleted),
            ]
        );
        drop(w);
        assert_eq!(store.metrics().watchers, 0);
    }

    #[tokio::test]
    async fn small_window_expires_old_revisions_and_slow_watchers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("s.db"), options(3, 2)).expect("open");
        let mut slow = store.watch("/k/", 0).expect("watch");
        for i in 0..6 {
            store
                .create(&format!("/k/{i}"), pod("x"))
                .await
                .expect("create");
        }
        assert!(matches!(
            store.watch("/k/", 1),
            Err(StoreError::Expired { .. })
        ));
        let mut recent = store.watch("/k/", 3).expect("revision 3 is resumable");
        for want in 4..=6 {
            let e = recent.next().await.expect("event").expect("not an error");
            assert_eq!(e.revision, want);
        }
        let mut got = 0;
        loop {
            match slow.next().await {
                Some(Ok(_)) => got += 1,
                Some(Err(StoreError::Expired { .. })) => break,
                other => panic!("expected events then Expired, got {other:?}"),
            }
        }
        assert_eq!(got, 2, "only the queued events are delivered");
        assert!(slow.next().await.is_none());
    }

    #[tokio::test]
    async fn close_ends_watchers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let mut w = store.watch("/", 0).expect("watch");
        store.create("/a", pod("a")).await.expect("create");
        store.close();
        assert_eq!(w.next().await.expect("event").expect("ok").revision, 1);
        assert!(w.next().await.is_none());
        assert!(matches!(store.get("/a").await, Err(StoreError::Closed)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn racing_updates_with_one_expected_revision_let_exactly_one_win() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let base = store.create("/r/a", pod("a")).await.expect("create");
        let mut tasks = Vec::new();
        for i in 0..16 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut other = pod("a");
                other["spec"]["x"] = json!(i);
                store.update("/r/a", other, Some(base.mod_revision)).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(_) => won += 1,
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(won, 1);
        assert_eq!(store.current_revision(), base.mod_revision + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_creates_group_commit() {
        const TASKS: usize = 32;
        const PER_TASK: usize = 157; // 5,024 writes in all
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let mut watcher = store.watch("/c/", 0).expect("watch");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut revisions = Vec::with_capacity(PER_TASK);
                for i in 0..PER_TASK {
                    let kv = store
                        .create(&format!("/c/{t}/{i}"), pod("c"))
                        .await
                        .expect("create");
                    revisions.push(kv.mod_revision);
                }
                revisions
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.expect("task"));
        }
        let elapsed = started.elapsed();
        let total = TASKS * PER_TASK;
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), total, "every create got its own revision");
        assert_eq!(store.current_revision(), total as Revision);
        let m = store.metrics();
        assert_eq!(m.writes, total as u64);
        assert!(
            m.commits < m.writes,
            "writes were grouped: {} commits",
            m.commits
        );
        assert_eq!(m.commit_latency.count, m.commits);
        let counts: Vec<u64> = m.commit_latency.buckets.iter().map(|b| b.1).collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "buckets are cumulative"
        );
        assert!(counts.last().is_some_and(|n| *n <= m.commit_latency.count));
        println!(
            "{total} creates from {TASKS} tasks in {elapsed:?}: {:.0} writes/s, {} commits",
            total as f64 / elapsed.as_secs_f64(),
            m.commits
        );
        // The watcher saw all of them, in revision order.
        for want in 1..=total as Revision {
            let e = watcher.next().await.expect("event").expect("not an error");
            assert_eq!(e.revision, want);
        }
        assert_eq!(
            store.list("/c/", None, 0).await.expect("list").items.len(),
            total
        );
    }
}
