//! Which ReplicaSet is a Deployment's current one and how revisions are kept, as
//! upstream's `deployment/util`: the pod-template hash that names a ReplicaSet,
//! template equality ignoring that hash, the `deployment.kubernetes.io/*`
//! annotations (revision, revision history, desired and max replicas), and which
//! old ReplicaSets the revision history limit lets go.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;
use std::collections::BTreeMap;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

/// Upstream's alphabet for names (no vowels, no confusable characters).
const SAFE_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The pod-template hash: FNV-1a (32 bit) of the template's canonical JSON (keys
/// sorted) and the collision count, written in upstream's safe alphabet.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut text = String::new();
    canonical(
        &serde_json::to_value(template).unwrap_or_default(),
        &mut text,
    );
    template_hash_of(&text, collision_count)
}

fn template_hash_of(canonical_json: &str, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(canonical_json.as_bytes());
    if let Some(c) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(c as u32).to_le_bytes());
        feed(&bytes);
    }
    h.to_string()
        .bytes()
        .map(|b| SAFE_CHARS[usize::from(b) % SAFE_CHARS.len()] as char)
        .collect()
}

fn without_hash(t: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if let Some(labels) = v
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            if let Some(m) = v.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
            }
        }
    }
    v
}

/// Templates equal once the pod-template-hash label is ignored.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The revision of an object (0 when absent or not a number).
pub fn revision_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> i64 {
    annotation(meta, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among `rss`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter()
        .map(|rs| revision_of(&rs.metadata))
        .max()
        .unwrap_or(0)
}

/// An int annotation of a ReplicaSet.
pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotation(&rs.metadata, key).and_then(|v| v.parse().ok())
}

/// Sets desired-replicas and max-replicas; true when something changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.to_string(), v);
            changed = true;
        }
    }
    changed
}

fn skipped(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Copies the Deployment's own annotations to the ReplicaSet; true when changed.
fn copy_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skipped(k) || a.get(k) == Some(v) {
            continue;
        }
        a.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Brings the new ReplicaSet's annotations up to date, as upstream's
/// `SetNewReplicaSetAnnotations`: the Deployment's annotations, the revision
/// (raised to `new_revision`; the old one joins the revision history, which is
/// how a rollback to an older ReplicaSet looks), and for a ReplicaSet about to be
/// created, desired/max replicas. True when something changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    desired: i32,
    max: i32,
) -> bool {
    let mut changed = copy_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_n: i64 = match old.as_deref() {
        None => 0,
        Some(s) => match s.parse() {
            Ok(n) => n,
            Err(_) => return changed,
        },
    };
    if old_n < new_revision {
        a.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old {
            let history = match a.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            a.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists && set_replicas_annotations(rs, desired, max) {
        changed = true;
    }
    changed
}

/// The index of the ReplicaSet whose template is the Deployment's, oldest first
/// on ties (upstream's `FindNewReplicaSet`).
pub fn find_new(d: &Deployment, rss: &[ReplicaSet]) -> Option<usize> {
    let mut idx: Vec<usize> = (0..rss.len()).collect();
    idx.sort_by(|&i, &j| by_creation(&rss[i], &rss[j]));
    idx.into_iter().find(|&i| {
        rss[i]
            .spec
            .template
            .as_ref()
            .is_some_and(|t| equal_ignore_hash(t, &d.spec.template))
    })
}

/// Older first, then by name (upstream's `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    t(a).cmp(&t(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Names of the old ReplicaSets the revision history limit lets go: the oldest
/// revisions beyond the limit that have no replicas and are fully observed.
pub fn history_to_delete(d: &Deployment, old: &[ReplicaSet]) -> Vec<String> {
    let Some(limit) = d.spec.revision_history_limit else {
        return vec![];
    };
    let mut alive: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = alive.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return vec![];
    }
    alive.sort_by(|a, b| {
        revision_of(&a.metadata)
            .cmp(&revision_of(&b.metadata))
            .then_with(|| by_creation(a, b))
    });
    alive
        .into_iter()
        .take(diff as usize)
        .filter(|rs| {
            let status = rs.status.as_ref();
            status.map_or(0, |s| s.replicas) == 0
                && rs.spec.replicas.unwrap_or(1) == 0
                && rs.metadata.generation.unwrap_or(0)
                    <= status.and_then(|s| s.observed_generation).unwrap_or(0)
        })
        .filter_map(|rs| rs.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_hash_ignores_key_order_and_changes_with_the_template() {
        let a = r#"{"metadata":{"labels":{"app":"web","tier":"x"}},"spec":{"containers":[{"name":"c","image":"nginx:1"}]}}"#;
        let b = r#"{"spec":{"containers":[{"image":"nginx:1","name":"c"}]},"metadata":{"labels":{"tier":"x","app":"web"}}}"#;
        let (mut ca, mut cb) = (String::new(), String::new());
        canonical(&serde_json::from_str(a).unwrap(), &mut ca);
        canonical(&serde_json::from_str(b).unwrap(), &mut cb);
        assert_eq!(ca, cb);
        let ta = template(serde_json::from_str(a).unwrap());
        let tb = template(serde_json::from_str(b).unwrap());
        let h = template_hash(&ta, None);
        assert_eq!(h, template_hash(&tb, None));
        assert!(h.bytes().all(|c| SAFE_CHARS.contains(&c)));
        let other = template(json!({"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}));
        assert_ne!(h, template_hash(&other, None));
        assert_ne!(h, template_hash(&ta, Some(1)));
    }

    #[test]
    fn templates_compare_without_the_hash_label() {
        let a = template(json!({"metadata": {"labels": {"app": "web"}}}));
        let b =
            template(json!({"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}}}));
        let c = template(json!({"metadata": {"labels": {"app": "api"}}}));
        assert!(equal_ignore_hash(&a, &b));
        assert!(!equal_ignore_hash(&a, &c));
    }

    fn d() -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "annotations": {"team": "a", REVISION: "3",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"selector": {}, "template": {}, "revisionHistoryLimit": 1},
        }))
        .unwrap()
    }

    fn rs(name: &str, revision: &str, replicas: i32, created: i64) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {REVISION: revision}, "generation": 1,
                "creationTimestamp": jiff::Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"replicas": replicas, "selector": {}},
            "status": {"replicas": replicas, "observedGeneration": 1},
        }))
        .unwrap()
    }

    #[test]
    fn a_new_replica_set_gets_the_next_revision_and_replica_annotations() {
        let mut new: ReplicaSet = serde_json::from_value(
            json!({"metadata": {"name": "web-x"}, "spec": {"selector": {}}}),
        )
        .unwrap();
        assert!(set_new_rs_annotations(&d(), &mut new, 1, false, 3, 4));
        let a = new.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "1");
        assert_eq!(a[DESIRED_REPLICAS], "3");
        assert_eq!(a[MAX_REPLICAS], "4");
        assert_eq!(a["team"], "a");
        assert!(!a.contains_key(LAST_APPLIED));
        assert!(!set_new_rs_annotations(&d(), &mut new, 1, true, 3, 4));
    }

    #[test]
    fn rolling_back_bumps_the_revision_and_keeps_history() {
        let mut old = rs("web-a", "1", 0, 1);
        let others = [rs("web-b", "2", 3, 2)];
        let next = max_revision(&others) + 1;
        assert!(set_new_rs_annotations(&d(), &mut old, next, true, 3, 4));
        let a = old.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "3");
        assert_eq!(a[REVISION_HISTORY], "1");
        let mut again = old.clone();
        set_new_rs_annotations(&d(), &mut again, 5, true, 3, 4);
        assert_eq!(again.metadata.annotations.unwrap()[REVISION_HISTORY], "1,3");
    }

    #[test]
    fn history_beyond_the_limit_is_deleted_oldest_first() {
        let old = [
            rs("r3", "3", 0, 3),
            rs("r1", "1", 0, 1),
            rs("r2", "2", 2, 2),
        ];
        // Limit 1: two must go, r1 and r2, but r2 still has replicas.
        assert_eq!(history_to_delete(&d(), &old), ["r1"]);
    }

    #[test]
    fn the_newest_matching_template_is_found_oldest_first() {
        let mut dep = d();
        dep.spec.template = template(json!({"metadata": {"labels": {"app": "web"}}}));
        let mut a = rs("a", "1", 1, 5);
        a.spec.template = Some(template(
            json!({"metadata": {"labels": {"app": "web", HASH_LABEL: "x"}}}),
        ));
        let mut b = a.clone();
        b.metadata.name = Some("b".into());
        b.metadata.creation_timestamp = rs("", "", 0, 1).metadata.creation_timestamp;
        let c = rs("c", "1", 1, 0);
        assert_eq!(find_new(&dep, &[a, b, c]), Some(1));
    }
}
