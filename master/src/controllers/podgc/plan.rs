//! Pure decisions of pod GC: which terminated pods are over the threshold (evicted
//! ones first, then oldest first, as upstream), which pods are bound to nodes that
//! do not exist, and which terminating pods were never scheduled.

use crate::controllers::lite::Pod;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

pub fn is_terminated(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn evicted(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

fn key(pod: &Pod) -> String {
    crate::controllers::informer::Object::cache_key(pod)
}

/// The terminated pods to delete so that at most `threshold` stay (0: keep all).
pub fn terminated_over_threshold(pods: &[Arc<Pod>], threshold: usize) -> Vec<String> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<&Pod> = pods
        .iter()
        .map(|p| &**p)
        .filter(|p| is_terminated(p))
        .collect();
    let Some(excess) = done.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return Vec::new();
    };
    done.sort_by(|a, b| {
        evicted(b)
            .cmp(&evicted(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| key(a).cmp(&key(b)))
    });
    done.into_iter().take(excess).map(key).collect()
}

/// Pods bound to a node not in `nodes`, by that node.
pub fn orphaned(pods: &[Arc<Pod>], nodes: &HashSet<String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pods {
        if let Some(n) = node_of(p).filter(|n| !nodes.contains(*n)) {
            out.entry(n.to_string()).or_default().push(key(p));
        }
    }
    out
}

/// Pods being deleted that were never bound to a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<String> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_of(p).is_none())
        .map(|p| key(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::lite::ObjectMeta;
    use crate::controllers::lite::{PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, created: &str, phase: &str, node: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(Time(created.parse().unwrap())),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn the_oldest_terminated_pods_over_the_threshold_go_evicted_first() {
        let mut evicted_pod = (*pod("e", "2026-01-01T00:09:00Z", "Failed", None)).clone();
        evicted_pod.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            pod("c", "2026-01-01T00:03:00Z", "Succeeded", None),
            pod("a", "2026-01-01T00:01:00Z", "Failed", None),
            pod("run", "2026-01-01T00:00:00Z", "Running", None),
            pod("b", "2026-01-01T00:02:00Z", "Succeeded", None),
            Arc::new(evicted_pod),
        ];
        assert_eq!(
            terminated_over_threshold(&pods, 1),
            vec!["default/e", "default/a", "default/b"]
        );
        assert_eq!(
            terminated_over_threshold(&pods, 2),
            vec!["default/e", "default/a"]
        );
        assert!(terminated_over_threshold(&pods, 4).is_empty());
        assert!(terminated_over_threshold(&pods, 5).is_empty());
        assert!(
            terminated_over_threshold(&pods, 0).is_empty(),
            "0 turns it off"
        );
    }

    #[test]
    fn pods_on_missing_nodes_and_unscheduled_terminating_pods_are_found() {
        let mut deleting = (*pod("d", "2026-01-01T00:00:00Z", "Pending", None)).clone();
        deleting.metadata.deletion_timestamp = Some(Time("2026-01-01T00:01:00Z".parse().unwrap()));
        let pods = vec![
            pod("x", "2026-01-01T00:00:00Z", "Running", Some("gone")),
            pod("y", "2026-01-01T00:00:00Z", "Running", Some("here")),
            pod("z", "2026-01-01T00:00:00Z", "Pending", None),
            Arc::new(deleting),
        ];
        let nodes: HashSet<String> = ["here".to_string()].into();
        let o = orphaned(&pods, &nodes);
        assert_eq!(o.len(), 1);
        assert_eq!(o["gone"], vec!["default/x"]);
        assert_eq!(unscheduled_terminating(&pods), vec!["default/d"]);
    }
}
