//! Label selectors (`?labelSelector=`, `metav1.LabelSelector`, service selectors) and field
//! selectors (`?fieldSelector=`), parsed and matched as the API server does, with
//! upstream's error messages. Pure functions over `serde_json::Value` and label maps; this
//! module does not list or filter the store itself.

mod field;
mod label;

pub use field::{field_value, FieldOp, FieldSelector, FieldTerm};
pub(crate) use label::labels_of;
pub use label::{LabelSelector, Operator, Requirement};

/// A selector that cannot be parsed or is not allowed; the message is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SelectorError {
    /// Upstream's wording, e.g. `unable to parse requirement: found '', expected: ',' or ')'`.
    pub message: String,
}

impl SelectorError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        SelectorError {
            message: message.into(),
        }
    }
}
