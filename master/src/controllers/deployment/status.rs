//! A Deployment's status and conditions, as upstream's `calculateStatus`,
//! `syncRolloutStatus` and `checkPausedConditions`: replica counts summed over
//! its ReplicaSets, `Available` (MinimumReplicasAvailable/Unavailable) and
//! `Progressing` (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//! NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused/Resumed).
//! `kubectl rollout status` reads exactly these fields.

use super::rollout::{
    max_unavailable, replicas, rs_available, rs_ready, rs_replicas, rs_status_replicas,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::Duration;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const NEW_RS_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const RS_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const PAUSED_REASON: &str = "DeploymentPaused";
pub const RESUMED_REASON: &str = "DeploymentResumed";

/// A condition stamped `now` (both times).
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(type_))
}

/// Sets a condition as upstream's `SetDeploymentCondition`: nothing changes when
/// status and reason are the same; the transition time is kept when only the
/// reason changes.
/// Sets a condition on a Deployment's own status, creating the status if absent.
pub fn set_deployment_condition(
    d: &mut Deployment,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let cond = condition(type_, status, reason, message, now);
    set_condition(d.status.get_or_insert_with(Default::default), cond);
}

pub fn set_condition(status: &mut DeploymentStatus, mut cond: DeploymentCondition) {
    let type_ = cond.type_.clone().unwrap_or_default();
    if let Some(cur) = get_condition(status, &type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(status, &type_);
    status.conditions.get_or_insert_with(Vec::new).push(cond);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(c) = status.conditions.as_mut() {
        c.retain(|c| c.type_.as_deref() != Some(type_));
    }
}

fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec.progress_deadline_seconds.filter(|&s| s != i32::MAX)
}

/// The status from the ReplicaSets (upstream's `calculateStatus`).
pub fn calculate(
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let old = d.status.clone().unwrap_or_default();
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total: i32 = all.iter().map(|rs| rs_replicas(rs)).sum();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(|rs| rs_status_replicas(rs)).sum()),
        updated_replicas: Some(new.map_or(0, rs_status_replicas)),
        ready_replicas: Some(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: old.collision_count,
        conditions: old.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= replicas(d) - max_unavailable(d) {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
                now,
            ),
        );
    }
    status
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Every replica updated and available, and the spec observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    n(s.updated_replicas) == want
        && n(s.replicas) == want
        && n(s.available_replicas) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Some progress since the Deployment's recorded status.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = get_condition(s, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => false,
        Some(TIMED_OUT_REASON) => true,
        _ => c.last_update_time.as_ref().is_some_and(|t| {
            t.0.checked_add(SignedDuration::from_secs(i64::from(deadline)))
                .is_ok_and(|until| until < now)
        }),
    }
}

/// The status a rollout step ends with (upstream's `syncRolloutStatus`).
pub fn rollout(
    all: &[&ReplicaSet],
    new: Option<&ReplicaSet>,
    d: &Deployment,
    now: Timestamp,
) -> DeploymentStatus {
    let mut status = calculate(all, new, d, now);
    if progress_deadline(d).is_none() {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, PROGRESSING))
        .cloned();
    let done_before = n(status.replicas) == n(status.updated_replicas)
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
    let name = d.metadata.name.as_deref().unwrap_or("");
    let subject = |what: &str| match new.and_then(|rs| rs.metadata.name.as_deref()) {
        Some(rs) => format!("ReplicaSet \"{rs}\" {what}"),
        None => format!("Deployment \"{name}\" {what}"),
    };
    if progress_deadline(d).is_some() && !done_before {
        if complete(d, &status) {
            let msg = subject("has successfully progressed.");
            set_condition(
                &mut status,
                condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON, &msg, now),
            );
        } else if progressing(d, &status) {
            let msg = subject("is progressing.");
            let mut cond = condition(PROGRESSING, "True", RS_UPDATED_REASON, &msg, now);
            if let Some(cur) = &current {
                if cur.status.as_deref() == Some("True") {
                    cond.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut status, PROGRESSING);
            }
            set_condition(&mut status, cond);
        } else if timed_out(d, &status, now) {
            let msg = subject("has timed out progressing.");
            set_condition(
                &mut status,
                condition(PROGRESSING, "False", TIMED_OUT_REASON, &msg, now),
            );
        }
    }
    let failure = all.iter().find_map(|rs| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| {
                c.type_.as_deref() == Some(REPLICA_FAILURE) && c.status.as_deref() == Some("True")
            })
            .cloned()
    });
    match failure {
        Some(f) => set_condition(
            &mut status,
            DeploymentCondition {
                type_: Some(REPLICA_FAILURE.into()),
                status: f.status,
                reason: f.reason,
                message: f.message,
                last_update_time: f.last_transition_time.clone(),
                last_transition_time: f.last_transition_time,
            },
        ),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    status
}

/// When to look again at a Deployment whose rollout may miss its deadline
/// (upstream's `requeueStuckDeployment`).
pub fn recheck_after(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let cur = d
        .status
        .as_ref()
        .and_then(|s| get_condition(s, PROGRESSING))?;
    if complete(d, new) || cur.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let until = cur
        .last_update_time
        .as_ref()?
        .0
        .checked_add(SignedDuration::from_secs(i64::from(deadline)))
        .ok()?;
    let left = until.duration_since(now);
    if left < SignedDuration::from_secs(1) {
        return Some(Duration::from_secs(1));
    }
    Duration::try_from(left)
        .ok()
        .map(|l| l + Duration::from_secs(1))
}

/// The Progressing condition for pause and resume (upstream's
/// `checkPausedConditions`); None when nothing changes.
pub fn paused_conditions(d: &Deployment, now: Timestamp) -> Option<DeploymentStatus> {
    progress_deadline(d)?;
    let mut status = d.status.clone().unwrap_or_default();
    let cur = get_condition(&status, PROGRESSING);
    let reason = cur.and_then(|c| c.reason.as_deref());
    if reason == Some(TIMED_OUT_REASON) {
        return None;
    }
    let paused = d.spec.paused.unwrap_or(false);
    let has_paused = reason == Some(PAUSED_REASON);
    if paused && !has_paused {
        set_condition(
            &mut status,
            condition(
                PROGRESSING,
                "Unknown",
                PAUSED_REASON,
                "Deployment is paused",
                now,
            ),
        );
    } else if !paused && has_paused {
        set_condition(
            &mut status,
            condition(
                PROGRESSING,
                "Unknown",
                RESUMED_REASON,
                "Deployment is resumed",
                now,
            ),
        );
    } else {
        return None;
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    fn d(replicas: i32, generation: i64) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "selector": {}, "template": {}, "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}},
        }))
        .unwrap()
    }

    fn rs(name: &str, spec: i32, status: i32, ready: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"replicas": spec, "selector": {}},
            "status": {"replicas": status, "readyReplicas": ready, "availableReplicas": available},
        }))
        .unwrap()
    }

    fn reason(s: &DeploymentStatus, type_: &str) -> Option<String> {
        get_condition(s, type_).and_then(|c| c.reason.clone())
    }

    #[test]
    fn counts_sum_over_replica_sets() {
        let (old, new) = (rs("web-a", 2, 3, 3, 3), rs("web-b", 2, 2, 1, 0));
        let s = calculate(&[&old, &new], Some(&new), &d(3, 2), t(100));
        assert_eq!(s.replicas, Some(5));
        assert_eq!(s.updated_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(4));
        assert_eq!(s.available_replicas, Some(3));
        assert_eq!(s.unavailable_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(
            reason(&s, AVAILABLE).as_deref(),
            Some("MinimumReplicasAvailable")
        );
        let s = calculate(&[&new], Some(&new), &d(3, 2), t(100));
        assert_eq!(
            reason(&s, AVAILABLE).as_deref(),
            Some("MinimumReplicasUnavailable")
        );
    }

    #[test]
    fn progressing_until_complete_then_available() {
        let mut dep = d(3, 1);
        let new = rs("web-a", 3, 3, 1, 1);
        let s = rollout(&[&new], Some(&new), &dep, t(100));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(RS_UPDATED_REASON));
        assert_eq!(
            get_condition(&s, PROGRESSING).unwrap().message.as_deref(),
            Some("ReplicaSet \"web-a\" is progressing.")
        );
        dep.status = Some(s);
        let done = rs("web-a", 3, 3, 3, 3);
        let s = rollout(&[&done], Some(&done), &dep, t(110));
        assert!(complete(&dep, &s));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(c.reason.as_deref(), Some(NEW_RS_AVAILABLE_REASON));
        assert_eq!(
            c.message.as_deref(),
            Some("ReplicaSet \"web-a\" has successfully progressed.")
        );
        // Nothing changes on a resync.
        dep.status = Some(s.clone());
        assert_eq!(rollout(&[&done], Some(&done), &dep, t(500)), s);
    }

    #[test]
    fn no_progress_past_the_deadline_times_out() {
        let mut dep = d(3, 1);
        let stuck = rs("web-a", 3, 3, 0, 0);
        let mut s = calculate(&[&stuck], Some(&stuck), &dep, t(0));
        set_condition(
            &mut s,
            condition(PROGRESSING, "True", NEW_RS_REASON, "Created", t(0)),
        );
        dep.status = Some(s);
        let s = rollout(&[&stuck], Some(&stuck), &dep, t(300));
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(NEW_RS_REASON));
        assert_eq!(
            recheck_after(&dep, &s, t(300)),
            Some(Duration::from_secs(301))
        );
        let s = rollout(&[&stuck], Some(&stuck), &dep, t(601));
        let c = get_condition(&s, PROGRESSING).unwrap();
        assert_eq!(
            (c.status.as_deref(), c.reason.as_deref()),
            (Some("False"), Some(TIMED_OUT_REASON))
        );
    }

    #[test]
    fn pausing_and_resuming_set_progressing_unknown() {
        let mut dep = d(3, 1);
        assert!(paused_conditions(&dep, t(0)).is_none());
        dep.spec.paused = Some(true);
        let s = paused_conditions(&dep, t(0)).unwrap();
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(PAUSED_REASON));
        dep.status = Some(s);
        assert!(paused_conditions(&dep, t(1)).is_none());
        dep.spec.paused = Some(false);
        let s = paused_conditions(&dep, t(2)).unwrap();
        assert_eq!(reason(&s, PROGRESSING).as_deref(), Some(RESUMED_REASON));
    }
}
