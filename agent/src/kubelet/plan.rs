//! What to do next for a pod, decided from its spec and what its containers did:
//! init containers one at a time and to completion, then every container, each
//! restarted or not by the pod's restartPolicy, after its crash-loop back-off.
//! Pure: the worker does the starting.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::backoff;
use super::model::Track;

/// A pod's restartPolicy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Always,
    OnFailure,
    Never,
}

impl Policy {
    pub fn parse(s: Option<&str>) -> Policy {
        match s {
            Some("OnFailure") => Policy::OnFailure,
            Some("Never") => Policy::Never,
            _ => Policy::Always,
        }
    }

    /// Whether a container that exited with `code` runs again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            Policy::Always => true,
            Policy::OnFailure => code != 0,
            Policy::Never => false,
        }
    }

    /// The same for an init container: it must succeed, so only failures restart
    /// (Always counts as OnFailure).
    pub fn restarts_init(self, code: i32) -> bool {
        code != 0 && self != Policy::Never
    }
}

/// The names of a pod's containers, in order, and its policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub init: Vec<String>,
    pub containers: Vec<String>,
    pub policy: Policy,
}

/// Where a pod's init containers stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitState {
    /// All init containers succeeded (or there are none).
    Done,
    /// Still running through them.
    Pending,
    /// One failed and the policy says Never: the pod has failed.
    Failed,
}

/// The decision for one sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Containers to start now, in spec order (at most one init container).
    pub start: Vec<String>,
    /// Containers waiting out their crash-loop back-off, with the time left.
    pub backing_off: Vec<(String, Duration)>,
    /// When to look again even if nothing happens.
    pub wake_in: Option<Duration>,
    /// Nothing runs and nothing will run again.
    pub finished: bool,
}

impl Plan {
    fn wake(&mut self, d: Duration) {
        self.wake_in = Some(self.wake_in.map_or(d, |w| w.min(d)));
    }
}

/// How far the init containers got.
pub fn init_state(shape: &Shape, tracks: &HashMap<String, Track>) -> InitState {
    for name in &shape.init {
        let code = tracks
            .get(name)
            .and_then(|t| t.current.as_ref())
            .and_then(|i| i.state.exit_code());
        match code {
            Some(0) => continue,
            Some(_) if shape.policy == Policy::Never => return InitState::Failed,
            _ => return InitState::Pending,
        }
    }
    InitState::Done
}

/// Decides what to start now for a pod that is not being deleted.
pub fn plan(shape: &Shape, tracks: &HashMap<String, Track>, now: SystemTime) -> Plan {
    let mut out = Plan::default();
    match init_state(shape, tracks) {
        InitState::Failed => {
            out.finished = true;
            return out;
        }
        InitState::Pending => {
            let next = shape.init.iter().find(|n| {
                let code = tracks
                    .get(*n)
                    .and_then(|t| t.current.as_ref())
                    .and_then(|i| i.state.exit_code());
                code != Some(0)
            });
            if let Some(name) = next {
                consider(
                    name,
                    tracks,
                    now,
                    |code| shape.policy.restarts_init(code),
                    &mut out,
                );
            }
            return out;
        }
        InitState::Done => {}
    }
    let mut all_over = true;
    for name in &shape.containers {
        let over = consider(
            name,
            tracks,
            now,
            |code| shape.policy.restarts(code),
            &mut out,
        );
        all_over &= over;
    }
    out.finished = all_over;
    out
}

/// Decides for one container; true when it is over for good.
fn consider(
    name: &str,
    tracks: &HashMap<String, Track>,
    now: SystemTime,
    restarts: impl Fn(i32) -> bool,
    out: &mut Plan,
) -> bool {
    let Some(track) = tracks.get(name) else {
        out.start.push(name.to_string());
        return false;
    };
    if let Some(w) = &track.waiting {
        match w.retry_at.duration_since(now) {
            Ok(left) if !left.is_zero() => out.wake(left),
            _ => out.start.push(name.to_string()),
        }
        return false;
    }
    let Some(current) = &track.current else {
        out.start.push(name.to_string());
        return false;
    };
    match &current.state {
        super::model::RunState::Running { .. } => false,
        super::model::RunState::Exited {
            exit_code,
            started_at,
            finished_at,
            ..
        } => {
            if !restarts(*exit_code) {
                return true;
            }
            let level = backoff::level_after_run(track.backoff_level, *started_at, *finished_at);
            let left = backoff::remaining(level, *finished_at, now);
            if left.is_zero() {
                out.start.push(name.to_string());
            } else {
                out.backing_off.push((name.to_string(), left));
                out.wake(left);
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Instance, RunState, Waiting};
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn shape(init: &[&str], containers: &[&str], policy: Policy) -> Shape {
        Shape {
            init: init.iter().map(|s| s.to_string()).collect(),
            containers: containers.iter().map(|s| s.to_string()).collect(),
            policy,
        }
    }

    fn exited(attempt: u32, code: i32, start: u64, end: u64) -> Track {
        Track {
            current: Some(Instance {
                id: format!("id{attempt}"),
                attempt,
                image: "busybox".into(),
                image_id: "sha256:1".into(),
                state: RunState::Exited {
                    exit_code: code,
                    signal: None,
                    reason: None,
                    message: None,
                    started_at: Some(t(start)),
                    finished_at: t(end),
                },
            }),
            previous: None,
            waiting: None,
            backoff_level: attempt,
            ..Track::default()
        }
    }

    fn running(attempt: u32) -> Track {
        Track {
            current: Some(Instance {
                id: format!("id{attempt}"),
                attempt,
                image: "busybox".into(),
                image_id: "sha256:1".into(),
                state: RunState::Running { started_at: t(0) },
            }),
            ..Track::default()
        }
    }

    #[test]
    fn a_new_pod_starts_its_first_init_container_only() {
        let s = shape(&["i1", "i2"], &["a", "b"], Policy::Always);
        let p = plan(&s, &HashMap::new(), t(0));
        assert_eq!(p.start, vec!["i1"]);
        assert!(!p.finished);
    }

    #[test]
    fn init_containers_run_in_order_then_all_containers_start() {
        let s = shape(&["i1", "i2"], &["a", "b"], Policy::Always);
        let mut tracks = HashMap::from([("i1".to_string(), exited(0, 0, 0, 1))]);
        assert_eq!(plan(&s, &tracks, t(2)).start, vec!["i2"]);
        tracks.insert("i2".into(), running(0));
        assert!(plan(&s, &tracks, t(2)).start.is_empty());
        tracks.insert("i2".into(), exited(0, 0, 1, 2));
        assert_eq!(plan(&s, &tracks, t(3)).start, vec!["a", "b"]);
    }

    #[test]
    fn a_failed_init_container_restarts_unless_the_policy_is_never() {
        let tracks = HashMap::from([("i1".to_string(), exited(0, 1, 0, 1))]);
        let s = shape(&["i1"], &["a"], Policy::Always);
        assert_eq!(plan(&s, &tracks, t(2)).start, vec!["i1"]);
        let s = shape(&["i1"], &["a"], Policy::Never);
        let p = plan(&s, &tracks, t(2));
        assert!(p.start.is_empty());
        assert!(p.finished);
        assert_eq!(init_state(&s, &tracks), InitState::Failed);
    }

    #[test]
    fn restart_policies_decide_on_exit_codes() {
        let ok = HashMap::from([("a".to_string(), exited(0, 0, 0, 1))]);
        let bad = HashMap::from([("a".to_string(), exited(0, 2, 0, 1))]);
        let later = t(100);
        assert_eq!(
            plan(&shape(&[], &["a"], Policy::Always), &ok, later).start,
            vec!["a"]
        );
        assert!(plan(&shape(&[], &["a"], Policy::OnFailure), &ok, later).finished);
        assert_eq!(
            plan(&shape(&[], &["a"], Policy::OnFailure), &bad, later).start,
            vec!["a"]
        );
        assert!(plan(&shape(&[], &["a"], Policy::Never), &bad, later).finished);
    }

    #[test]
    fn a_crashing_container_waits_out_its_back_off() {
        let s = shape(&[], &["a"], Policy::Always);
        // Third run (attempt 2, level 2 = 20 s) finished at t=50.
        let tracks = HashMap::from([("a".to_string(), exited(2, 1, 45, 50))]);
        let p = plan(&s, &tracks, t(55));
        assert!(p.start.is_empty());
        assert_eq!(
            p.backing_off,
            vec![("a".to_string(), Duration::from_secs(15))]
        );
        assert_eq!(p.wake_in, Some(Duration::from_secs(15)));
        assert_eq!(plan(&s, &tracks, t(70)).start, vec!["a"]);
    }

    #[test]
    fn a_container_that_cannot_start_is_retried_when_its_time_comes() {
        let s = shape(&[], &["a"], Policy::Always);
        let tracks = HashMap::from([(
            "a".to_string(),
            Track {
                waiting: Some(Waiting {
                    reason: "ErrImageNeverPull".into(),
                    message: "no image".into(),
                    retry_at: t(10),
                }),
                ..Track::default()
            },
        )]);
        let p = plan(&s, &tracks, t(4));
        assert!(p.start.is_empty());
        assert_eq!(p.wake_in, Some(Duration::from_secs(6)));
        assert_eq!(plan(&s, &tracks, t(10)).start, vec!["a"]);
    }
}
