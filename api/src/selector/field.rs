//! Field selectors (`?fieldSelector=metadata.name=x,spec.nodeName!=n`): parsing with
//! upstream's escapes (`\,` `\=` `\\`), the per-kind table of supported fields with
//! upstream's error text, and matching against an object's JSON by dotted path.

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// `=`/`==` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    Equals,
    NotEquals,
}

/// One `field op value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    pub field: String,
    pub op: FieldOp,
    /// The value with escapes removed.
    pub value: String,
}

/// A conjunction of terms; empty selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// Splits on commas not preceded by a backslash, keeping escapes in the pieces.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==`, `=` tried in that order at each place).
fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOp::NotEquals),
            ("==", FieldOp::Equals),
            ("=", FieldOp::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::new(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::new(format!(
                    "invalid field selector: unescaped character in value: {c}"
                )))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::new(
            "invalid field selector: invalid escape sequence: \\",
        ));
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The fields upstream lets each kind be selected by, beyond `metadata.name` and
/// `metadata.namespace`. `None`: the kind has no conversion of its own and uses
/// upstream's default (name and namespace only, with a different error text).
fn supported_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["metadata.name", "metadata.namespace", "type"],
        "Service" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.clusterIP",
            "spec.type",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Namespace" => &["metadata.name", "status.phase"],
        "ReplicationController" | "ReplicaSet" => {
            &["metadata.name", "metadata.namespace", "status.replicas"]
        }
        "Job" => &["metadata.name", "metadata.namespace", "status.successful"],
        "CertificateSigningRequest" => &["metadata.name", "spec.signerName"],
        _ => return None,
    })
}

fn json_scalar(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The value a field selector compares for `field` of an object of `kind`, as upstream's
/// per-kind `ToSelectableFields`: a missing field is `""`, booleans are `true`/`false`,
/// and the few fields upstream derives or defaults are derived the same way
/// (`spec.hostNetwork` and `spec.unschedulable` default to `false`, `status.podIP` is the
/// first of `status.podIPs`, an Event's `source` is `source.component`, replica counts
/// default to `0`).
pub fn field_value(kind: &str, obj: &Value, field: &str) -> String {
    match (kind, field) {
        ("Pod", "spec.hostNetwork") | ("Node", "spec.unschedulable") => {
            let ptr = format!("/{}", field.replace('.', "/"));
            let b = obj.pointer(&ptr).and_then(Value::as_bool).unwrap_or(false);
            return b.to_string();
        }
        ("Pod", "status.podIP") => {
            if let Some(ip) = obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
                return ip.to_string();
            }
        }
        ("Pod", "status.podIPs") => {
            let ips: Vec<&str> = obj
                .pointer("/status/podIPs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.get("ip").and_then(Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            return ips.join(",");
        }
        ("Event", "source") => {
            return json_scalar(obj.pointer("/source/component"));
        }
        ("Event", "reportingComponent") => {
            return json_scalar(obj.get("reportingComponent"));
        }
        ("ReplicaSet" | "ReplicationController", "status.replicas")
        | ("Job", "status.successful") => {
            let ptr = format!("/{}", field.replace('.', "/"));
            return obj
                .pointer(&ptr)
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string();
        }
        _ => {}
    }
    let mut cur = Some(obj);
    for part in field.split('.') {
        cur = cur.and_then(|v| v.get(part));
    }
    json_scalar(cur)
}

impl FieldSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        FieldSelector::default()
    }

    /// Parses a `?fieldSelector=` string as upstream's `fields.ParseSelector`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((field, op, rhs)) = split_term(part) else {
                return Err(SelectorError::new(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// A selector of one `field=value` term.
    pub fn one_term_equal(field: &str, value: &str) -> Self {
        FieldSelector {
            terms: vec![FieldTerm {
                field: field.to_string(),
                op: FieldOp::Equals,
                value: value.to_string(),
            }],
        }
    }

    /// The terms, in upstream's (sorted) order.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Whether this selector matches every object.
    pub fn is_everything(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a `field=value` term requires, if any (e.g. `spec.nodeName` for a
    /// kubelet's watch).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.op == FieldOp::Equals)
            .map(|t| t.value.as_str())
    }

    /// Checks that every field may be selected on for `kind`, with upstream's error:
    /// `field label not supported: <f>` for kinds with their own fields, or
    /// `"<f>" is not a known field selector: only "metadata.name", "metadata.namespace"`
    /// for the rest.
    pub fn validate_for(&self, kind: &str) -> Result<(), SelectorError> {
        for t in &self.terms {
            match supported_fields(kind) {
                Some(list) => {
                    // Old clients send spec.host for spec.nodeName.
                    let legacy_host = kind == "Pod" && t.field == "spec.host";
                    if !legacy_host && !list.contains(&t.field.as_str()) {
                        return Err(SelectorError::new(format!(
                            "field label not supported: {}",
                            t.field
                        )));
                    }
                }
                None => {
                    if t.field != "metadata.name" && t.field != "metadata.namespace" {
                        return Err(SelectorError::new(format!(
                            "\"{}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                            t.field
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the object matches every term. The kind is read from the object's `kind`.
    pub fn matches(&self, obj: &Value) -> bool {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        self.matches_kind(kind, obj)
    }

    /// Whether an object of `kind` matches every term (for objects stored without `kind`).
    pub fn matches_kind(&self, kind: &str, obj: &Value) -> bool {
        self.terms.iter().all(|t| {
            let field = if kind == "Pod" && t.field == "spec.host" {
                "spec.nodeName"
            } else {
                t.field.as_str()
            };
            let actual = field_value(kind, obj, field);
            match t.op {
                FieldOp::Equals => actual == t.value,
                FieldOp::NotEquals => actual != t.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    /// Terms joined by `,`, values escaped again.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match t.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{op}{}", t.field, escape_value(&t.value))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FieldSelector {
    type Err = SelectorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FieldSelector::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fs(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_terms_and_escapes() {
        assert!(fs("").is_everything());
        assert!(fs(",").is_everything());
        let s = fs("spec.nodeName=n1,metadata.name!=x");
        assert_eq!(s.terms().len(), 2);
        assert_eq!(s.to_string(), "metadata.name!=x,spec.nodeName=n1");
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("metadata.name"), None);
        assert_eq!(fs("a==b").terms()[0].value, "b");
        assert_eq!(fs("a=").terms()[0].value, "");
        let esc = fs(r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(esc.terms()[0].value, r"a,b=c\d");
        assert_eq!(esc.to_string(), r"metadata.name=a\,b\=c\\d,x=y");
        assert_eq!(fs(&esc.to_string()), esc);
    }

    #[test]
    fn rejects_like_upstream() {
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err().message,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().message,
            "invalid field selector: unescaped character in value: ="
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\x").unwrap_err().message,
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse(r"a=b\").unwrap_err().message,
            r"invalid field selector: invalid escape sequence: \"
        );
    }

    #[test]
    fn validates_fields_per_kind() {
        assert!(fs("spec.nodeName=n,status.phase=Running")
            .validate_for("Pod")
            .is_ok());
        assert!(fs("spec.host=n").validate_for("Pod").is_ok());
        assert!(fs("involvedObject.name=web,involvedObject.kind=Pod")
            .validate_for("Event")
            .is_ok());
        assert!(fs("type=kubernetes.io/tls").validate_for("Secret").is_ok());
        assert!(fs("spec.unschedulable=false").validate_for("Node").is_ok());
        assert!(fs("status.phase=Active").validate_for("Namespace").is_ok());
        assert!(fs("status.replicas=0").validate_for("ReplicaSet").is_ok());
        assert!(fs("metadata.namespace=default")
            .validate_for("Deployment")
            .is_ok());
        assert_eq!(
            fs("spec.foo=x").validate_for("Pod").unwrap_err().message,
            "field label not supported: spec.foo"
        );
        assert_eq!(
            fs("metadata.namespace=x")
                .validate_for("Node")
                .unwrap_err()
                .message,
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            fs("spec.replicas=1").validate_for("Deployment").unwrap_err().message,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
    }

    #[test]
    fn matches_objects_by_path() {
        let pod = json!({
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.244.0.5"}]}
        });
        assert!(fs("metadata.name=web").matches(&pod));
        assert!(fs("spec.nodeName=n1,status.phase=Running").matches(&pod));
        assert!(!fs("spec.nodeName=n2").matches(&pod));
        assert!(fs("spec.nodeName!=n2").matches(&pod));
        assert!(fs("spec.host=n1").matches(&pod));
        assert!(fs("spec.hostNetwork=false").matches(&pod));
        assert!(fs("status.podIP=10.244.0.5").matches(&pod));
        assert!(fs("status.nominatedNodeName=").matches(&pod));
        assert!(fs("spec.schedulerName!=x").matches(&pod));
        let unscheduled = json!({"kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
        assert!(fs("spec.nodeName=").matches(&unscheduled));
        assert!(!fs("spec.nodeName!=").matches(&unscheduled));
        let hostnet = json!({"kind": "Pod", "spec": {"hostNetwork": true}});
        assert!(fs("spec.hostNetwork=true").matches(&hostnet));
        let node =
            json!({"kind": "Node", "metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert!(fs("spec.unschedulable=true").matches(&node));
        assert!(fs("spec.unschedulable=false").matches(&json!({"kind": "Node", "spec": {}})));
        let ev = json!({
            "kind": "Event",
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
            "source": {"component": "kubelet"},
            "type": "Normal"
        });
        assert!(fs("involvedObject.name=web,involvedObject.kind=Pod,source=kubelet").matches(&ev));
        assert!(fs("type!=Warning").matches(&ev));
        let rs = json!({"kind": "ReplicaSet", "status": {}});
        assert!(fs("status.replicas=0").matches(&rs));
        assert!(!fs("status.replicas!=0").matches(&rs));
        // Without a kind in the object the caller names it.
        let bare = json!({"spec": {"unschedulable": false}});
        assert!(fs("spec.unschedulable=false").matches_kind("Node", &bare));
    }
}
