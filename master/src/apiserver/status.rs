//! Errors of the API server as Kubernetes `Status` objects, with upstream's reasons,
//! codes and messages, so that kubectl and client libraries print what they print
//! against a real cluster.

use api::resources::Resource;
use serde_json::{json, Value};

/// One field error of a 422 Invalid, as `details.causes[]`.
#[derive(Clone, Debug)]
pub struct FieldCause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// An API error: the HTTP code and the `Status` body.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(res: &Resource, name: &str, kind_field: &str) -> Value {
    json!({ "name": name, "group": res.group, "kind": kind_field })
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(res: &Resource, name: &str) -> Self {
        Self {
            details: Some(details(res, name, res.plural)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{}\" not found", res.qualified_plural(), name),
            )
        }
    }

    pub fn namespace_not_found(name: &str) -> Self {
        Self {
            details: Some(json!({ "name": name, "kind": "namespaces" })),
            ..Self::new(404, "NotFound", format!("namespaces \"{name}\" not found"))
        }
    }

    pub fn already_exists(res: &Resource, name: &str) -> Self {
        Self {
            details: Some(details(res, name, res.plural)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{}\" already exists", res.qualified_plural(), name),
            )
        }
    }

    pub fn conflict(res: &Resource, name: &str) -> Self {
        Self {
            details: Some(details(res, name, res.plural)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                     please apply your changes to the latest version and try again",
                    res.qualified_plural(),
                    name
                ),
            )
        }
    }

    /// A conflict with a custom explanation (preconditions, server-side apply).
    pub fn conflict_msg(res: &Resource, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(res, name, res.plural)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    res.qualified_plural(),
                    name,
                    why
                ),
            )
        }
    }

    pub fn invalid(res: &Resource, name: &str, causes: Vec<FieldCause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let joined = if summary.len() == 1 {
            summary[0].clone()
        } else {
            format!("[{}]", summary.join(", "))
        };
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        Self {
            details: Some(json!({
                "name": name, "group": res.group, "kind": res.kind, "causes": causes_json
            })),
            ..Self::new(
                422,
                "Invalid",
                format!("{} \"{}\" is invalid: {}", res.kind, name, joined),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn gone(requested: i64, oldest: i64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    pub fn unsupported_media(content_type: &str, accepted: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}{}",
                accepted.join(", "),
                if content_type.is_empty() { String::new() } else { format!(" (got {content_type})") }
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// The `Status` object of this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        status
    }
}

/// The `Status` of a successful delete of an object that is not returned whole.
pub fn success_status(res: &Resource, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": { "name": name, "group": res.group, "kind": res.plural, "uid": uid },
    })
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_upstream() {
        let pods = api::resources::find("", "v1", "pods").unwrap();
        let e = ApiError::not_found(pods, "x");
        assert_eq!(e.message, "pods \"x\" not found");
        assert_eq!(e.to_status()["details"]["kind"], "pods");
        let deploy = api::resources::find("apps", "v1", "deployments").unwrap();
        let e = ApiError::conflict(deploy, "web");
        assert!(e
            .message
            .starts_with("Operation cannot be fulfilled on deployments.apps \"web\""));
        let e = ApiError::invalid(
            pods,
            "p",
            vec![FieldCause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.containers[0].image".into(),
            }],
        );
        assert_eq!(
            e.message,
            "Pod \"p\" is invalid: spec.containers[0].image: Required value"
        );
        assert_eq!(e.to_status()["code"], 422);
    }
}
