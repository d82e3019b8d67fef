//! The image store's error type.

use super::reference::ReferenceError;
use super::whiteout::PathError;
use std::io;

/// What went wrong in the image store, naming the file, layer or reference.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// The caller asked for something impossible (e.g. an unnamed image without `--tag`).
    #[error("{0}")]
    Usage(String),
    #[error("image {0} not found")]
    NotFound(String),
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{what}: digest is {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: invalid JSON")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}")]
    Path {
        what: String,
        #[source]
        source: PathError,
    },
}

impl ImageError {
    /// True when the user can fix it by changing the command (exit 64).
    pub fn is_usage(&self) -> bool {
        matches!(self, ImageError::Reference(_) | ImageError::Usage(_))
    }

    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> ImageError {
        ImageError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// `map_err(io_err("reading /x"))`
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Io { what, source }
}

/// `map_err(json_err("config sha256:…"))`
pub(crate) fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> ImageError {
    let what = what.into();
    move |source| ImageError::Json { what, source }
}
