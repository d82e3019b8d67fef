//! Rollout arithmetic, as upstream's `deployment/util` and `rolling.go`, as pure
//! functions: maxSurge/maxUnavailable resolution, how far the new ReplicaSet may
//! grow, how far the old ones may shrink, and proportional scaling of several
//! active ReplicaSets. The I/O layer (`sync.rs`) applies the numbers.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::cmp::Ordering;

pub const ROLLING_UPDATE: &str = "RollingUpdate";
pub const RECREATE: &str = "Recreate";

/// A maxSurge or maxUnavailable that is neither an int nor a percentage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for IntOrString: invalid type: string is not a percentage: {0:?}")]
pub struct FencepostError(pub String);

/// An int, or a percentage of `total` rounded up or down, as upstream's
/// `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, FencepostError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| FencepostError(s.clone()))?;
            let x = pct * i64::from(total);
            let v = if round_up {
                x.div_euclid(100) + i64::from(x.rem_euclid(100) != 0)
            } else {
                x.div_euclid(100)
            };
            Ok(v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        }
    }
}

/// (maxSurge, maxUnavailable) for `desired` replicas: surge rounds up,
/// unavailable rounds down, and both zero means one may be unavailable.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), FencepostError> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

/// `spec.replicas` of a Deployment (1 when unset, as the API defaults it).
pub fn replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet.
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// The strategy type (RollingUpdate when unset).
pub fn strategy(d: &Deployment) -> &str {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or(ROLLING_UPDATE)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    if strategy(d) != ROLLING_UPDATE {
        return (0, 0);
    }
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    // Validation keeps the values sound; a bad one counts as zero, as upstream.
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
    .unwrap_or((0, 0))
}

/// The resolved maxSurge (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    fenceposts(d).0
}

/// The resolved maxUnavailable, at most `spec.replicas` (0 for Recreate or 0 replicas).
pub fn max_unavailable(d: &Deployment) -> i32 {
    if strategy(d) != ROLLING_UPDATE || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// How many replicas the new ReplicaSet should have now (upstream's
/// `NewRSNewReplicas`). Pods are counted as the larger of each ReplicaSet's spec
/// and status, so the new ReplicaSet grows only once an old one really shrank:
/// never more than replicas + maxSurge pods exist at once.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
    let want = replicas(d);
    if strategy(d) != ROLLING_UPDATE {
        return want;
    }
    let current: i32 = all
        .iter()
        .map(|rs| rs_replicas(rs).max(rs_status_replicas(rs)))
        .sum();
    let max_total = want + max_surge(d);
    if current >= max_total {
        return rs_replicas(new);
    }
    let up = (max_total - current).min(want - rs_replicas(new));
    rs_replicas(new) + up.max(0)
}

/// A ReplicaSet's numbers, for the scale-down plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    pub spec: i32,
    pub available: i32,
}

impl Counts {
    pub fn of(rs: &ReplicaSet) -> Self {
        Counts {
            spec: rs_replicas(rs),
            available: rs_available(rs),
        }
    }
}

/// The sizes the old ReplicaSets (oldest first) should shrink to in a rolling
/// update step, as upstream's `reconcileOldReplicaSets`: first the unhealthy
/// replicas, then healthy ones while availability stays at least
/// replicas − maxUnavailable.
pub fn scale_down_old(
    replicas: i32,
    max_unavailable: i32,
    old: &[Counts],
    new: Counts,
) -> Vec<i32> {
    let mut targets: Vec<i32> = old.iter().map(|c| c.spec).collect();
    let old_pods: i32 = targets.iter().sum();
    if old_pods == 0 {
        return targets;
    }
    let all_pods = old_pods + new.spec;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.spec - new.available;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    // Unhealthy replicas first: they would block the rollout otherwise.
    let mut cleaned = 0;
    for (t, c) in targets.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        if *t == 0 || *t == c.available {
            continue;
        }
        let n = (max_scaled_down - cleaned).min(*t - c.available);
        *t -= n;
        cleaned += n;
    }
    let available: i32 = old.iter().map(|c| c.available).sum::<i32>() + new.available;
    if available <= min_available {
        return targets;
    }
    let budget = available - min_available;
    let mut done = 0;
    for t in targets.iter_mut() {
        if done >= budget {
            break;
        }
        if *t == 0 {
            continue;
        }
        let n = (*t).min(budget - done);
        *t -= n;
        done += n;
    }
    targets
}

/// One active ReplicaSet, for proportional scaling.
#[derive(Clone, Debug)]
pub struct Sized {
    pub name: String,
    pub spec: i32,
    pub created: Option<Timestamp>,
    /// The `deployment.kubernetes.io/max-replicas` annotation.
    pub max_replicas: Option<i32>,
}

fn by_creation(a: &Sized, b: &Sized) -> Ordering {
    a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name))
}

/// New sizes (in input order) for the active ReplicaSets of a Deployment being
/// scaled in the middle of a rollout, as upstream's `scale`: the extra (or
/// missing) replicas are shared in proportion to each ReplicaSet's size, and the
/// leftover goes to the largest.
pub fn proportional_sizes(
    replicas: i32,
    max_surge: i32,
    status_replicas: i32,
    active: &[Sized],
) -> Vec<i32> {
    let allowed = if replicas > 0 {
        replicas + max_surge
    } else {
        0
    };
    let total: i32 = active.iter().map(|s| s.spec).sum();
    let to_add = allowed - total;
    let mut order: Vec<usize> = (0..active.len()).collect();
    match to_add.cmp(&0) {
        Ordering::Greater => order.sort_by(|&i, &j| {
            let (a, b) = (&active[i], &active[j]);
            b.spec.cmp(&a.spec).then_with(|| by_creation(b, a))
        }),
        Ordering::Less => order.sort_by(|&i, &j| {
            let (a, b) = (&active[i], &active[j]);
            b.spec.cmp(&a.spec).then_with(|| by_creation(a, b))
        }),
        Ordering::Equal => {}
    }
    let mut sizes: Vec<i32> = active.iter().map(|s| s.spec).collect();
    if to_add == 0 {
        return sizes;
    }
    let mut added = 0;
    for &i in &order {
        let rs = &active[i];
        let proportion = if rs.spec == 0 || to_add == added {
            0
        } else {
            let fraction = if replicas == 0 {
                -rs.spec
            } else {
                let annotated = rs.max_replicas.unwrap_or(status_replicas);
                if annotated == 0 {
                    0
                } else {
                    let size =
                        f64::from(rs.spec) * f64::from(replicas + max_surge) / f64::from(annotated);
                    size.round() as i32 - rs.spec
                }
            };
            let allowed = to_add - added;
            if to_add > 0 {
                fraction.min(allowed)
            } else {
                fraction.max(allowed)
            }
        };
        sizes[i] += proportion;
        added += proportion;
    }
    if let Some(&first) = order.first() {
        sizes[first] = (sizes[first] + to_add - added).max(0);
    }
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> IntOrString {
        IntOrString::String(v.into())
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        assert_eq!(
            resolve_fenceposts(Some(&s("25%")), Some(&s("25%")), 10),
            Ok((3, 2))
        );
        assert_eq!(
            resolve_fenceposts(Some(&s("25%")), Some(&s("25%")), 3),
            Ok((1, 0))
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(0)), Some(&s("0%")), 5),
            Ok((0, 1))
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&IntOrString::Int(1)), 5),
            Ok((2, 1))
        );
        assert!(resolve_fenceposts(Some(&s("2")), None, 5).is_err());
        assert_eq!(scaled_value(&s("100%"), 7, true), Ok(7));
    }

    #[test]
    fn the_new_replica_set_grows_within_the_surge() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d"},
            "spec": {"replicas": 10, "selector": {}, "template": {},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
        }))
        .unwrap();
        let rs = |spec: i32, status: i32| -> ReplicaSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "r"}, "spec": {"replicas": spec, "selector": {}},
                "status": {"replicas": status},
            }))
            .unwrap()
        };
        let (old, new) = (rs(10, 10), rs(0, 0));
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
        // The old one was scaled down but still has its pods: wait.
        let (old, new) = (rs(8, 10), rs(3, 3));
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 3);
        let (old, new) = (rs(8, 8), rs(3, 3));
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 5);
        // Never beyond spec.replicas.
        let (old, new) = (rs(0, 0), rs(9, 9));
        assert_eq!(new_rs_new_replicas(&d, &[&old, &new], &new), 10);
    }

    #[test]
    fn old_replica_sets_shrink_while_availability_allows() {
        let c = |spec, available| Counts { spec, available };
        // 10 replicas, maxUnavailable 2: new has 3, none available yet.
        assert_eq!(scale_down_old(10, 2, &[c(10, 10)], c(3, 0)), [8]);
        // ... and 2 of the old are already gone: wait.
        assert_eq!(scale_down_old(10, 2, &[c(8, 8)], c(3, 0)), [8]);
        // New has 3 available: 13 available, may drop to 8.
        assert_eq!(scale_down_old(10, 2, &[c(10, 10)], c(3, 3)), [5]);
        // Unhealthy old replicas go first, oldest replica set first.
        assert_eq!(scale_down_old(4, 1, &[c(2, 1), c(3, 3)], c(1, 0)), [0, 3]);
        // Nothing old: nothing to do.
        assert_eq!(scale_down_old(4, 1, &[c(0, 0)], c(4, 4)), [0]);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let t = |s| Timestamp::from_second(s).ok();
        let rs = |name: &str, spec, created| Sized {
            name: name.into(),
            spec,
            created: t(created),
            max_replicas: Some(13),
        };
        // 10 replicas with maxSurge 3, rolled out to old 8 / new 5, scaled to 15.
        let active = [rs("old", 8, 1), rs("new", 5, 2)];
        assert_eq!(proportional_sizes(15, 4, 13, &active), [12, 7]);
        // And back down to 5 (maxSurge 2): 7 allowed.
        let active = [rs("old", 8, 1), rs("new", 5, 2)];
        assert_eq!(proportional_sizes(5, 2, 13, &active), [4, 3]);
        // To zero: everything goes.
        assert_eq!(proportional_sizes(0, 0, 13, &active), [0, 0]);
    }
}
