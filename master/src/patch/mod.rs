//! The patch engines behind `PATCH` requests, one per Content-Type: JSON merge patch
//! (`merge`, RFC 7386), JSON patch (`json`, RFC 6902), strategic merge patch
//! (`strategic`, driven by the per-kind table in `schema`) and server-side apply
//! (`apply`, which also keeps `metadata.managedFields`). Everything here is pure,
//! over `serde_json::Value`; reading and writing the store is the API server's job.

pub mod apply;
pub mod json;
pub mod merge;
pub mod schema;
pub mod strategic;

use std::fmt;

/// Why a patch could not be applied. `http_status` says which HTTP answer it maps to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (not the shape the patch type needs,
    /// an unknown op or directive, a bad pointer): answer 400 Bad Request.
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// The patch is well formed but cannot apply to this object (missing path,
    /// failed `test`, missing merge key in the object): answer 422 Unprocessable Entity.
    #[error("patch cannot be applied: {0}")]
    Failed(String),
    /// Server-side apply would change fields another manager owns: answer 409 Conflict.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<FieldConflict>),
}

impl PatchError {
    /// The HTTP status code the API server should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            PatchError::Invalid(_) => 400,
            PatchError::Failed(_) => 422,
            PatchError::Conflict(_) => 409,
        }
    }
}

/// One field server-side apply refused to take from its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager that owns the field now, e.g. `kubectl-client-side-apply`.
    pub manager: String,
    /// The field in the dotted form kubectl prints, e.g. `.spec.replicas` or
    /// `.spec.containers[name="web"].image`.
    pub field: String,
}

impl fmt::Display for FieldConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conflict with {:?}: {}", self.manager, self.field)
    }
}

/// The message the real API server gives for apply conflicts, e.g.
/// `Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas`.
fn conflict_message(conflicts: &[FieldConflict]) -> String {
    let n = conflicts.len();
    let noun = if n == 1 { "conflict" } else { "conflicts" };
    let list: Vec<String> = conflicts.iter().map(|c| c.to_string()).collect();
    format!("Apply failed with {n} {noun}: {}", list.join("\n"))
}
