//! Reading container logs written in the CRI format, as the kubelet serves them
//! for `kubectl logs`: finding a container's files under the log root, parsing CRI
//! lines (joining partial ones), the query options (`tailLines`, `timestamps`,
//! `sinceSeconds`/`sinceTime`, `limitBytes`, `previous`, `follow`) and streaming a
//! file in small chunks, following it as it grows and across rotation.
//!
//! Writing and rotating the files belongs to `runtime`; serving them over HTTP to
//! `server`. Nothing here holds a whole log in memory: files are read in
//! [`CHUNK`]-byte pieces.

mod cri;
mod files;
mod options;
mod stream;

pub use cri::{parse_line, CriLine, Formatter, LogStream};
pub use files::{container_dir, locate, pod_dir, LogFile};
pub use options::LogOptions;
pub use stream::{stream, tail_start};

use std::path::PathBuf;

/// How many bytes are read from a log file at a time.
pub const CHUNK: usize = 32 * 1024;

/// Errors of log reading. The messages are what a `kubectl logs` user sees.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("container {container:?} in pod {pod:?} has no log file")]
    NoLogs { pod: String, container: String },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { pod: String, container: String },
    #[error("reading log file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad log line: {reason}")]
    BadLine { reason: &'static str },
    #[error("invalid value {value:?} for {option}: {reason}")]
    BadOption {
        option: &'static str,
        value: String,
        reason: String,
    },
}

impl LogError {
    /// Whether the error means "nothing there" (HTTP 404) rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(self, LogError::NoLogs { .. } | LogError::NoPrevious { .. })
    }

    /// Whether the error is the caller's (HTTP 400).
    pub fn is_bad_request(&self) -> bool {
        matches!(self, LogError::BadOption { .. })
    }
}
