//! Watch: a chunked stream of `{"type":…,"object":…}` lines, one per event, as they
//! happen. Initial ADDED events when the client asks from "now" (no or "0"
//! resourceVersion), selector transitions as ADDED/DELETED, bookmarks, 410 Expired as
//! an ERROR event, and an end after `timeoutSeconds`.
//!
//! The response body pulls straight from the store's watcher: no task or channel
//! per watch, and events already queued leave together in one frame. A client that
//! does not read stops pulling, its store watcher falls behind and is ended with
//! Expired: memory stays bounded.

use super::crud::ListOptions;
use super::http::Body;
use super::route::{Query, Target};
use super::status::ApiError;
use super::Server;
use crate::store::{Event, EventType, Revision, StoreError, Watcher};
use bytes::Bytes;
use futures_util::stream;
use http::{header, HeaderValue, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, Interval};

/// How often bookmarks are sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// The longest a watch stays open without `timeoutSeconds` (upstream: 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Ready events are sent together up to this many bytes.
const COALESCE_BYTES: usize = 64 * 1024;

struct WatchRequest {
    res: &'static api::resources::Resource,
    opts: ListOptions,
    table: Option<&'static str>,
    bookmarks: bool,
}

/// Counts the watch as open while the body exists.
struct OpenWatch(Arc<Server>);

impl Drop for OpenWatch {
    fn drop(&mut self) {
        self.0.metrics.watch_closed();
    }
}

/// Everything one watch response needs between polls.
struct State {
    req: WatchRequest,
    /// Objects that exist at the start, sent as ADDED first (stored bytes).
    initial: VecDeque<Bytes>,
    /// A bookmark marking the end of the initial events, when asked for.
    initial_end: Option<Bytes>,
    watcher: Option<Watcher>,
    /// A last line to send (an ERROR) before ending.
    last: Option<Bytes>,
    deadline: Instant,
    ticker: Interval,
    server: Arc<Server>,
    _open: OpenWatch,
}

pub(super) async fn serve(
    server: Arc<Server>,
    t: &Target,
    q: &Query,
    table: Option<&'static str>,
) -> Result<Response<Body>, ApiError> {
    let mut opts = ListOptions::from_query(t.res, q)?;
    opts.limit = 0;
    opts.continue_after = None;
    let rv = q.non_empty("resourceVersion").unwrap_or("");
    let send_initial = match q.get("sendInitialEvents") {
        Some(_) => q.flag("sendInitialEvents"),
        None => rv.is_empty() || rv == "0",
    };
    let start: Option<Revision> = if send_initial && (rv.is_empty() || rv == "0") {
        None
    } else {
        Some(rv.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {rv:?} for watch"))
        })?)
    };
    let timeout = q
        .non_empty("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT);
    let req = WatchRequest {
        res: t.res,
        opts,
        table,
        bookmarks: q.flag("allowWatchBookmarks"),
    };
    // From "now": the current objects as ADDED, then changes after the list.
    let mut initial = VecDeque::new();
    let mut initial_end = None;
    let from = match start {
        Some(rev) => rev,
        None => {
            let listed = server
                .list_objects(t.res, t.namespace.as_deref(), &req.opts, false)
                .await?;
            initial.extend(listed.items);
            if q.get("sendInitialEvents").is_some() && req.bookmarks {
                initial_end = Some(bookmark(&req, listed.revision, true));
            }
            listed.revision
        }
    };
    let prefix = t.res.key_prefix_in(t.namespace.as_deref());
    let (watcher, last) = match server.store.watch(&prefix, from) {
        Ok(w) => (Some(w), None),
        Err(StoreError::Expired { requested, oldest }) => (
            None,
            Some(line(
                "ERROR",
                &ApiError::gone(requested, oldest).to_status(),
            )),
        ),
        Err(e) => (
            None,
            Some(line(
                "ERROR",
                &ApiError::internal(e.to_string()).to_status(),
            )),
        ),
    };
    server.metrics.watch_opened();
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.reset();
    let state = State {
        req,
        initial,
        initial_end,
        watcher,
        last,
        deadline: Instant::now() + timeout,
        ticker,
        server: server.clone(),
        _open: OpenWatch(server),
    };
    let body = StreamBody::new(stream::unfold(state, |mut st| async move {
        let chunk = next_chunk(&mut st).await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), st))
    }))
    .boxed_unsync();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

/// The next piece of the body, or None when the watch is over.
async fn next_chunk(st: &mut State) -> Option<Bytes> {
    if !st.initial.is_empty() {
        let mut buf = Vec::new();
        while let Some(item) = st.initial.pop_front() {
            buf.extend_from_slice(&event_line(&st.req, "ADDED", &item, None));
            if buf.len() >= COALESCE_BYTES {
                break;
            }
        }
        return Some(Bytes::from(buf));
    }
    if let Some(b) = st.initial_end.take() {
        return Some(b);
    }
    let Some(watcher) = st.watcher.as_mut() else {
        return st.last.take();
    };
    loop {
        let ev = tokio::select! {
            _ = tokio::time::sleep_until(st.deadline) => return None,
            _ = st.ticker.tick(), if st.req.bookmarks => {
                return Some(bookmark(&st.req, st.server.store.current_revision(), false));
            }
            ev = watcher.next() => ev,
        };
        let ev = match ev {
            None => return None,
            Some(Err(StoreError::Expired { requested, oldest })) => {
                st.watcher = None;
                return Some(line(
                    "ERROR",
                    &ApiError::gone(requested, oldest).to_status(),
                ));
            }
            Some(Err(e)) => {
                st.watcher = None;
                return Some(line(
                    "ERROR",
                    &ApiError::internal(e.to_string()).to_status(),
                ));
            }
            Some(Ok(ev)) => ev,
        };
        let Some(first) = encode(&st.req, &ev) else {
            continue;
        };
        // Send what else is ready with it.
        let Some(mut more) = watcher.try_next() else {
            return Some(first);
        };
        let mut buf = first.to_vec();
        loop {
            if let Some(b) = encode(&st.req, &more) {
                buf.extend_from_slice(&b);
            }
            if buf.len() >= COALESCE_BYTES {
                break;
            }
            match watcher.try_next() {
                Some(ev) => more = ev,
                None => break,
            }
        }
        return Some(Bytes::from(buf));
    }
}

/// The line for one store event as this watch shows it, or None when the event is
/// not for it (selectors).
fn encode(req: &WatchRequest, ev: &Event) -> Option<Bytes> {
    if !req.opts.filters() && req.table.is_none() {
        // A copy per watcher; caching one shared line per event would keep a
        // second copy of every object in the store's event window alive.
        return Some(raw_line(type_name(ev.event_type), &ev.value));
    }
    let now = serde_json::from_slice::<Value>(&ev.value).ok();
    let prev = ev
        .prev_value
        .as_ref()
        .and_then(|p| serde_json::from_slice::<Value>(p).ok());
    let now_matches = now.as_ref().is_some_and(|v| req.opts.matches(v));
    let prev_matches = prev.as_ref().is_some_and(|v| req.opts.matches(v));
    let kind = match ev.event_type {
        EventType::Added if now_matches => "ADDED",
        EventType::Modified if now_matches && prev_matches => "MODIFIED",
        EventType::Modified if now_matches => "ADDED",
        EventType::Modified if prev_matches => "DELETED",
        EventType::Deleted if prev_matches || now_matches => "DELETED",
        _ => return None,
    };
    Some(event_line(req, kind, &ev.value, now.as_ref()))
}

fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut out =
        serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// One event line from stored bytes, without re-serializing the object.
fn raw_line(kind: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn event_line(req: &WatchRequest, kind: &str, raw: &[u8], parsed: Option<&Value>) -> Bytes {
    match req.table {
        Some(api_version) => {
            let v = match parsed {
                Some(v) => v.clone(),
                None => serde_json::from_slice(raw).unwrap_or(Value::Null),
            };
            let rv = v
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = super::table::table(
                req.res.kind,
                api_version,
                &[v],
                json!({ "resourceVersion": rv }),
                "Object",
                jiff::Timestamp::now(),
            );
            line(kind, &t)
        }
        None => raw_line(kind, raw),
    }
}

fn bookmark(req: &WatchRequest, rev: Revision, initial_end: bool) -> Bytes {
    let mut meta = json!({ "resourceVersion": rev.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    line(
        "BOOKMARK",
        &json!({ "kind": req.res.kind, "apiVersion": req.res.api_version(), "metadata": meta }),
    )
}
