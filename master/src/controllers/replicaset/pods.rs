//! Pure decisions about a ReplicaSet's pods, as upstream's `controller_utils`:
//! which pods count (active), which are ready and available, which to delete
//! first when scaling down, and the pod a template stamps out. No I/O here.

use crate::controllers::lite::{Meta, Pod};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The annotation that lets users say which pods go first (lower cost first).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &impl Meta) -> Option<&OwnerReference> {
    meta.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to an owner, as upstream's `NewControllerRef`.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The labels of an object (empty when none).
pub fn labels(meta: &impl Meta) -> BTreeMap<String, String> {
    meta.labels().cloned().unwrap_or_default()
}

/// A pod counts toward its ReplicaSet unless it finished or is being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded") | Some("Failed"))
        && pod.metadata.deletion_timestamp.is_none()
}

fn ready_condition(pod: &Pod) -> Option<&crate::controllers::lite::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When the pod became ready (None when not ready or unknown).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` at `now`, as upstream's `IsPodAvailable`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|t| {
        t.checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
            .is_ok_and(|until| until < now)
    })
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 3,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// `a` after `b`, with an unknown time counting as the latest (upstream's `afterOrZero`).
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) => true,
        (_, None) => false,
        (Some(a), Some(b)) => a > b,
    }
}

/// Orders pods for deletion, as upstream's `ActivePodsWithRanks.Less`: `Less`
/// means "delete first". `rank_*` counts related pods on the same node (more
/// co-located pods go first).
pub fn deletion_order(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let before = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
    // 1. Unassigned < assigned.
    if assigned(a) != assigned(b) {
        return before(!assigned(a));
    }
    // 2. Pending < Unknown < Running.
    if phase_ordinal(a) != phase_ordinal(b) {
        return before(phase_ordinal(a) < phase_ordinal(b));
    }
    // 3. Not ready < ready.
    if is_ready(a) != is_ready(b) {
        return before(!is_ready(a));
    }
    // 4. Lower deletion cost first.
    if deletion_cost(a) != deletion_cost(b) {
        return before(deletion_cost(a) < deletion_cost(b));
    }
    // 5. More co-located related pods first.
    if rank_a != rank_b {
        return before(rank_a > rank_b);
    }
    // 6. Ready for less time first.
    if is_ready(a) && is_ready(b) {
        let (ta, tb) = (ready_since(a), ready_since(b));
        if ta != tb {
            return before(after_or_zero(ta, tb));
        }
    }
    // 7. More restarts first.
    if restarts(a) != restarts(b) {
        return before(restarts(a) > restarts(b));
    }
    // 8. Newer first.
    let (ca, cb) = (
        a.metadata.creation_timestamp.as_ref().map(|t| t.0),
        b.metadata.creation_timestamp.as_ref().map(|t| t.0),
    );
    if ca != cb {
        return before(after_or_zero(ca, cb));
    }
    Ordering::Equal
}

/// The `count` least useful of `pods`; `related` are the active pods of this
/// ReplicaSet and its siblings (same owner), used to rank by co-location.
pub fn pods_to_delete(pods: &[Arc<Pod>], related: &[Arc<Pod>], count: usize) -> Vec<Arc<Pod>> {
    if count >= pods.len() {
        return pods.to_vec();
    }
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node(p)).or_default() += 1;
    }
    let mut ranked: Vec<(usize, &Arc<Pod>)> = pods
        .iter()
        .map(|p| (on_node.get(&node(p)).copied().unwrap_or(0), p))
        .collect();
    ranked.sort_by(|(ra, a), (rb, b)| deletion_order(a, *ra, b, *rb));
    ranked
        .into_iter()
        .take(count)
        .map(|(_, p)| p.clone())
        .collect()
}

/// The pod a ReplicaSet creates from its template (upstream's `GetPodFromTemplate`):
/// `generateName: <rs>-`, the template's labels, annotations and finalizers, and
/// a controller reference to the ReplicaSet.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner: &ObjectMeta,
    owner_ref: &OwnerReference,
) -> Value {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut metadata = json!({
        "generateName": format!("{}-", owner.name.as_deref().unwrap_or("")),
        "namespace": owner.namespace,
        "ownerReferences": [owner_ref],
    });
    if let Some(l) = meta.labels.filter(|l| !l.is_empty()) {
        metadata["labels"] = json!(l);
    }
    if let Some(a) = meta.annotations.filter(|a| !a.is_empty()) {
        metadata["annotations"] = json!(a);
    }
    if let Some(f) = meta.finalizers.filter(|f| !f.is_empty()) {
        metadata["finalizers"] = json!(f);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": template.spec,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A pod for tests: `node` "" is unassigned; `ready_at` seconds; `created` seconds.
    pub fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<i64>,
        restarts: i32,
        created: i64,
    ) -> Arc<Pod> {
        let mut conditions = vec![];
        if let Some(t) = ready_at {
            conditions.push(json!({"type": "Ready", "status": "True",
                "lastTransitionTime": Timestamp::from_second(t).unwrap().to_string()}));
        }
        let v = json!({
            "metadata": {"name": name, "namespace": "ns",
                "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
            "spec": {"nodeName": node, "containers": []},
            "status": {"phase": phase, "conditions": conditions,
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": restarts}]},
        });
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn scale_down_ranks_least_useful_first() {
        let pods = vec![
            pod("ready-old", "n1", "Running", Some(100), 0, 10),
            pod("ready-new", "n1", "Running", Some(200), 0, 20),
            pod("unassigned", "", "Pending", None, 0, 5),
            pod("pending", "n1", "Pending", None, 0, 5),
            pod("unknown", "n1", "Unknown", None, 0, 5),
            pod("running-not-ready", "n1", "Running", None, 0, 5),
            pod("restarty", "n1", "Running", Some(100), 3, 10),
        ];
        let order = pods_to_delete(&pods, &pods, pods.len() - 1);
        assert_eq!(
            names(&order),
            [
                "unassigned",
                "pending",
                "unknown",
                "running-not-ready",
                "ready-new",
                "restarty",
            ]
        );
        // Ties on everything else: the newer pod goes first.
        let a = pod("a", "n1", "Running", Some(100), 0, 10);
        let b = pod("b", "n1", "Running", Some(100), 0, 30);
        assert_eq!(names(&pods_to_delete(&[a, b], &[], 1)), ["b"]);
    }

    #[test]
    fn pods_on_crowded_nodes_go_first() {
        let a = pod("a", "n1", "Running", Some(100), 0, 10);
        let b = pod("b", "n2", "Running", Some(100), 0, 10);
        let sibling = pod("s", "n2", "Running", Some(100), 0, 10);
        let got = pods_to_delete(&[a.clone(), b.clone()], &[a, b, sibling], 1);
        assert_eq!(names(&got), ["b"]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("a", "n1", "Running", Some(100), 0, 10);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(is_available(&p, 0, at(100)));
        assert!(!is_available(&p, 10, at(105)));
        assert!(is_available(&p, 10, at(111)));
        let not_ready = pod("b", "n1", "Running", None, 0, 10);
        assert!(!is_available(&not_ready, 0, at(200)));
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        let p = pod("a", "n1", "Running", Some(1), 0, 1);
        assert!(is_active(&p));
        let mut done = (*p).clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!is_active(&done));
        let mut going = (*p).clone();
        going.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        assert!(!is_active(&going));
    }

    #[test]
    fn template_pods_carry_labels_and_a_controller_ref() {
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "x"}, "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        }))
        .unwrap();
        let owner = ObjectMeta {
            name: Some("web-abc".into()),
            namespace: Some("ns".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let r = controller_ref("apps/v1", "ReplicaSet", &owner);
        let p = pod_from_template(&template, &owner, &r);
        assert_eq!(p["metadata"]["generateName"], "web-abc-");
        assert_eq!(p["metadata"]["labels"]["app"], "x");
        assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        assert_eq!(p["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(p["spec"]["containers"][0]["image"], "i");
    }
}
