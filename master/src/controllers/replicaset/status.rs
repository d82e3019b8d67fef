//! A ReplicaSet's status from its active pods, as upstream's `calculateStatus`:
//! replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready for at
//! least minReadySeconds), observedGeneration and the ReplicaFailure condition.

use super::pods::{is_available, is_ready};
use crate::controllers::lite::Pod;
use api::selector::LabelSelector;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::sync::Arc;

pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// `now` to the second, as stored timestamps are.
pub fn now_seconds() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

/// The status `rs` should have given its active, claimed `pods` and the error of
/// the last create/delete round (`manage_error`).
pub fn calculate(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = &rs.spec;
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let template_selector = LabelSelector::from_map(&template_labels);
    let (mut labeled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_selector.matches(&labels) {
            labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready, now) {
                available += 1;
            }
        }
    }
    let has_failure = status.conditions.as_ref().is_some_and(|c| {
        c.iter()
            .any(|c| c.type_.as_deref() == Some(REPLICA_FAILURE))
    });
    match manage_error {
        Some(message) if !has_failure => {
            let want = spec.replicas.unwrap_or(1) as usize;
            let reason = if pods.len() < want {
                "FailedCreate"
            } else {
                "FailedDelete"
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: Some(REPLICA_FAILURE.into()),
                    status: Some("True".into()),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(c) = status.conditions.as_mut() {
                c.retain(|c| c.type_.as_deref() != Some(REPLICA_FAILURE));
            }
            if status.conditions.as_ref().is_some_and(Vec::is_empty) {
                status.conditions = None;
            }
        }
        _ => {}
    }
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = Some(labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.observed_generation = rs.metadata.generation;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::replicaset::pods::tests::pod;
    use serde_json::json;

    fn rs(min_ready: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "generation": 4},
            "spec": {"replicas": 3, "minReadySeconds": min_ready, "selector": {"matchLabels": {}},
                "template": {"metadata": {"labels": {"app": "web"}}}},
        }))
        .unwrap()
    }

    #[test]
    fn counts_labeled_ready_and_available_pods() {
        let mut labeled = (*pod("a", "n", "Running", Some(100), 0, 1)).clone();
        labeled.metadata.labels = Some(Arc::new([("app".to_string(), "web".to_string())].into()));
        let pods = vec![
            Arc::new(labeled),
            pod("b", "n", "Running", Some(195), 0, 1),
            pod("c", "n", "Pending", None, 0, 1),
        ];
        let now = Timestamp::from_second(200).unwrap();
        let s = calculate(&rs(10), &pods, None, now);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(1));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(4));
    }

    #[test]
    fn create_errors_become_a_replica_failure_until_they_stop() {
        let now = Timestamp::from_second(200).unwrap();
        let mut r = rs(0);
        let s = calculate(&r, &[], Some("pods \"x\" is forbidden"), now);
        let c = &s.conditions.as_ref().unwrap()[0];
        assert_eq!(
            (c.type_.as_deref(), c.reason.as_deref()),
            (Some("ReplicaFailure"), Some("FailedCreate"))
        );
        r.status = Some(s);
        let s = calculate(&r, &[], None, now);
        assert!(s.conditions.is_none());
    }
}
