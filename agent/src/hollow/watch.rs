//! List and watch one collection and feed what is seen to a channel: a full
//! (paginated) list first, then a watch from the list's resourceVersion, resumed
//! from the last seen version when the stream ends and re-listed when the server
//! says that version is too old (410 Expired) or the watch fails. Objects are
//! decoded straight into the small views the hollow nodes need, not kept whole.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use super::requests::{backoff, Api, Attempts};

/// Objects that carry a `metadata.resourceVersion`.
pub trait Versioned {
    fn resource_version(&self) -> &str;
}

/// What a watch event did to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

/// What the list-watch loop reports.
#[derive(Debug)]
pub enum Feed<T> {
    /// Every object that exists now (after a start or a re-list).
    Listed(Vec<T>),
    /// One change since.
    Event(Change, T),
}

#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "type")]
    type_: String,
    object: T,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default, rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue")]
    continue_: String,
}

#[derive(Deserialize)]
#[serde(bound = "T: DeserializeOwned")]
struct ListPage<T> {
    #[serde(default)]
    metadata: ListMeta,
    #[serde(default = "Vec::new")]
    items: Vec<T>,
}

/// Items per list page.
const PAGE: usize = 500;

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Lists `path` page by page; the items and the first page's resourceVersion
/// (later pages may be newer: the watch then replays a few changes, which the
/// consumer treats as no-ops).
async fn list_all<T: DeserializeOwned + Send>(
    api: &Api,
    path: &str,
    query: &str,
) -> Result<(Vec<T>, String), api::client::ClientError> {
    let mut items = Vec::new();
    let mut version = None;
    let mut cont = String::new();
    loop {
        let mut url = format!("{path}?{query}&limit={PAGE}");
        if !cont.is_empty() {
            url.push_str("&continue=");
            url.push_str(&query_escape(&cont));
        }
        let page: ListPage<T> = api.get_as(&url, Attempts(5)).await?;
        items.extend(page.items);
        version.get_or_insert(page.metadata.resource_version);
        if page.metadata.continue_.is_empty() {
            return Ok((items, version.unwrap_or_default()));
        }
        cont = page.metadata.continue_;
    }
}

/// Lists then watches `path?query` forever, sending to `tx`; returns when the
/// receiver is gone.
pub async fn list_watch<T>(api: Api, path: String, query: String, tx: mpsc::Sender<Feed<T>>)
where
    T: DeserializeOwned + Versioned + Send + 'static,
{
    let mut version: Option<String> = None;
    let mut failures = 0;
    loop {
        if failures > 0 {
            tokio::time::sleep(backoff(failures, rand::random::<f64>())).await;
        }
        let rv = match &version {
            Some(rv) => rv.clone(),
            None => match list_all::<T>(&api, &path, &query).await {
                Ok((items, rv)) => {
                    if tx.send(Feed::Listed(items)).await.is_err() {
                        return;
                    }
                    version = Some(rv.clone());
                    rv
                }
                Err(e) => {
                    tracing::warn!(path = %path, error = %crate::error_chain(&e), "list failed");
                    failures += 1;
                    continue;
                }
            },
        };
        let url = format!(
            "{path}?{query}&watch=true&allowWatchBookmarks=true&resourceVersion={}",
            query_escape(&rv)
        );
        let mut watch = match api.client().watch(&url).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(path = %path, error = %crate::error_chain(&e), "watch failed");
                if e.code() == Some(410) {
                    version = None;
                }
                failures += 1;
                continue;
            }
        };
        failures = 0;
        while let Some(line) = watch.next_raw().await {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    tracing::debug!(path = %path, error = %crate::error_chain(&e), "watch stream broke; resuming");
                    failures = 1;
                    break;
                }
            };
            let event = match serde_json::from_slice::<Envelope<T>>(&line) {
                Ok(ev) => ev,
                Err(e) => {
                    // ERROR events carry a Status, which does not fit the view.
                    let raw: Option<Envelope<Value>> = serde_json::from_slice(&line).ok();
                    match raw {
                        Some(ev) if ev.type_ == "ERROR" => {
                            let code = ev.object.get("code").and_then(Value::as_u64);
                            tracing::debug!(path = %path, ?code, "watch ended with an error event");
                            if code == Some(410) {
                                version = None;
                            } else {
                                failures = 1;
                            }
                        }
                        _ => {
                            tracing::warn!(path = %path, error = %crate::error_chain(&e), "undecodable watch event; re-listing");
                            version = None;
                            failures = 1;
                        }
                    }
                    break;
                }
            };
            let change = match event.type_.as_str() {
                "ADDED" => Change::Added,
                "MODIFIED" => Change::Modified,
                "DELETED" => Change::Deleted,
                "BOOKMARK" => {
                    version = Some(event.object.resource_version().to_string());
                    continue;
                }
                _ => continue,
            };
            version = Some(event.object.resource_version().to_string());
            if tx.send(Feed::Event(change, event.object)).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("spec.nodeName!="), "spec.nodeName%21%3D");
        assert_eq!(query_escape("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(query_escape("type=hollow"), "type%3Dhollow");
    }

    #[derive(Deserialize, Default, Debug)]
    #[serde(default, rename_all = "camelCase")]
    struct V {
        metadata: ListMeta,
    }

    #[test]
    fn a_list_page_decodes_into_views() {
        let page: ListPage<V> = serde_json::from_str(
            r#"{"kind":"PodList","metadata":{"resourceVersion":"12","continue":"x"},
                "items":[{"metadata":{"resourceVersion":"9"}}]}"#,
        )
        .unwrap();
        assert_eq!(page.metadata.resource_version, "12");
        assert_eq!(page.metadata.continue_, "x");
        assert_eq!(page.items[0].metadata.resource_version, "9");
    }
}
