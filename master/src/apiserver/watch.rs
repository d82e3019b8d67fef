//! Watch: a chunked stream of `{"type":…,"object":…}` lines, one per event, flushed
//! as they happen. Initial ADDED events when the client asks from "now" (no or "0"
//! resourceVersion), selector transitions as ADDED/DELETED, bookmarks, 410 Expired as
//! an ERROR event, and an end after `timeoutSeconds`. A client that does not read
//! fills a small buffer, its store watcher falls behind and is ended: memory stays
//! bounded.

use super::crud::ListOptions;
use super::http::{channel_body, Body};
use super::route::{Query, Target};
use super::status::ApiError;
use super::Server;
use crate::store::{EventType, Revision, StoreError};
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events buffered for a slow client before its watch is cut.
const CLIENT_BUFFER: usize = 256;
/// How often bookmarks are sent when the client allows them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// The longest a watch stays open without `timeoutSeconds` (upstream: 30–60 min).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

struct WatchRequest {
    res: &'static api::resources::Resource,
    namespace: Option<String>,
    opts: ListOptions,
    table: Option<&'static str>,
    bookmarks: bool,
    initial_events_end: bool,
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
        namespace: t.namespace.clone(),
        opts,
        table,
        bookmarks: q.flag("allowWatchBookmarks"),
        initial_events_end: q.flag("sendInitialEvents"),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(CLIENT_BUFFER);
    server.metrics.watch_opened();
    let s = server.clone();
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, run(&s, req, start, tx)).await;
        s.metrics.watch_closed();
    });
    let mut resp = Response::new(channel_body(rx));
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

async fn run(server: &Server, req: WatchRequest, start: Option<Revision>, tx: mpsc::Sender<Bytes>) {
    let prefix = req.res.key_prefix_in(req.namespace.as_deref());
    // From "now": the current objects as ADDED, then changes after the list.
    let from = match start {
        Some(rev) => rev,
        None => {
            let listed = match server
                .list_objects(req.res, req.namespace.as_deref(), &req.opts, false)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.send(line("ERROR", &e.to_status())).await;
                    return;
                }
            };
            for item in &listed.items {
                if tx
                    .send(event_line(&req, "ADDED", item, None))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if req.initial_events_end && req.bookmarks {
                let _ = tx.send(bookmark(&req, listed.revision, true)).await;
            }
            listed.revision
        }
    };
    let mut watcher = match server.store.watch(&prefix, from) {
        Ok(w) => w,
        Err(StoreError::Expired { requested, oldest }) => {
            let _ = tx
                .send(line(
                    "ERROR",
                    &ApiError::gone(requested, oldest).to_status(),
                ))
                .await;
            return;
        }
        Err(e) => {
            let _ = tx
                .send(line(
                    "ERROR",
                    &ApiError::internal(e.to_string()).to_status(),
                ))
                .await;
            return;
        }
    };
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = ticker.tick(), if req.bookmarks => {
                if tx.send(bookmark(&req, server.store.current_revision(), false)).await.is_err() {
                    return;
                }
            }
            ev = watcher.next() => {
                let ev = match ev {
                    None => return,
                    Some(Err(StoreError::Expired { requested, oldest })) => {
                        let _ = tx.send(line("ERROR", &ApiError::gone(requested, oldest).to_status())).await;
                        return;
                    }
                    Some(Err(e)) => {
                        let _ = tx.send(line("ERROR", &ApiError::internal(e.to_string()).to_status())).await;
                        return;
                    }
                    Some(Ok(ev)) => ev,
                };
                let out = if !req.opts.filters() && req.table.is_none() {
                    // Encoded once per event, shared by every watcher.
                    Some(ev.encoded.get_or_init(|| {
                        let kind = match ev.event_type {
                            EventType::Added => "ADDED",
                            EventType::Modified => "MODIFIED",
                            EventType::Deleted => "DELETED",
                        };
                        raw_line(kind, &ev.value)
                    }).clone())
                } else {
                    let now = serde_json::from_slice::<Value>(&ev.value).ok();
                    let prev = ev.prev_value.as_ref().and_then(|p| serde_json::from_slice::<Value>(p).ok());
                    let now_matches = now.as_ref().is_some_and(|v| req.opts.matches(v));
                    let prev_matches = prev.as_ref().is_some_and(|v| req.opts.matches(v));
                    let kind = match ev.event_type {
                        EventType::Added if now_matches => Some("ADDED"),
                        EventType::Modified if now_matches && prev_matches => Some("MODIFIED"),
                        EventType::Modified if now_matches => Some("ADDED"),
                        EventType::Modified if prev_matches => Some("DELETED"),
                        EventType::Deleted if prev_matches || now_matches => Some("DELETED"),
                        _ => None,
                    };
                    kind.map(|k| event_line(&req, k, &ev.value, now.as_ref()))
                };
                if let Some(out) = out {
                    if tx.send(out).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
