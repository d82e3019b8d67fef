//! Per-kind object validation on JSON objects, following upstream's `ValidateObjectMeta`,
//! `ValidatePodSpec`, `ValidateDeployment`, `ValidateReplicaSet`, `ValidateService`,
//! `ValidateConfigMap`, `ValidateSecret` and the update rules (immutable selectors, pod
//! spec, service cluster IPs). Field paths and messages are upstream's. Covers the fields
//! bosun uses, not every field upstream checks (volume sources, probes, affinity, security
//! contexts are not validated).

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::names::{
    inclusive_range_error, is_config_map_key, is_dns1035_label, is_dns1123_label,
    is_dns1123_subdomain, is_qualified_name, is_valid_label_value, is_valid_port_name,
    is_valid_port_num, regex_error, validate_annotations_size, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES,
};
use super::{go_quote, BadValue, Cause};
use crate::quantity::{self, Quantity};
use crate::resources::{Scope, RESOURCES};
use crate::selector::LabelSelector;

static NULL: Value = Value::Null;

const NEGATIVE_MSG: &str = "must be greater than or equal to 0";
const IMMUTABLE_MSG: &str = "field is immutable";
/// Upstream's limit on a ConfigMap's or Secret's data (1 MiB).
const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// The fields of a pod spec an update may change, as upstream lists them.
const POD_UPDATABLE_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

fn get<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key).unwrap_or(&NULL)
}

fn get_str<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn get_arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Go's `%#v` of a `map[string]string`.
fn go_map(v: &Value) -> String {
    match v.as_object() {
        None => "map[string]string(nil)".to_string(),
        Some(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            let items: Vec<String> = sorted
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        go_quote(k),
                        go_quote(v.as_str().unwrap_or_default())
                    )
                })
                .collect();
            format!("map[string]string{{{}}}", items.join(", "))
        }
    }
}

/// Go's `%#v` of a `v1.LabelSelector`, as it appears in upstream's messages.
fn go_label_selector(v: &Value) -> String {
    let exprs = match v.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match e.get("values").and_then(Value::as_array) {
                        None => "[]string(nil)".to_string(),
                        Some(vals) => format!(
                            "[]string{{{}}}",
                            vals.iter()
                                .map(|x| go_quote(x.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{values}}}",
                        go_quote(get_str(e, "key").unwrap_or_default()),
                        go_quote(get_str(e, "operator").unwrap_or_default())
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_map(get(v, "matchLabels"))
    )
}

fn scope_of(kind: &str) -> Option<Scope> {
    RESOURCES.iter().find(|r| r.kind == kind).map(|r| r.scope)
}

type NameCheck = fn(&str) -> Vec<String>;

fn name_check(kind: &str) -> NameCheck {
    match kind {
        "Namespace" => is_dns1123_label,
        "Service" => is_dns1035_label,
        _ => is_dns1123_subdomain,
    }
}

/// Upstream's `maskTrailingDash`: a generateName may end in `-`.
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        if let Some(head) = name.get(..name.len() - 2) {
            return format!("{head}a");
        }
    }
    name.to_string()
}

fn validate_labels(labels: &Value, path: &str, errs: &mut Vec<Cause>) {
    let Some(map) = labels.as_object() else {
        return;
    };
    for (k, v) in map {
        for m in is_qualified_name(k) {
            errs.push(Cause::invalid(path, BadValue::Str(k), &m));
        }
        let v = v.as_str().unwrap_or_default();
        for m in is_valid_label_value(v) {
            errs.push(Cause::invalid(path, BadValue::Str(v), &m));
        }
    }
}

fn validate_annotations(annotations: &Value, path: &str, errs: &mut Vec<Cause>) {
    let Some(map) = annotations.as_object() else {
        return;
    };
    for k in map.keys() {
        for m in is_qualified_name(&k.to_lowercase()) {
            errs.push(Cause::invalid(path, BadValue::Str(k), &m));
        }
    }
    let pairs = map
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()));
    if validate_annotations_size(pairs).is_err() {
        errs.push(Cause::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT_BYTES));
    }
}

fn validate_object_meta(kind: &str, meta: &Value, errs: &mut Vec<Cause>) {
    let check = name_check(kind);
    let name = get_str(meta, "name").unwrap_or_default();
    let generate = get_str(meta, "generateName").unwrap_or_default();
    if !generate.is_empty() {
        for m in check(&mask_trailing_dash(generate)) {
            errs.push(Cause::invalid(
                "metadata.generateName",
                BadValue::Str(generate),
                &m,
            ));
        }
    }
    if name.is_empty() {
        // With generateName the server makes the name before storing.
        if generate.is_empty() {
            errs.push(Cause::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
    } else {
        for m in check(name) {
            errs.push(Cause::invalid("metadata.name", BadValue::Str(name), &m));
        }
    }
    let ns = get_str(meta, "namespace").unwrap_or_default();
    if !ns.is_empty() {
        if scope_of(kind) == Some(Scope::Cluster) {
            errs.push(Cause::forbidden(
                "metadata.namespace",
                "not allowed on this type",
            ));
        } else {
            for m in is_dns1123_label(ns) {
                errs.push(Cause::invalid("metadata.namespace", BadValue::Str(ns), &m));
            }
        }
    }
    validate_labels(get(meta, "labels"), "metadata.labels", errs);
    validate_annotations(get(meta, "annotations"), "metadata.annotations", errs);
}

/// Checks a `metav1.LabelSelector` object at `path` (`spec.selector`), as upstream's
/// `ValidateLabelSelector`.
pub fn validate_label_selector(sel: &Value, path: &str) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, e) in get_arr(sel, "matchExpressions").iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values = get_arr(e, "values");
        match get_str(e, "operator").unwrap_or_default() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(Cause::required(
                        format!("{p}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(Cause::forbidden(
                        format!("{p}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(Cause::invalid(
                format!("{p}.operator"),
                BadValue::Str(other),
                "not a valid selector operator",
            )),
        }
        let key = get_str(e, "key").unwrap_or_default();
        for m in is_qualified_name(key) {
            errs.push(Cause::invalid(format!("{p}.key"), BadValue::Str(key), &m));
        }
        for (j, v) in values.iter().enumerate() {
            let v = v.as_str().unwrap_or_default();
            for m in is_valid_label_value(v) {
                errs.push(Cause::invalid(
                    format!("{p}.values[{j}]"),
                    BadValue::Str(v),
                    &m,
                ));
            }
        }
    }
    validate_labels(
        get(sel, "matchLabels"),
        &format!("{path}.matchLabels"),
        &mut errs,
    );
    errs
}

fn validate_enum(v: &Value, key: &str, path: &str, valid: &[&str], errs: &mut Vec<Cause>) {
    // Absent fields are defaulted by the server; only explicit values are checked.
    let Some(s) = get_str(v, key) else {
        return;
    };
    let p = format!("{path}.{key}");
    if s.is_empty() {
        errs.push(Cause::required(p, ""));
    } else if !valid.contains(&s) {
        errs.push(Cause::not_supported(p, BadValue::Str(s), valid));
    }
}

fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

fn parse_resources(list: &Value, path: &str, errs: &mut Vec<Cause>) -> BTreeMap<String, Quantity> {
    let mut out = BTreeMap::new();
    let Some(map) = list.as_object() else {
        return out;
    };
    for (name, raw) in map {
        let p = format!("{path}[{name}]");
        for m in is_qualified_name(name) {
            errs.push(Cause::invalid(&p, BadValue::Raw(name.clone()), &m));
        }
        if !name.contains('/') && !is_standard_container_resource(name) {
            errs.push(Cause::invalid(
                &p,
                BadValue::Raw(name.clone()),
                "must be a standard resource for containers",
            ));
        }
        match quantity::from_value(raw) {
            Err(e) => {
                let shown = raw
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| raw.to_string());
                errs.push(Cause::invalid(&p, BadValue::Str(&shown), &e.to_string()));
            }
            Ok(q) => {
                if q.is_negative() {
                    errs.push(Cause::invalid(
                        &p,
                        BadValue::Str(&q.to_string()),
                        NEGATIVE_MSG,
                    ));
                } else if name.contains('/') && q.nanos() % 1_000_000_000 != 0 {
                    errs.push(Cause::invalid(
                        &p,
                        BadValue::Str(&q.to_string()),
                        "must be an integer",
                    ));
                }
                out.insert(name.clone(), q);
            }
        }
    }
    out
}

fn validate_resources(res: &Value, path: &str, errs: &mut Vec<Cause>) {
    let limits = parse_resources(get(res, "limits"), &format!("{path}.limits"), errs);
    let requests = parse_resources(get(res, "requests"), &format!("{path}.requests"), errs);
    for (name, req) in &requests {
        if let Some(limit) = limits.get(name) {
            if req > limit {
                errs.push(Cause::invalid(
                    format!("{path}.requests[{name}]"),
                    BadValue::Str(&req.to_string()),
                    &format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
        }
    }
}

fn validate_container(
    c: &Value,
    path: &str,
    names: &mut HashSet<String>,
    volumes: &HashSet<String>,
    errs: &mut Vec<Cause>,
) {
    let name = get_str(c, "name").unwrap_or_default();
    let name_path = format!("{path}.name");
    if name.is_empty() {
        errs.push(Cause::required(&name_path, ""));
    } else {
        for m in is_dns1123_label(name) {
            errs.push(Cause::invalid(&name_path, BadValue::Str(name), &m));
        }
        if !names.insert(name.to_string()) {
            errs.push(Cause::duplicate(&name_path, BadValue::Str(name)));
        }
    }
    let image = get_str(c, "image").unwrap_or_default();
    if image.is_empty() {
        errs.push(Cause::required(format!("{path}.image"), ""));
    } else if image.trim() != image {
        errs.push(Cause::invalid(
            format!("{path}.image"),
            BadValue::Str(image),
            "must not have leading or trailing whitespace",
        ));
    }
    let mut port_names = HashSet::new();
    for (i, port) in get_arr(c, "ports").iter().enumerate() {
        let pp = format!("{path}.ports[{i}]");
        let pname = get_str(port, "name").unwrap_or_default();
        if !pname.is_empty() {
            let msgs = is_valid_port_name(pname);
            for m in &msgs {
                errs.push(Cause::invalid(
                    format!("{pp}.name"),
                    BadValue::Str(pname),
                    m,
                ));
            }
            if msgs.is_empty() && !port_names.insert(pname.to_string()) {
                errs.push(Cause::duplicate(format!("{pp}.name"), BadValue::Str(pname)));
            }
        }
        match port
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(0)
        {
            0 => errs.push(Cause::required(format!("{pp}.containerPort"), "")),
            n => {
                for m in is_valid_port_num(n) {
                    errs.push(Cause::invalid(
                        format!("{pp}.containerPort"),
                        BadValue::Int(n),
                        &m,
                    ));
                }
            }
        }
        if let Some(n) = port
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            for m in is_valid_port_num(n) {
                errs.push(Cause::invalid(
                    format!("{pp}.hostPort"),
                    BadValue::Int(n),
                    &m,
                ));
            }
        }
        validate_enum(port, "protocol", &pp, &["SCTP", "TCP", "UDP"], errs);
    }
    for (i, env) in get_arr(c, "env").iter().enumerate() {
        if get_str(env, "name").unwrap_or_default().is_empty() {
            errs.push(Cause::required(format!("{path}.env[{i}].name"), ""));
        }
    }
    for (i, mount) in get_arr(c, "volumeMounts").iter().enumerate() {
        let mp = format!("{path}.volumeMounts[{i}]");
        let mname = get_str(mount, "name").unwrap_or_default();
        if mname.is_empty() {
            errs.push(Cause::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(mname) {
            errs.push(Cause::not_found(format!("{mp}.name"), BadValue::Str(mname)));
        }
        if get_str(mount, "mountPath").unwrap_or_default().is_empty() {
            errs.push(Cause::required(format!("{mp}.mountPath"), ""));
        }
    }
    validate_enum(
        c,
        "imagePullPolicy",
        path,
        &["Always", "IfNotPresent", "Never"],
        errs,
    );
    validate_resources(get(c, "resources"), &format!("{path}.resources"), errs);
}

/// Validates a pod spec at `path` (`spec`, or `spec.template.spec` in a workload).
fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<Cause>) {
    let mut volumes = HashSet::new();
    for (i, vol) in get_arr(spec, "volumes").iter().enumerate() {
        let p = format!("{path}.volumes[{i}].name");
        let name = get_str(vol, "name").unwrap_or_default();
        if name.is_empty() {
            errs.push(Cause::required(&p, ""));
            continue;
        }
        for m in is_dns1123_label(name) {
            errs.push(Cause::invalid(&p, BadValue::Str(name), &m));
        }
        if !volumes.insert(name.to_string()) {
            errs.push(Cause::duplicate(&p, BadValue::Str(name)));
        }
    }
    let containers = get_arr(spec, "containers");
    let mut names = HashSet::new();
    if containers.is_empty() {
        errs.push(Cause::required(format!("{path}.containers"), ""));
    }
    for (i, c) in containers.iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.containers[{i}]"),
            &mut names,
            &volumes,
            errs,
        );
    }
    for (i, c) in get_arr(spec, "initContainers").iter().enumerate() {
        validate_container(
            c,
            &format!("{path}.initContainers[{i}]"),
            &mut names,
            &volumes,
            errs,
        );
    }
    validate_enum(
        spec,
        "restartPolicy",
        path,
        &["Always", "OnFailure", "Never"],
        errs,
    );
    validate_enum(
        spec,
        "dnsPolicy",
        path,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        errs,
    );
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(i32::MAX)).contains(&n) {
            errs.push(Cause::invalid(
                format!("{path}.activeDeadlineSeconds"),
                BadValue::Int(n),
                &inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for (key, check) in [
        ("nodeName", is_dns1123_subdomain as fn(&str) -> Vec<String>),
        ("serviceAccountName", is_dns1123_subdomain),
        ("hostname", is_dns1123_label),
        ("subdomain", is_dns1123_label),
    ] {
        if let Some(v) = get_str(spec, key).filter(|v| !v.is_empty()) {
            for m in check(v) {
                errs.push(Cause::invalid(
                    format!("{path}.{key}"),
                    BadValue::Str(v),
                    &m,
                ));
            }
        }
    }
    validate_labels(
        get(spec, "nodeSelector"),
        &format!("{path}.nodeSelector"),
        errs,
    );
}

fn nonnegative(v: &Value, key: &str, path: &str, errs: &mut Vec<Cause>) {
    if let Some(n) = v.get(key).and_then(Value::as_i64).filter(|n| *n < 0) {
        errs.push(Cause::invalid(
            format!("{path}.{key}"),
            BadValue::Int(n),
            NEGATIVE_MSG,
        ));
    }
}

/// `maxSurge`/`maxUnavailable`: an integer ≥ 0 or a percentage. Returns the amount when
/// known (percent or count) so the caller can check both-zero.
fn int_or_percent(v: &Value, path: &str, errs: &mut Vec<Cause>) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(Cause::invalid(path, BadValue::Int(n), NEGATIVE_MSG));
            }
            Some(n)
        }
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits {
                Some(d) => {
                    let pct: i64 = d.parse().unwrap_or(i64::MAX);
                    Some(pct)
                }
                None => {
                    errs.push(Cause::invalid(
                        path,
                        BadValue::Raw(s.clone()),
                        &regex_error(
                            "a valid percent string must be a numeric string followed by an ending '%'",
                            "[0-9]+%",
                            &["1%", "93%"],
                        ),
                    ));
                    None
                }
            }
        }
        _ => None,
    }
}

fn validate_strategy(strategy: &Value, errs: &mut Vec<Cause>) {
    let Some(kind) = get_str(strategy, "type") else {
        return;
    };
    match kind {
        "Recreate" => {
            if !get(strategy, "rollingUpdate").is_null() {
                errs.push(Cause::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            let ru = get(strategy, "rollingUpdate");
            let p = "spec.strategy.rollingUpdate";
            let unavailable = ru
                .get("maxUnavailable")
                .cloned()
                .unwrap_or(Value::from("25%"));
            let surge = ru.get("maxSurge").cloned().unwrap_or(Value::from("25%"));
            let u = int_or_percent(&unavailable, &format!("{p}.maxUnavailable"), errs);
            let s = int_or_percent(&surge, &format!("{p}.maxSurge"), errs);
            let shown = match &unavailable {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if u == Some(0) && s == Some(0) {
                errs.push(Cause::invalid(
                    format!("{p}.maxUnavailable"),
                    BadValue::Raw(shown.clone()),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
            if unavailable.is_string() && u.is_some_and(|pct| pct > 100) {
                errs.push(Cause::invalid(
                    format!("{p}.maxUnavailable"),
                    BadValue::Raw(shown),
                    "must not be greater than 100%",
                ));
            }
        }
        other => errs.push(Cause::not_supported(
            "spec.strategy.type",
            BadValue::Str(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

/// Deployment and ReplicaSet: replicas, selector, and a template that matches it.
fn validate_workload_spec(kind: &str, spec: &Value, errs: &mut Vec<Cause>) {
    nonnegative(spec, "replicas", "spec", errs);
    nonnegative(spec, "minReadySeconds", "spec", errs);
    if kind == "Deployment" {
        nonnegative(spec, "revisionHistoryLimit", "spec", errs);
        if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            let min_ready = spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if pds < 0 {
                errs.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    BadValue::Int(pds),
                    NEGATIVE_MSG,
                ));
            } else if pds <= min_ready {
                errs.push(Cause::invalid(
                    "spec.progressDeadlineSeconds",
                    BadValue::Int(pds),
                    "must be greater than minReadySeconds",
                ));
            }
        }
        validate_strategy(get(spec, "strategy"), errs);
    }
    let sel = get(spec, "selector");
    let template = get(spec, "template");
    let template_labels = template.pointer("/metadata/labels").unwrap_or(&NULL);
    if sel.is_null() {
        errs.push(Cause::required("spec.selector", ""));
    } else {
        errs.extend(validate_label_selector(sel, "spec.selector"));
        if get_arr(sel, "matchExpressions").is_empty()
            && get(sel, "matchLabels")
                .as_object()
                .is_none_or(|m| m.is_empty())
        {
            errs.push(Cause::invalid(
                "spec.selector",
                BadValue::Raw(go_label_selector(sel)),
                "empty selector is invalid for deployment",
            ));
        }
        match LabelSelector::from_k8s(sel) {
            Err(_) => errs.push(Cause::invalid(
                "spec.selector",
                BadValue::Raw(go_label_selector(sel)),
                "invalid label selector",
            )),
            Ok(selector) => {
                let labels = crate::selector::labels_of(template);
                if !selector.is_everything() && !selector.matches(&labels) {
                    errs.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        BadValue::Raw(go_map(template_labels)),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    validate_labels(template_labels, "spec.template.metadata.labels", errs);
    validate_annotations(
        template.pointer("/metadata/annotations").unwrap_or(&NULL),
        "spec.template.metadata.annotations",
        errs,
    );
    let pod_spec = get(template, "spec");
    validate_pod_spec(pod_spec, "spec.template.spec", errs);
    if let Some(rp) = get_str(pod_spec, "restartPolicy").filter(|rp| *rp != "Always") {
        errs.push(Cause::not_supported(
            "spec.template.spec.restartPolicy",
            BadValue::Str(rp),
            &["Always"],
        ));
    }
    if !get(pod_spec, "activeDeadlineSeconds").is_null() {
        errs.push(Cause::forbidden(
            "spec.template.spec.activeDeadlineSeconds",
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
}

fn validate_service(spec: &Value, errs: &mut Vec<Cause>) {
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    let svc_type = get_str(spec, "type").unwrap_or("ClusterIP");
    if !TYPES.contains(&svc_type) {
        errs.push(Cause::not_supported(
            "spec.type",
            BadValue::Str(svc_type),
            &TYPES,
        ));
    }
    let cluster_ip = get_str(spec, "clusterIP").unwrap_or_default();
    let ports = get_arr(spec, "ports");
    if ports.is_empty() && cluster_ip != "None" && svc_type != "ExternalName" {
        errs.push(Cause::required("spec.ports", ""));
    }
    if svc_type == "ExternalName" {
        if !cluster_ip.is_empty() || !get_arr(spec, "clusterIPs").is_empty() {
            errs.push(Cause::forbidden(
                "spec.clusterIPs",
                "may not be set for ExternalName services",
            ));
        }
        let cname = get_str(spec, "externalName").unwrap_or_default();
        let cname = cname.strip_suffix('.').unwrap_or(cname);
        if cname.is_empty() {
            errs.push(Cause::required("spec.externalName", ""));
        } else {
            for m in is_dns1123_subdomain(cname) {
                errs.push(Cause::invalid(
                    "spec.externalName",
                    BadValue::Str(cname),
                    &m,
                ));
            }
        }
    } else {
        let ips: Vec<&str> = match spec.get("clusterIPs").and_then(Value::as_array) {
            Some(list) => list
                .iter()
                .map(|v| v.as_str().unwrap_or_default())
                .collect(),
            None if !cluster_ip.is_empty() => vec![cluster_ip],
            None => Vec::new(),
        };
        for (i, ip) in ips.iter().enumerate() {
            if *ip != "None" && ip.parse::<std::net::IpAddr>().is_err() {
                errs.push(Cause::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    BadValue::Str(ip),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    let mut seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = get_str(port, "name").unwrap_or_default();
        if name.is_empty() {
            if require_name {
                errs.push(Cause::required(format!("{pp}.name"), ""));
            }
        } else {
            for m in is_dns1123_label(name) {
                errs.push(Cause::invalid(
                    format!("{pp}.name"),
                    BadValue::Str(name),
                    &m,
                ));
            }
            if !names.insert(name.to_string()) {
                errs.push(Cause::duplicate(format!("{pp}.name"), BadValue::Str(name)));
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        for m in is_valid_port_num(number) {
            errs.push(Cause::invalid(
                format!("{pp}.port"),
                BadValue::Int(number),
                &m,
            ));
        }
        validate_enum(port, "protocol", &pp, &["SCTP", "TCP", "UDP"], errs);
        match port.get("targetPort") {
            Some(Value::Number(n)) => {
                let n = n.as_i64().unwrap_or(-1);
                if n != 0 {
                    for m in is_valid_port_num(n) {
                        errs.push(Cause::invalid(
                            format!("{pp}.targetPort"),
                            BadValue::Int(n),
                            &m,
                        ));
                    }
                }
            }
            Some(Value::String(s)) => {
                for m in is_valid_port_name(s) {
                    errs.push(Cause::invalid(
                        format!("{pp}.targetPort"),
                        BadValue::Str(s),
                        &m,
                    ));
                }
            }
            _ => {}
        }
        if let Some(np) = port
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            if svc_type == "ClusterIP" {
                errs.push(Cause::forbidden(
                    format!("{pp}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else {
                for m in is_valid_port_num(np) {
                    errs.push(Cause::invalid(
                        format!("{pp}.nodePort"),
                        BadValue::Int(np),
                        &m,
                    ));
                }
            }
        }
        let protocol = get_str(port, "protocol").unwrap_or("TCP");
        if !seen.insert((protocol.to_string(), number)) {
            errs.push(Cause::duplicate(
                pp,
                BadValue::Raw(format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{number}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    go_quote(protocol)
                )),
            ));
        }
    }
    validate_labels(get(spec, "selector"), "spec.selector", errs);
    validate_enum(spec, "sessionAffinity", "spec", &["ClientIP", "None"], errs);
}

/// ConfigMap and Secret keys; returns the total data size.
fn validate_data_keys(map: &Value, path: &str, decoded: bool, errs: &mut Vec<Cause>) -> usize {
    let Some(m) = map.as_object() else {
        return 0;
    };
    let mut size = 0;
    for (k, v) in m {
        for msg in is_config_map_key(k) {
            errs.push(Cause::invalid(
                format!("{path}[{k}]"),
                BadValue::Str(k),
                &msg,
            ));
        }
        let len = v.as_str().map(str::len).unwrap_or_default();
        size += if decoded { len / 4 * 3 } else { len };
    }
    size
}

fn validate_config_map(obj: &Value, errs: &mut Vec<Cause>) {
    let mut size = validate_data_keys(get(obj, "data"), "data", false, errs);
    size += validate_data_keys(get(obj, "binaryData"), "binaryData", true, errs);
    if let (Some(data), Some(bin)) = (
        get(obj, "data").as_object(),
        get(obj, "binaryData").as_object(),
    ) {
        for k in bin.keys().filter(|k| data.contains_key(*k)) {
            errs.push(Cause::invalid(
                format!("binaryData[{k}]"),
                BadValue::Str(k),
                "duplicate of key present in data",
            ));
        }
    }
    if size > MAX_SECRET_SIZE {
        errs.push(Cause::too_long("", MAX_SECRET_SIZE));
    }
}

fn validate_secret(obj: &Value, errs: &mut Vec<Cause>) {
    let mut size = validate_data_keys(get(obj, "data"), "data", true, errs);
    size += validate_data_keys(get(obj, "stringData"), "data", false, errs);
    if size > MAX_SECRET_SIZE {
        errs.push(Cause::too_long("data", MAX_SECRET_SIZE));
    }
    let has =
        |k: &str| get(obj, "data").get(k).is_some() || get(obj, "stringData").get(k).is_some();
    let required: &[&str] = match get_str(obj, "type").unwrap_or_default() {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    };
    for k in required {
        if !has(k) {
            errs.push(Cause::required(format!("data[{k}]"), ""));
        }
    }
}

/// Validates an object of `kind` as the API server does on create, returning every
/// problem found (empty when valid). Kinds without rules of their own get the
/// `metadata` checks only.
pub fn validate_object(kind: &str, obj: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    validate_object_meta(kind, get(obj, "metadata"), &mut errs);
    let spec = get(obj, "spec");
    match kind {
        "Pod" => validate_pod_spec(spec, "spec", &mut errs),
        "Deployment" | "ReplicaSet" => validate_workload_spec(kind, spec, &mut errs),
        "Service" => validate_service(spec, &mut errs),
        "ConfigMap" => validate_config_map(obj, &mut errs),
        "Secret" => validate_secret(obj, &mut errs),
        _ => {}
    }
    errs
}

fn immutable(old: &Value, new: &Value, path: &str, shown: BadValue<'_>, errs: &mut Vec<Cause>) {
    if old != new {
        errs.push(Cause::invalid(path, shown, IMMUTABLE_MSG));
    }
}

fn strip_toleration_seconds(t: &Value) -> Value {
    let mut t = t.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("tolerationSeconds");
    }
    t
}

fn validate_pod_update(old: &Value, new: &Value, errs: &mut Vec<Cause>) {
    let old_spec = get(old, "spec");
    let new_spec = get(new, "spec");
    for key in ["containers", "initContainers"] {
        if get_arr(old_spec, key).len() != get_arr(new_spec, key).len() {
            errs.push(Cause::forbidden(
                format!("spec.{key}"),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    let mut munged = new_spec.clone();
    for key in ["containers", "initContainers"] {
        if let Some(list) = munged.get_mut(key).and_then(Value::as_array_mut) {
            for (i, c) in list.iter_mut().enumerate() {
                if let Some(obj) = c.as_object_mut() {
                    match old_spec.pointer(&format!("/{key}/{i}/image")) {
                        Some(img) => obj.insert("image".to_string(), img.clone()),
                        None => obj.remove("image"),
                    };
                }
            }
        }
    }
    let old_ads = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let new_ads = new_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    if let Some(o) = old_ads {
        match new_ads {
            None => errs.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                BadValue::Raw("null".to_string()),
                "must not update from a positive integer to nil value",
            )),
            Some(n) if n > o => errs.push(Cause::invalid(
                "spec.activeDeadlineSeconds",
                BadValue::Int(n),
                "must be less than or equal to previous value",
            )),
            _ => {}
        }
    }
    let old_tols = get_arr(old_spec, "tolerations");
    let new_tols: Vec<Value> = get_arr(new_spec, "tolerations")
        .iter()
        .map(strip_toleration_seconds)
        .collect();
    if old_tols
        .iter()
        .any(|t| !new_tols.contains(&strip_toleration_seconds(t)))
    {
        errs.push(Cause::forbidden(
            "spec.tolerations",
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_grace = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    let new_grace = new_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let Some(m) = munged.as_object_mut() {
        for key in ["activeDeadlineSeconds", "tolerations"] {
            match old_spec.get(key) {
                Some(v) => m.insert(key.to_string(), v.clone()),
                None => m.remove(key),
            };
        }
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            m.insert(
                "terminationGracePeriodSeconds".to_string(),
                Value::from(old_grace),
            );
        }
    }
    if &munged != old_spec {
        errs.push(Cause::forbidden(
            "spec",
            &format!("pod updates may not change fields other than {POD_UPDATABLE_FIELDS}"),
        ));
    }
}

fn validate_service_update(old: &Value, new: &Value, errs: &mut Vec<Cause>) {
    let ips = |v: &Value| -> Vec<String> {
        let spec = get(v, "spec");
        match spec.get("clusterIPs").and_then(Value::as_array) {
            Some(l) if !l.is_empty() => l
                .iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect(),
            _ => get_str(spec, "clusterIP")
                .filter(|s| !s.is_empty())
                .map(|s| vec![s.to_string()])
                .unwrap_or_default(),
        }
    };
    let is_external =
        |v: &Value| v.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    if is_external(old) || is_external(new) {
        return;
    }
    let (old_ips, new_ips) = (ips(old), ips(new));
    // An update that leaves clusterIP out keeps the allocated one (the server copies it).
    if new_ips.is_empty() {
        return;
    }
    for (i, ip) in old_ips.iter().enumerate() {
        if new_ips.get(i).is_some_and(|n| n != ip) {
            let shown = format!(
                "[]string{{{}}}",
                new_ips
                    .iter()
                    .map(|s| go_quote(s))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            errs.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                BadValue::Raw(shown),
                "may not change once set",
            ));
        }
    }
}

/// Validates an update of an object of `kind` from `old` to `new`: everything
/// [`validate_object`] checks on `new`, plus upstream's update rules (immutable name,
/// namespace and uid; immutable workload selectors; pod specs that may change only
/// images, `activeDeadlineSeconds` (lowered) and tolerations (added); service cluster
/// IPs fixed once set).
pub fn validate_update(kind: &str, old: &Value, new: &Value) -> Vec<Cause> {
    let mut errs = validate_object(kind, new);
    let (om, nm) = (get(old, "metadata"), get(new, "metadata"));
    for key in ["name", "namespace", "uid"] {
        let n = get_str(nm, key).unwrap_or_default();
        immutable(
            &Value::from(get_str(om, key).unwrap_or_default()),
            &Value::from(n),
            &format!("metadata.{key}"),
            BadValue::Str(n),
            &mut errs,
        );
    }
    match kind {
        "Pod" => validate_pod_update(old, new, &mut errs),
        "Deployment" | "ReplicaSet" => {
            let new_sel = new.pointer("/spec/selector").unwrap_or(&NULL);
            immutable(
                old.pointer("/spec/selector").unwrap_or(&NULL),
                new_sel,
                "spec.selector",
                BadValue::Raw(go_label_selector(new_sel)),
                &mut errs,
            );
        }
        "Service" => validate_service_update(old, new, &mut errs),
        _ => {}
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{cause_type_str, CauseType};
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}}]}
        })
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
            }
        })
    }

    fn service() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        })
    }

    /// `field: message` lines, for compact assertions.
    fn lines(kind: &str, obj: &Value) -> Vec<String> {
        validate_object(kind, obj)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn set(obj: &mut Value, pointer: &str, v: Value) {
        *obj.pointer_mut(pointer)
            .unwrap_or_else(|| panic!("no {pointer}")) = v;
    }

    #[test]
    fn valid_objects_pass() {
        assert_eq!(lines("Pod", &pod()), Vec::<String>::new());
        assert_eq!(lines("Deployment", &deployment()), Vec::<String>::new());
        let mut rs = deployment();
        set(&mut rs, "/kind", json!("ReplicaSet"));
        assert_eq!(lines("ReplicaSet", &rs), Vec::<String>::new());
        assert_eq!(lines("Service", &service()), Vec::<String>::new());
        let ns = json!({"metadata": {"name": "team-a"}});
        assert_eq!(lines("Namespace", &ns), Vec::<String>::new());
        let cm = json!({"metadata": {"name": "cfg"}, "data": {"app.conf": "x", "KEY_1": "y"}});
        assert_eq!(lines("ConfigMap", &cm), Vec::<String>::new());
    }

    #[test]
    fn metadata_names_by_kind() {
        let mut p = pod();
        set(&mut p, "/metadata/name", json!("Foo"));
        let causes = validate_object("Pod", &p);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.name");
        assert_eq!(causes[0].reason, CauseType::FieldValueInvalid);
        assert_eq!(cause_type_str(&causes[0].reason), "FieldValueInvalid");
        assert_eq!(
            causes[0].message,
            "Invalid value: \"Foo\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
        // Pods may have dots; namespaces and services may not.
        set(&mut p, "/metadata/name", json!("web.v1"));
        assert!(validate_object("Pod", &p).is_empty());
        let ns = json!({"metadata": {"name": "a.b"}});
        assert_eq!(
            lines("Namespace", &ns),
            vec!["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        let mut svc = service();
        set(&mut svc, "/metadata/name", json!("1web"));
        assert!(lines("Service", &svc)[0]
            .starts_with("metadata.name: Invalid value: \"1web\": a DNS-1035 label"));
        let unnamed = json!({"metadata": {}, "data": {}});
        assert_eq!(
            lines("ConfigMap", &unnamed),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        let generated = json!({"metadata": {"generateName": "web-"}, "data": {}});
        assert!(validate_object("ConfigMap", &generated).is_empty());
        let bad_gen = json!({"metadata": {"generateName": "Web-"}, "data": {}});
        assert_eq!(
            validate_object("ConfigMap", &bad_gen)[0].field,
            "metadata.generateName"
        );
        let node = json!({"metadata": {"name": "n1", "namespace": "default"}});
        assert_eq!(
            lines("Node", &node),
            vec!["metadata.namespace: Forbidden: not allowed on this type"]
        );
    }

    #[test]
    fn metadata_labels_and_annotations() {
        let mut p = pod();
        set(
            &mut p,
            "/metadata/labels",
            json!({"bad key": "v", "ok": "-bad"}),
        );
        let l = lines("Pod", &p);
        assert_eq!(l.len(), 2);
        assert!(l[0]
            .starts_with("metadata.labels: Invalid value: \"bad key\": name part must consist of"));
        assert!(l[1].starts_with(
            "metadata.labels: Invalid value: \"-bad\": a valid label must be an empty string"
        ));
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES);
        set(&mut p, "/metadata/labels", json!({}));
        p["metadata"]["annotations"] = json!({"a": big, "Example.com/Key": "ok"});
        let causes = validate_object("Pod", &p);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].reason, CauseType::FieldValueTooLong);
        assert_eq!(
            causes[0].to_string(),
            "metadata.annotations: Too long: must have at most 262144 bytes"
        );
    }

    #[test]
    fn pod_spec_rules() {
        let no_containers = json!({"metadata": {"name": "p"}, "spec": {}});
        assert_eq!(
            lines("Pod", &no_containers),
            vec!["spec.containers: Required value"]
        );
        let mut p = pod();
        set(
            &mut p,
            "/spec/containers",
            json!([
                {"name": "web", "image": ""},
                {"name": "web", "image": "nginx", "ports": [{"containerPort": 70000, "protocol": "HTTP"}, {"containerPort": 0}]},
                {"name": "Side_car", "image": " nginx"}
            ]),
        );
        p["spec"]["restartPolicy"] = json!("Sometimes");
        p["spec"]["dnsPolicy"] = json!("Bogus");
        let l = lines("Pod", &p);
        let want = [
            "spec.containers[0].image: Required value",
            "spec.containers[1].name: Duplicate value: \"web\"",
            "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[1].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[1].ports[1].containerPort: Required value",
            "spec.containers[2].image: Invalid value: \" nginx\": must not have leading or trailing whitespace",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
        ];
        for w in want {
            assert!(l.iter().any(|x| x == w), "missing {w:?} in {l:#?}");
        }
        assert!(l.iter().any(|x| x.starts_with(
            "spec.containers[2].name: Invalid value: \"Side_car\": a lowercase RFC 1123 label"
        )));
        let reasons: Vec<&str> = validate_object("Pod", &p)
            .iter()
            .map(|c| cause_type_str(&c.reason))
            .collect();
        assert!(reasons.contains(&"FieldValueDuplicate"));
        assert!(reasons.contains(&"FieldValueNotSupported"));
        assert!(reasons.contains(&"FieldValueRequired"));
    }

    #[test]
    fn pod_resources_parse_and_requests_fit_limits() {
        let mut p = pod();
        set(
            &mut p,
            "/spec/containers/0/resources",
            json!({
                "requests": {"cpu": "2", "memory": "1Gi"},
                "limits": {"cpu": "1", "memory": "abc"}
            }),
        );
        let l = lines("Pod", &p);
        assert!(l.contains(&"spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1".to_string()), "{l:#?}");
        assert!(l.contains(&"spec.containers[0].resources.limits[memory]: Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'".to_string()), "{l:#?}");
        set(
            &mut p,
            "/spec/containers/0/resources",
            json!({"requests": {"cpu": "-1", "gpu": "1"}}),
        );
        let l = lines("Pod", &p);
        assert!(l.contains(&"spec.containers[0].resources.requests[cpu]: Invalid value: \"-1\": must be greater than or equal to 0".to_string()), "{l:#?}");
        assert!(l.contains(&"spec.containers[0].resources.requests[gpu]: Invalid value: gpu: must be a standard resource for containers".to_string()), "{l:#?}");
        set(
            &mut p,
            "/spec/containers/0/resources",
            json!({"requests": {"cpu": "500m", "memory": 1024, "example.com/dev": "1"}, "limits": {"cpu": "0.5"}}),
        );
        assert!(validate_object("Pod", &p).is_empty());
    }

    #[test]
    fn volume_mounts_must_name_a_volume() {
        let mut p = pod();
        p["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
        p["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": "data", "mountPath": "/d"}, {"name": "other", "mountPath": "/o"}]);
        assert_eq!(
            lines("Pod", &p),
            vec!["spec.containers[0].volumeMounts[1].name: Not found: \"other\""]
        );
    }

    #[test]
    fn deployment_selector_and_template() {
        let mut d = deployment();
        set(
            &mut d,
            "/spec/template/metadata/labels",
            json!({"app": "other"}),
        );
        assert_eq!(
            lines("Deployment", &d),
            vec!["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`"]
        );
        let mut d = deployment();
        if let Some(m) = d["spec"].as_object_mut() {
            m.remove("selector");
        }
        assert_eq!(
            lines("Deployment", &d),
            vec!["spec.selector: Required value"]
        );
        let mut d = deployment();
        set(&mut d, "/spec/selector", json!({}));
        assert_eq!(
            lines("Deployment", &d),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
        );
        let mut d = deployment();
        set(&mut d, "/spec/replicas", json!(-1));
        set(&mut d, "/spec/template/spec/containers/0/image", json!(""));
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let l = lines("Deployment", &d);
        assert_eq!(l, vec![
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string(),
            "spec.template.spec.containers[0].image: Required value".to_string(),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"".to_string(),
        ]);
        let mut d = deployment();
        set(
            &mut d,
            "/spec/selector",
            json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
        );
        assert!(lines("Deployment", &d).contains(&"spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string()));
        let mut d = deployment();
        d["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        assert_eq!(lines("Deployment", &d), vec!["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]);
        d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}});
        assert_eq!(lines("Deployment", &d), vec!["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]);
    }

    #[test]
    fn service_rules() {
        let mut s = service();
        set(&mut s, "/spec/ports", json!([]));
        assert_eq!(lines("Service", &s), vec!["spec.ports: Required value"]);
        s["spec"]["clusterIP"] = json!("None");
        assert!(
            validate_object("Service", &s).is_empty(),
            "headless services need no ports"
        );
        let ext = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName", "externalName": "db.example.com."}});
        assert!(validate_object("Service", &ext).is_empty());
        let ext_bad = json!({"metadata": {"name": "db"}, "spec": {"type": "ExternalName"}});
        assert_eq!(
            lines("Service", &ext_bad),
            vec!["spec.externalName: Required value"]
        );
        let mut s = service();
        set(
            &mut s,
            "/spec/ports",
            json!([
                {"name": "http", "port": 0, "protocol": "HTTP"},
                {"port": 80, "targetPort": "Http"},
                {"name": "http", "port": 80, "nodePort": 30080}
            ]),
        );
        s["spec"]["type"] = json!("Bogus");
        let l = lines("Service", &s);
        for w in [
            "spec.type: Unsupported value: \"Bogus\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.ports[1].name: Required value",
            "spec.ports[1].targetPort: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
            "spec.ports[2].name: Duplicate value: \"http\"",
            "spec.ports[2]: Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
        ] {
            assert!(l.iter().any(|x| x == w), "missing {w:?} in {l:#?}");
        }
        let mut cip = service();
        cip["spec"]["type"] = json!("ClusterIP");
        cip["spec"]["clusterIP"] = json!("10.96.0.300");
        cip["spec"]["ports"][0]["nodePort"] = json!(30001);
        assert_eq!(lines("Service", &cip), vec![
            "spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".to_string(),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'".to_string(),
        ]);
    }

    #[test]
    fn config_map_and_secret_keys() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"bad key": "x", "..": "y"}, "binaryData": {"..": ""}});
        let l = lines("ConfigMap", &cm);
        assert!(
            l.contains(&"data[..]: Invalid value: \"..\": must not be '..'".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(
                &"binaryData[..]: Invalid value: \"..\": duplicate of key present in data"
                    .to_string()
            ),
            "{l:#?}"
        );
        assert!(l.iter().any(|x| x.starts_with("data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")), "{l:#?}");
        let tls = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
        assert_eq!(lines("Secret", &tls), vec!["data[tls.key]: Required value"]);
        let ok = json!({"metadata": {"name": "s"}, "stringData": {"password": "x"}});
        assert!(validate_object("Secret", &ok).is_empty());
    }

    #[test]
    fn pod_updates_may_change_only_images_and_some_fields() {
        let old = pod();
        let mut new = pod();
        set(&mut new, "/spec/containers/0/image", json!("nginx:1.28"));
        assert!(validate_update("Pod", &old, &new).is_empty());
        new["metadata"]["labels"] = json!({"app": "web", "extra": "yes"});
        assert!(
            validate_update("Pod", &old, &new).is_empty(),
            "labels may change"
        );
        let mut new = pod();
        set(
            &mut new,
            "/spec/containers/0/ports/0/containerPort",
            json!(8080),
        );
        let causes = validate_update("Pod", &old, &new);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec");
        assert_eq!(causes[0].reason, CauseType::FieldValueForbidden);
        assert_eq!(causes[0].message, "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)");
        let mut new = pod();
        if let Some(a) = new["spec"]["containers"].as_array_mut() {
            a.push(json!({"name": "b", "image": "busybox"}));
        }
        assert_eq!(
            validate_update("Pod", &old, &new)
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec!["spec.containers: Forbidden: pod updates may not add or remove containers"]
        );
        let mut old_t = pod();
        old_t["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists", "tolerationSeconds": 5}]);
        old_t["spec"]["activeDeadlineSeconds"] = json!(100);
        let mut new_t = old_t.clone();
        new_t["spec"]["tolerations"] = json!([{"key": "a", "operator": "Exists", "tolerationSeconds": 9}, {"key": "b", "operator": "Exists"}]);
        new_t["spec"]["activeDeadlineSeconds"] = json!(50);
        assert!(validate_update("Pod", &old_t, &new_t).is_empty());
        new_t["spec"]["tolerations"] = json!([]);
        new_t["spec"]["activeDeadlineSeconds"] = json!(200);
        let l: Vec<String> = validate_update("Pod", &old_t, &new_t)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(l, vec![
            "spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value".to_string(),
            "spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds".to_string(),
        ]);
    }

    #[test]
    fn workload_selectors_and_cluster_ips_are_immutable() {
        let old = deployment();
        let mut new = deployment();
        set(&mut new, "/spec/replicas", json!(5));
        assert!(validate_update("Deployment", &old, &new).is_empty());
        set(
            &mut new,
            "/spec/selector",
            json!({"matchLabels": {"app": "web2"}}),
        );
        set(
            &mut new,
            "/spec/template/metadata/labels",
            json!({"app": "web2"}),
        );
        assert_eq!(
            validate_update("Deployment", &old, &new).iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
        );
        let mut renamed = deployment();
        set(&mut renamed, "/metadata/name", json!("web2"));
        assert_eq!(
            validate_update("Deployment", &old, &renamed)[0].to_string(),
            "metadata.name: Invalid value: \"web2\": field is immutable"
        );

        let mut old_s = service();
        old_s["spec"]["clusterIP"] = json!("10.96.0.10");
        let mut new_s = service();
        assert!(
            validate_update("Service", &old_s, &new_s).is_empty(),
            "omitted clusterIP keeps the old one"
        );
        new_s["spec"]["clusterIP"] = json!("10.96.0.10");
        assert!(validate_update("Service", &old_s, &new_s).is_empty());
        new_s["spec"]["clusterIP"] = json!("10.96.0.11");
        assert_eq!(
            validate_update("Service", &old_s, &new_s).iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.11\"}: may not change once set"]
        );
    }
}
