//! Pure taint-based eviction decisions, as upstream's taint eviction controller:
//! a pod on a node with NoExecute taints is evicted at once when it does not
//! tolerate one of them, when the shortest `tolerationSeconds` of the tolerations
//! it uses has run out (counted from each taint's timeAdded), or never when it
//! tolerates them all forever.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Taint, Toleration};

/// When a pod must go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    Never,
    Now,
    At(Timestamp),
}

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// When a pod with `tolerations` must leave a node with `taints`, each taint
/// paired with the time it counts from (its timeAdded, or when it was first seen).
pub fn eviction(taints: &[(&Taint, Timestamp)], tolerations: &[Toleration]) -> Eviction {
    let mut when = Eviction::Never;
    for (taint, since) in taints.iter().filter(|(t, _)| t.effect == "NoExecute") {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Eviction::Now;
        }
        // Tolerated forever unless a used toleration says for how long.
        let Some(secs) = used.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let at = since
            .checked_add(SignedDuration::from_secs(secs.max(0)))
            .unwrap_or(Timestamp::MAX);
        when = match when {
            Eviction::At(t) if t <= at => Eviction::At(t),
            _ => Eviction::At(at),
        };
    }
    when
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(key: Option<&str>, op: &str, value: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
        }
    }

    #[test]
    fn toleration_matching_follows_upstream() {
        let t = taint("k", Some("v"), "NoExecute");
        assert!(tolerates(&tol(Some("k"), "Exists", None, None), &t));
        assert!(tolerates(&tol(Some("k"), "Equal", Some("v"), None), &t));
        assert!(!tolerates(&tol(Some("k"), "Equal", Some("w"), None), &t));
        assert!(!tolerates(&tol(Some("other"), "Exists", None, None), &t));
        assert!(tolerates(&tol(None, "Exists", None, None), &t), "wildcard");
        let mut no_schedule_only = tol(Some("k"), "Exists", None, None);
        no_schedule_only.effect = Some("NoSchedule".into());
        assert!(!tolerates(&no_schedule_only, &t));
        let any_effect = Toleration {
            key: Some("k".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert!(tolerates(&any_effect, &t));
    }

    #[test]
    fn deadlines_count_from_time_added() {
        let added: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let unreachable = taint("node.kubernetes.io/unreachable", None, "NoExecute");
        let taints = [(&unreachable, added)];
        assert_eq!(eviction(&taints, &[]), Eviction::Now);
        let five_min = tol(
            Some("node.kubernetes.io/unreachable"),
            "Exists",
            None,
            Some(300),
        );
        assert_eq!(
            eviction(&taints, std::slice::from_ref(&five_min)),
            Eviction::At("2026-01-01T00:05:00Z".parse().unwrap())
        );
        // The shortest of the tolerations used wins.
        let two = tol(None, "Exists", None, Some(2));
        assert_eq!(
            eviction(&taints, &[five_min.clone(), two]),
            Eviction::At("2026-01-01T00:00:02Z".parse().unwrap())
        );
        // Forever.
        let forever = tol(Some("node.kubernetes.io/unreachable"), "Exists", None, None);
        assert_eq!(eviction(&taints, &[forever]), Eviction::Never);
        // Negative counts as zero.
        let neg = tol(None, "Exists", None, Some(-5));
        assert_eq!(eviction(&taints, &[neg]), Eviction::At(added));
    }

    #[test]
    fn only_no_execute_taints_evict_and_the_earliest_counts() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let soft = taint("dedicated", None, "NoSchedule");
        let a = taint("a", None, "NoExecute");
        let b = taint("b", None, "NoExecute");
        assert_eq!(eviction(&[(&soft, t0)], &[]), Eviction::Never);
        let tols = [
            tol(Some("a"), "Exists", None, Some(100)),
            tol(Some("b"), "Exists", None, Some(10)),
        ];
        assert_eq!(
            eviction(&[(&a, t0), (&b, t1)], &tols),
            Eviction::At("2026-01-01T00:01:10Z".parse().unwrap())
        );
        assert_eq!(eviction(&[(&a, t0), (&b, t1)], &tols[..1]), Eviction::Now);
    }
}
