//! Per-kind object validation (placeholder).
use super::Cause;
use serde_json::Value;
pub fn validate_object(_kind: &str, _obj: &Value) -> Vec<Cause> {
    Vec::new()
}
pub fn validate_update(_kind: &str, _old: &Value, _new: &Value) -> Vec<Cause> {
    Vec::new()
}
pub fn validate_label_selector(_sel: &Value, _path: &str) -> Vec<Cause> {
    Vec::new()
}
