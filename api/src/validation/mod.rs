//! Validation as the API server does it before storing an object: the string checks for
//! names, labels and keys (`names`), and the per-kind object rules with their field paths
//! (`objects`). Results are [`Cause`]s carrying upstream's field paths, reasons and
//! messages, ready for a 422 `Status` (`details.causes`). Defaulting (filling in
//! `protocol: TCP`, `restartPolicy: Always`, generated names) is not done here: absent
//! defaulted fields are accepted as if defaulted.

mod names;
mod objects;

pub use names::{
    empty_error, inclusive_range_error, is_config_map_key, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num, max_len_error, regex_error, validate_annotations_size,
    DNS1035_LABEL_MAX_LENGTH, DNS1123_LABEL_MAX_LENGTH, DNS1123_SUBDOMAIN_MAX_LENGTH,
    LABEL_VALUE_MAX_LENGTH, QUALIFIED_NAME_MAX_LENGTH, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES,
};
pub use objects::{validate_label_selector, validate_object, validate_update};

use std::fmt;

/// The kind of a field error; its string is the `reason` of a `StatusCause`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseType {
    FieldValueRequired,
    FieldValueInvalid,
    FieldValueDuplicate,
    FieldValueNotSupported,
    FieldValueTooLong,
    FieldValueForbidden,
    FieldValueNotFound,
}

/// The `reason` string upstream puts in `Status.details.causes[].reason`.
pub fn cause_type_str(t: &CauseType) -> &'static str {
    match t {
        CauseType::FieldValueRequired => "FieldValueRequired",
        CauseType::FieldValueInvalid => "FieldValueInvalid",
        CauseType::FieldValueDuplicate => "FieldValueDuplicate",
        CauseType::FieldValueNotSupported => "FieldValueNotSupported",
        CauseType::FieldValueTooLong => "FieldValueTooLong",
        CauseType::FieldValueForbidden => "FieldValueForbidden",
        CauseType::FieldValueNotFound => "FieldValueNotFound",
    }
}

/// The words that start a message of this type (`Required value`, `Invalid value`, …).
fn type_words(t: CauseType) -> &'static str {
    match t {
        CauseType::FieldValueRequired => "Required value",
        CauseType::FieldValueInvalid => "Invalid value",
        CauseType::FieldValueDuplicate => "Duplicate value",
        CauseType::FieldValueNotSupported => "Unsupported value",
        CauseType::FieldValueTooLong => "Too long",
        CauseType::FieldValueForbidden => "Forbidden",
        CauseType::FieldValueNotFound => "Not found",
    }
}

/// One field error: what upstream calls a `field.Error`, shaped as a `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The field path, e.g. `metadata.name`, `spec.containers[0].image`.
    pub field: String,
    pub reason: CauseType,
    /// The message without the field (upstream's `ErrorBody()`), e.g. `Required value`.
    pub message: String,
}

impl fmt::Display for Cause {
    /// `field: message`, as upstream prints a field error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A value shown in a message, printed the way Go's `%q` / `%v` / `%#v` would.
#[derive(Debug, Clone)]
pub enum BadValue<'a> {
    /// Quoted: `"Foo"`.
    Str(&'a str),
    /// Bare number: `70000`.
    Int(i64),
    /// Pre-rendered text, printed as is (Go's `%#v` of a struct or map).
    Raw(String),
}

impl fmt::Display for BadValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::Str(s) => f.write_str(&go_quote(s)),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Raw(s) => f.write_str(s),
        }
    }
}

/// Go's `strconv.Quote` for the characters that occur in practice.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn with_detail(head: String, detail: &str) -> String {
    if detail.is_empty() {
        head
    } else {
        format!("{head}: {detail}")
    }
}

impl Cause {
    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueRequired,
            message: with_detail(type_words(CauseType::FieldValueRequired).into(), detail),
        }
    }

    /// `Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: BadValue<'_>, detail: &str) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueInvalid,
            message: with_detail(format!("Invalid value: {value}"), detail),
        }
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: BadValue<'_>) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueDuplicate,
            message: format!("Duplicate value: {value}"),
        }
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: BadValue<'_>, valid: &[&str]) -> Cause {
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueNotSupported,
            message: with_detail(format!("Unsupported value: {value}"), &detail),
        }
    }

    /// `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueForbidden,
            message: with_detail(type_words(CauseType::FieldValueForbidden).into(), detail),
        }
    }

    /// `Too long: must have at most N bytes`.
    pub fn too_long(field: impl Into<String>, max: usize) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueTooLong,
            message: format!("Too long: must have at most {max} bytes"),
        }
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: BadValue<'_>) -> Cause {
        Cause {
            field: field.into(),
            reason: CauseType::FieldValueNotFound,
            message: format!("Not found: {value}"),
        }
    }
}

/// The message of a 422 Invalid `Status`, as upstream's `NewInvalid` builds it:
/// `Pod "web" is invalid: spec.containers[0].image: Required value` (one cause) or
/// `... is invalid: [a: x, b: y]` (several; repeated lines dropped). `qualified_kind` is
/// `Pod` for the core group, `Deployment.apps` otherwise.
pub fn invalid_message(qualified_kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for c in causes {
        let line = c.to_string();
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    let name = go_quote(name);
    match lines.len() {
        0 => format!("{qualified_kind} {name} is invalid"),
        1 => format!("{qualified_kind} {name} is invalid: {}", lines[0]),
        _ => format!("{qualified_kind} {name} is invalid: [{}]", lines.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_shaped_like_upstream_field_errors() {
        assert_eq!(
            Cause::required("metadata.name", "").message,
            "Required value"
        );
        assert_eq!(
            Cause::required("metadata.name", "name or generateName is required").to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            Cause::invalid(
                "spec.ports[0].port",
                BadValue::Int(70000),
                "must be between 1 and 65535, inclusive"
            )
            .message,
            "Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            Cause::invalid("metadata.name", BadValue::Str("Foo\""), "x").message,
            "Invalid value: \"Foo\\\"\": x"
        );
        assert_eq!(
            Cause::not_supported("spec.restartPolicy", BadValue::Str("Sometimes"), &["Always", "OnFailure", "Never"]).message,
            "Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\""
        );
        assert_eq!(
            Cause::duplicate("a", BadValue::Str("web")).message,
            "Duplicate value: \"web\""
        );
        assert_eq!(Cause::forbidden("spec", "no").message, "Forbidden: no");
        assert_eq!(
            Cause::too_long("metadata.annotations", 262144).message,
            "Too long: must have at most 262144 bytes"
        );
        assert_eq!(
            Cause::not_found("x", BadValue::Str("v")).message,
            "Not found: \"v\""
        );
        assert_eq!(
            cause_type_str(&CauseType::FieldValueRequired),
            "FieldValueRequired"
        );
        assert_eq!(
            cause_type_str(&CauseType::FieldValueNotSupported),
            "FieldValueNotSupported"
        );
        assert_eq!(
            cause_type_str(&CauseType::FieldValueTooLong),
            "FieldValueTooLong"
        );
    }

    #[test]
    fn invalid_status_message_joins_causes() {
        let one = [Cause::required("spec.containers[0].image", "")];
        assert_eq!(
            invalid_message("Pod", "web", &one),
            "Pod \"web\" is invalid: spec.containers[0].image: Required value"
        );
        let two = [
            Cause::required("spec.containers", ""),
            Cause::required("spec.containers", ""),
            Cause::required("spec.selector", ""),
        ];
        assert_eq!(
            invalid_message("Deployment.apps", "d", &two),
            "Deployment.apps \"d\" is invalid: [spec.containers: Required value, spec.selector: Required value]"
        );
        assert_eq!(invalid_message("Pod", "x", &[]), "Pod \"x\" is invalid");
    }
}
