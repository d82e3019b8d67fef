//! Reading a watch: the server sends a chunked body of one compact JSON object per
//! line, `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{…}}`. Chunks
//! and lines do not line up, so [`LineBuffer`] (pure) reassembles lines and
//! [`Watch`] feeds it from the response body.

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::Method;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;

use super::ClientError;

/// One event of a watch.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK` or `ERROR`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The object (for `ERROR`, a `Status`).
    pub object: Value,
}

/// Splits a byte stream into lines; blank lines are skipped.
#[derive(Default, Debug)]
pub struct LineBuffer {
    buf: BytesMut,
}

impl LineBuffer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete line, without its `\n` (or `\r\n`).
    pub fn next_line(&mut self) -> Option<Bytes> {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let mut line = self.buf.split_to(pos + 1);
            line.truncate(pos);
            if line.last() == Some(&b'\r') {
                line.truncate(pos - 1);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some(line.freeze());
            }
        }
        None
    }

    /// At the end of the stream: what is left when it is not blank.
    pub fn finish(&mut self) -> Option<Bytes> {
        let rest = self.buf.split().freeze();
        (!rest.iter().all(u8::is_ascii_whitespace)).then_some(rest)
    }
}

/// An open watch. Ends (`None`) when the server closes the stream.
pub struct Watch {
    path: String,
    body: Incoming,
    lines: LineBuffer,
    done: bool,
}

impl Watch {
    pub(super) fn new(path: String, body: Incoming) -> Self {
        Watch {
            path,
            body,
            lines: LineBuffer::default(),
            done: false,
        }
    }

    /// The next event's JSON line as received, unparsed.
    pub async fn next_raw(&mut self) -> Option<Result<Bytes, ClientError>> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Some(Ok(line));
            }
            if self.done {
                return self.lines.finish().map(Ok);
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.lines.push(data);
                    }
                }
                Some(Err(source)) => {
                    self.done = true;
                    return Some(Err(ClientError::Body {
                        method: Method::GET,
                        path: self.path.clone(),
                        source,
                    }));
                }
                None => self.done = true,
            }
        }
    }

    /// The next event.
    pub async fn next(&mut self) -> Option<Result<WatchEvent, ClientError>> {
        let line = match self.next_raw().await? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        Some(
            serde_json::from_slice(&line).map_err(|source| ClientError::Json {
                method: Method::GET,
                path: self.path.clone(),
                source,
            }),
        )
    }

    /// The events as a [`Stream`].
    pub fn into_stream(self) -> impl Stream<Item = Result<WatchEvent, ClientError>> + Send {
        futures_util::stream::unfold(self, |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_reassembled_across_chunks() {
        let mut b = LineBuffer::default();
        b.push(b"{\"type\":\"ADDED\",");
        assert_eq!(b.next_line(), None);
        b.push(b"\"object\":{}}\n\n{\"a\"");
        assert_eq!(
            b.next_line().as_deref(),
            Some(&b"{\"type\":\"ADDED\",\"object\":{}}"[..])
        );
        assert_eq!(b.next_line(), None);
        b.push(b":1}\r\n{\"b\":2}");
        assert_eq!(b.next_line().as_deref(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(b.next_line(), None);
        assert_eq!(b.finish().as_deref(), Some(&b"{\"b\":2}"[..]));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn events_parse_with_their_type() {
        let e: WatchEvent =
            serde_json::from_slice(br#"{"type":"DELETED","object":{"kind":"Pod"}}"#).unwrap();
        assert_eq!(e.type_, "DELETED");
        assert_eq!(e.object["kind"], "Pod");
    }
}
