//! Pure node-health decisions of the node lifecycle controller: when a node went
//! silent (no Lease renewal and no Ready heartbeat for the grace period, measured
//! on the controller's own clock from when it last saw either change, as
//! upstream), what its conditions become then, and which NoExecute taint its Ready
//! condition calls for.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{NodeCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use std::time::{Duration, Instant};

pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const NO_EXECUTE: &str = "NoExecute";

/// The conditions set to Unknown when a node goes silent.
const WATCHED: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What was last seen of a node's heartbeats, and when (controller clock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub renew: Option<Timestamp>,
    pub heartbeat: Option<Timestamp>,
    pub seen_at: Instant,
}

/// The probe after looking at a node's Lease `renew` time and Ready `heartbeat`
/// at `now`: its clock restarts whenever either changed (and on first sight, so a
/// restarted controller gives every node a full grace period).
pub fn observe(
    prev: Option<&Probe>,
    renew: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    now: Instant,
) -> Probe {
    let seen_at = match prev {
        Some(p) if p.renew == renew && p.heartbeat == heartbeat => p.seen_at,
        _ => now,
    };
    Probe {
        renew,
        heartbeat,
        seen_at,
    }
}

/// True when nothing was heard of the node for longer than `grace`.
pub fn is_silent(probe: &Probe, now: Instant, grace: Duration) -> bool {
    now.saturating_duration_since(probe.seen_at) > grace
}

/// The status of the node's Ready condition, if it has one.
pub fn ready_status(conditions: &[NodeCondition]) -> Option<&str> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The conditions of a node that went silent: Ready and the pressure conditions
/// Unknown. None when they are all Unknown already.
pub fn silenced(conditions: &[NodeCondition], now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut out = conditions.to_vec();
    let mut changed = false;
    for kind in WATCHED {
        match out.iter_mut().find(|c| c.type_ == kind) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                out.push(NodeCondition {
                    type_: kind.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_transition_time: Some(Time(now)),
                    last_heartbeat_time: None,
                });
                changed = true;
            }
        }
    }
    changed.then_some(out)
}

/// The NoExecute taint a node's Ready status calls for: None for True, not-ready
/// for False, unreachable for Unknown. Outer None: no Ready condition yet, leave
/// the taints alone (as upstream).
pub fn wanted_taint(ready: Option<&str>) -> Option<Option<&'static str>> {
    match ready? {
        "True" => Some(None),
        "False" => Some(Some(NOT_READY)),
        _ => Some(Some(UNREACHABLE)),
    }
}

/// `taints` carrying the NoExecute taint `want` (added at `now` unless already
/// there, keeping its timeAdded) and not the other of not-ready/unreachable.
/// None when that is what they are already.
pub fn retaint(taints: &[Taint], want: Option<&str>, now: Timestamp) -> Option<Vec<Taint>> {
    let ours = |t: &Taint| t.effect == NO_EXECUTE && (t.key == UNREACHABLE || t.key == NOT_READY);
    let mut out: Vec<Taint> = taints
        .iter()
        .filter(|t| !ours(t) || Some(t.key.as_str()) == want)
        .cloned()
        .collect();
    if let Some(key) = want {
        if !out.iter().any(|t| ours(t) && t.key == key) {
            out.push(Taint {
                key: key.into(),
                effect: NO_EXECUTE.into(),
                time_added: Some(Time(now)),
                value: None,
            });
        }
    }
    (out != taints).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cond(type_: &str, status: &str) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            last_heartbeat_time: Some(Time(ts("2026-01-01T00:00:00Z"))),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_is_silent_only_after_the_grace_period_without_renewal() {
        let grace = Duration::from_secs(40);
        let t0 = Instant::now();
        let r1 = Some(ts("2026-01-01T00:00:00Z"));
        let p = observe(None, r1, None, t0);
        assert!(!is_silent(&p, t0 + Duration::from_secs(39), grace));
        // Renewed at 30 s: the clock restarts there.
        let r2 = Some(ts("2026-01-01T00:00:30Z"));
        let p = observe(Some(&p), r2, None, t0 + Duration::from_secs(30));
        assert!(!is_silent(&p, t0 + Duration::from_secs(60), grace));
        // Not renewed again: the same renewTime does not count.
        let p = observe(Some(&p), r2, None, t0 + Duration::from_secs(65));
        assert_eq!(p.seen_at, t0 + Duration::from_secs(30));
        assert!(is_silent(&p, t0 + Duration::from_secs(71), grace));
        // A Ready heartbeat counts as well.
        let hb = Some(ts("2026-01-01T00:01:10Z"));
        let p = observe(Some(&p), r2, hb, t0 + Duration::from_secs(72));
        assert!(!is_silent(&p, t0 + Duration::from_secs(100), grace));
        // A node never heard of gets a full grace period from first sight.
        let p = observe(None, None, None, t0);
        assert!(!is_silent(&p, t0 + grace, grace));
        assert!(is_silent(&p, t0 + grace + Duration::from_secs(1), grace));
    }

    #[test]
    fn silenced_conditions_are_unknown_and_keep_their_heartbeat() {
        let now = ts("2026-01-01T00:05:00Z");
        let conds = vec![cond("Ready", "True"), cond("MemoryPressure", "False")];
        let out = silenced(&conds, now).unwrap();
        assert_eq!(out.len(), 4);
        let ready = out.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "Unknown");
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(
            ready.message.as_deref(),
            Some("Kubelet stopped posting node status.")
        );
        assert_eq!(ready.last_heartbeat_time, conds[0].last_heartbeat_time);
        assert_eq!(ready.last_transition_time, Some(Time(now)));
        let pid = out.iter().find(|c| c.type_ == "PIDPressure").unwrap();
        assert_eq!(pid.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(silenced(&out, now), None, "already Unknown");
    }

    #[test]
    fn the_ready_status_picks_the_taint() {
        assert_eq!(wanted_taint(Some("True")), Some(None));
        assert_eq!(wanted_taint(Some("False")), Some(Some(NOT_READY)));
        assert_eq!(wanted_taint(Some("Unknown")), Some(Some(UNREACHABLE)));
        assert_eq!(wanted_taint(None), None);
        assert_eq!(ready_status(&[cond("Ready", "False")]), Some("False"));
    }

    #[test]
    fn retaint_adds_swaps_and_removes_only_its_own_taints() {
        let t1 = ts("2026-01-01T00:00:00Z");
        let t2 = ts("2026-01-01T00:10:00Z");
        let user = Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let added = retaint(std::slice::from_ref(&user), Some(UNREACHABLE), t1).unwrap();
        assert_eq!(added.len(), 2);
        assert_eq!(added[1].key, UNREACHABLE);
        assert_eq!(added[1].time_added, Some(Time(t1)));
        assert_eq!(
            retaint(&added, Some(UNREACHABLE), t2),
            None,
            "keeps timeAdded"
        );
        let swapped = retaint(&added, Some(NOT_READY), t2).unwrap();
        assert_eq!(swapped.len(), 2);
        assert_eq!(swapped[1].key, NOT_READY);
        let cleared = retaint(&swapped, None, t2).unwrap();
        assert_eq!(cleared, vec![user.clone()]);
        assert_eq!(retaint(&cleared, None, t2), None);
    }
}
