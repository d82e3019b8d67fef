//! A pod's status as the kubelet reports it — phase, conditions, container
//! statuses — computed from its spec, what its containers did and the plan for
//! them. Pure; the worker writes the result to pods/status when it changed.

use std::collections::HashMap;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};

use super::model::{Instance, RunState, Track};
use super::plan::{init_state, InitState, Plan, Policy, Shape};

/// What the status is computed from, besides the containers.
pub struct Inputs<'a> {
    pub pod: &'a Pod,
    pub shape: &'a Shape,
    pub tracks: &'a HashMap<String, Track>,
    pub plan: &'a Plan,
    /// The pod's sandbox exists.
    pub sandbox_ready: bool,
    pub host_ip: &'a str,
    /// The pod's address, when it has one.
    pub pod_ip: Option<&'a str>,
    pub qos_class: &'a str,
    /// When the kubelet first took the pod on.
    pub start_time: SystemTime,
    pub now: SystemTime,
}

/// Kubernetes `Time` (seconds, UTC).
pub fn k8s_time(t: SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The pod's phase, by the kubelet's rules.
pub fn phase(shape: &Shape, tracks: &HashMap<String, Track>, plan: &Plan) -> &'static str {
    match init_state(shape, tracks) {
        InitState::Failed => return "Failed",
        InitState::Pending => return "Pending",
        InitState::Done => {}
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for name in &shape.containers {
        let current = tracks.get(name).and_then(|t| t.current.as_ref());
        match current.map(|i| &i.state) {
            Some(RunState::Running { .. }) => running += 1,
            Some(RunState::Exited { exit_code, .. }) => {
                stopped += 1;
                if *exit_code == 0 {
                    succeeded += 1;
                }
            }
            None => waiting += 1,
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if shape.policy == Policy::Always || !plan.finished {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        return "Failed";
    }
    "Pending"
}

/// The whole `status` object.
pub fn pod_status(inp: &Inputs<'_>) -> Value {
    let phase = phase(inp.shape, inp.tracks, inp.plan);
    let spec = inp.pod.spec.as_ref();
    let uid = inp.pod.metadata.uid.as_deref().unwrap_or_default();
    let pod_name = inp.pod.metadata.name.as_deref().unwrap_or_default();
    let ns = inp.pod.metadata.namespace.as_deref().unwrap_or("default");
    let pod_label = format!("{pod_name}_{ns}({uid})");

    let images: HashMap<&str, &str> = spec
        .into_iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .map(|c| (c.name.as_str(), c.image.as_deref().unwrap_or_default()))
        .collect();

    let init = init_state(inp.shape, inp.tracks);
    let init_statuses: Vec<Value> = inp
        .shape
        .init
        .iter()
        .map(|n| {
            let ready = inp
                .tracks
                .get(n)
                .and_then(|t| t.current.as_ref())
                .is_some_and(|i| i.state.exit_code() == Some(0));
            container_status(
                n,
                images.get(n.as_str()).copied(),
                inp,
                ready,
                "PodInitializing",
                &pod_label,
            )
        })
        .collect();
    let waiting_reason = if init == InitState::Done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<Value> = inp
        .shape
        .containers
        .iter()
        .map(|n| {
            let ready = inp.tracks.get(n).is_some_and(Track::is_running);
            container_status(
                n,
                images.get(n.as_str()).copied(),
                inp,
                ready,
                waiting_reason,
                &pod_label,
            )
        })
        .collect();

    let unready: Vec<&str> = inp
        .shape
        .containers
        .iter()
        .filter(|n| !inp.tracks.get(*n).is_some_and(Track::is_running))
        .map(String::as_str)
        .collect();
    let incomplete: Vec<&str> = inp
        .shape
        .init
        .iter()
        .filter(|n| {
            inp.tracks
                .get(*n)
                .and_then(|t| t.current.as_ref())
                .and_then(|i| i.state.exit_code())
                != Some(0)
        })
        .map(String::as_str)
        .collect();
    let terminal = matches!(phase, "Succeeded" | "Failed");

    let old: Vec<Value> = inp
        .pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect();
    let now = k8s_time(inp.now);
    let cond = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c["type"] == type_ && c["status"] == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now.clone()));
        let mut c = Map::new();
        c.insert("type".into(), json!(type_));
        c.insert("status".into(), json!(status));
        c.insert("lastProbeTime".into(), Value::Null);
        c.insert("lastTransitionTime".into(), since);
        if let Some(r) = reason {
            c.insert("reason".into(), json!(r));
        }
        if let Some(m) = message {
            c.insert("message".into(), json!(m));
        }
        Value::Object(c)
    };
    let list = |names: &[&str]| format!("[{}]", names.join(" "));
    let mut conditions = vec![
        cond("PodReadyToStartContainers", inp.sandbox_ready, None, None),
        if init == InitState::Done {
            cond("Initialized", true, None, None)
        } else {
            cond(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(format!(
                    "containers with incomplete status: {}",
                    list(&incomplete)
                )),
            )
        },
    ];
    let ready_cond = |type_: &str| {
        if terminal {
            cond(type_, false, Some("PodCompleted"), None)
        } else if unready.is_empty() {
            cond(type_, true, None, None)
        } else {
            cond(
                type_,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: {}",
                    list(&unready)
                )),
            )
        }
    };
    conditions.push(ready_cond("Ready"));
    conditions.push(ready_cond("ContainersReady"));
    // Conditions the kubelet does not own (PodScheduled, readiness gates) stay.
    let owned = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
    ];
    for c in &old {
        if !owned.iter().any(|o| c["type"] == *o) {
            conditions.push(c.clone());
        }
    }

    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    status.insert("conditions".into(), Value::Array(conditions));
    status.insert("hostIP".into(), json!(inp.host_ip));
    status.insert("hostIPs".into(), json!([{ "ip": inp.host_ip }]));
    if let Some(ip) = inp.pod_ip {
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{ "ip": ip }]));
    }
    status.insert("startTime".into(), json!(k8s_time(inp.start_time)));
    status.insert("qosClass".into(), json!(inp.qos_class));
    if !init_statuses.is_empty() {
        status.insert("initContainerStatuses".into(), Value::Array(init_statuses));
    }
    status.insert("containerStatuses".into(), Value::Array(statuses));
    Value::Object(status)
}

fn terminated(i: &Instance) -> Value {
    let RunState::Exited {
        exit_code,
        signal,
        message,
        started_at,
        finished_at,
        ..
    } = &i.state
    else {
        return json!({});
    };
    let mut t = Map::new();
    t.insert("exitCode".into(), json!(exit_code));
    if let Some(s) = signal {
        t.insert("signal".into(), json!(s));
    }
    t.insert("reason".into(), json!(i.state.terminated_reason()));
    if let Some(m) = message {
        t.insert("message".into(), json!(m));
    }
    t.insert(
        "startedAt".into(),
        started_at.map_or(Value::Null, |s| json!(k8s_time(s))),
    );
    t.insert("finishedAt".into(), json!(k8s_time(*finished_at)));
    if !i.id.is_empty() {
        t.insert("containerID".into(), json!(container_id(&i.id)));
    }
    json!({ "terminated": Value::Object(t) })
}

/// The `containerID` Kubernetes shows for a runtime id.
pub fn container_id(id: &str) -> String {
    format!("bosun://{id}")
}

fn container_status(
    name: &str,
    spec_image: Option<&str>,
    inp: &Inputs<'_>,
    ready: bool,
    not_started: &str,
    pod_label: &str,
) -> Value {
    let track = inp.tracks.get(name);
    let current = track.and_then(|t| t.current.as_ref());
    let backing_off = inp.plan.backing_off.iter().find(|(n, _)| n == name);
    let (state, last) = match (track.and_then(|t| t.waiting.as_ref()), current) {
        (Some(w), cur) => (
            json!({"waiting": {"reason": w.reason, "message": w.message}}),
            cur.map_or(json!({}), terminated),
        ),
        (None, None) => (json!({"waiting": {"reason": not_started}}), json!({})),
        (None, Some(cur)) => match &cur.state {
            RunState::Running { started_at } => (
                json!({"running": {"startedAt": k8s_time(*started_at)}}),
                track
                    .and_then(|t| t.previous.as_ref())
                    .map_or(json!({}), terminated),
            ),
            RunState::Exited { .. } => match backing_off {
                Some((_, _)) => {
                    let level = track.map_or(0, |t| t.backoff_level);
                    let secs = super::backoff::delay(level).as_secs();
                    (
                        json!({"waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": format!("back-off {} restarting failed container={name} pod={pod_label}", human(secs)),
                        }}),
                        terminated(cur),
                    )
                }
                None => (
                    terminated(cur),
                    track
                        .and_then(|t| t.previous.as_ref())
                        .map_or(json!({}), terminated),
                ),
            },
        },
    };
    let mut s = Map::new();
    s.insert("name".into(), json!(name));
    s.insert("state".into(), state);
    s.insert("lastState".into(), last);
    s.insert("ready".into(), json!(ready));
    s.insert(
        "restartCount".into(),
        json!(track.map_or(0, Track::restart_count)),
    );
    s.insert(
        "image".into(),
        json!(current.map_or(spec_image.unwrap_or_default(), |i| i.image.as_str())),
    );
    s.insert(
        "imageID".into(),
        json!(current.map_or("", |i| i.image_id.as_str())),
    );
    if let Some(i) = current.filter(|i| !i.id.is_empty()) {
        s.insert("containerID".into(), json!(container_id(&i.id)));
    }
    s.insert(
        "started".into(),
        json!(current.is_some_and(|i| i.state.is_running())),
    );
    Value::Object(s)
}

/// Seconds the way Go prints a Duration: `10s`, `2m40s`, `5m0s`.
fn human(secs: u64) -> String {
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Waiting;
    use super::*;
    use std::time::Duration;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T22:13:00Z"}
            ]}
        }))
        .unwrap()
    }

    fn run(attempt: u32, state: RunState) -> Instance {
        Instance {
            id: format!("c{attempt}"),
            attempt,
            image: "docker.io/library/busybox:latest".into(),
            image_id: "sha256:abc".into(),
            state,
        }
    }

    fn exited(code: i32, reason: Option<&str>) -> RunState {
        RunState::Exited {
            exit_code: code,
            signal: None,
            reason: reason.map(String::from),
            message: None,
            started_at: Some(t(1)),
            finished_at: t(5),
        }
    }

    fn status(pod: &Pod, shape: &Shape, tracks: &HashMap<String, Track>, plan: &Plan) -> Value {
        pod_status(&Inputs {
            pod,
            shape,
            tracks,
            plan,
            sandbox_ready: true,
            host_ip: "10.0.0.2",
            pod_ip: None,
            qos_class: "BestEffort",
            start_time: t(0),
            now: t(10),
        })
    }

    fn shape(policy: Policy) -> Shape {
        Shape {
            init: vec![],
            containers: vec!["a".into(), "b".into()],
            policy,
        }
    }

    #[test]
    fn a_pod_with_all_containers_running_is_running_and_ready() {
        let pod = pod();
        let tracks = HashMap::from([
            (
                "a".to_string(),
                Track {
                    current: Some(run(0, RunState::Running { started_at: t(2) })),
                    ..Track::default()
                },
            ),
            (
                "b".to_string(),
                Track {
                    current: Some(run(0, RunState::Running { started_at: t(3) })),
                    ..Track::default()
                },
            ),
        ]);
        let s = status(&pod, &shape(Policy::Always), &tracks, &Plan::default());
        assert_eq!(s["phase"], "Running");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "True");
        let sched = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "PodScheduled")
            .unwrap();
        assert_eq!(sched["lastTransitionTime"], "2023-11-14T22:13:00Z");
        let a = &s["containerStatuses"][0];
        assert_eq!(a["state"]["running"]["startedAt"], k8s_time(t(2)));
        assert_eq!(a["containerID"], "bosun://c0");
        assert_eq!(a["ready"], true);
        assert_eq!(a["restartCount"], 0);
        assert_eq!(s["startTime"], k8s_time(t(0)));
        assert_eq!(s["hostIP"], "10.0.0.2");
    }

    #[test]
    fn a_container_not_started_yet_is_creating_and_the_pod_pending() {
        let pod = pod();
        let tracks = HashMap::from([(
            "a".to_string(),
            Track {
                current: Some(run(0, RunState::Running { started_at: t(2) })),
                ..Track::default()
            },
        )]);
        let s = status(&pod, &shape(Policy::Always), &tracks, &Plan::default());
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][1]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert_eq!(s["containerStatuses"][1]["image"], "busybox");
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "ContainersReady")
            .unwrap();
        assert_eq!(ready["message"], "containers with unready status: [b]");
    }

    #[test]
    fn a_crash_looping_container_shows_back_off_and_its_last_termination() {
        let pod = pod();
        let tracks = HashMap::from([
            (
                "a".to_string(),
                Track {
                    current: Some(run(2, exited(137, Some("OOMKilled")))),
                    backoff_level: 2,
                    ..Track::default()
                },
            ),
            (
                "b".to_string(),
                Track {
                    current: Some(run(0, RunState::Running { started_at: t(2) })),
                    ..Track::default()
                },
            ),
        ]);
        let plan = Plan {
            backing_off: vec![("a".into(), Duration::from_secs(15))],
            ..Plan::default()
        };
        let s = status(&pod, &shape(Policy::Always), &tracks, &plan);
        let a = &s["containerStatuses"][0];
        assert_eq!(a["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(
            a["state"]["waiting"]["message"],
            "back-off 20s restarting failed container=a pod=web_default(u1)"
        );
        assert_eq!(a["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(a["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(a["restartCount"], 2);
        assert_eq!(s["phase"], "Running");
    }

    #[test]
    fn terminal_phases_follow_the_restart_policy() {
        let pod = pod();
        let done = |a: i32, b: i32| {
            HashMap::from([
                (
                    "a".to_string(),
                    Track {
                        current: Some(run(0, exited(a, None))),
                        ..Track::default()
                    },
                ),
                (
                    "b".to_string(),
                    Track {
                        current: Some(run(0, exited(b, None))),
                        ..Track::default()
                    },
                ),
            ])
        };
        let fin = Plan {
            finished: true,
            ..Plan::default()
        };
        let s = status(&pod, &shape(Policy::Never), &done(0, 0), &fin);
        assert_eq!(s["phase"], "Succeeded");
        assert_eq!(
            s["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
        let s = status(&pod, &shape(Policy::Never), &done(0, 1), &fin);
        assert_eq!(s["phase"], "Failed");
        assert_eq!(
            s["containerStatuses"][1]["state"]["terminated"]["reason"],
            "Error"
        );
        let ready = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["reason"], "PodCompleted");
        let s = status(
            &pod,
            &shape(Policy::OnFailure),
            &done(0, 1),
            &Plan::default(),
        );
        assert_eq!(s["phase"], "Running");
    }

    #[test]
    fn init_containers_hold_the_pod_in_pending_with_pod_initializing() {
        let pod = pod();
        let shape = Shape {
            init: vec!["i".into()],
            containers: vec!["a".into()],
            policy: Policy::Always,
        };
        let tracks = HashMap::from([(
            "i".to_string(),
            Track {
                current: Some(run(0, RunState::Running { started_at: t(1) })),
                ..Track::default()
            },
        )]);
        let s = status(&pod, &shape, &tracks, &Plan::default());
        assert_eq!(s["phase"], "Pending");
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let init = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Initialized")
            .unwrap();
        assert_eq!(init["message"], "containers with incomplete status: [i]");
    }

    #[test]
    fn an_image_problem_is_shown_as_waiting_with_its_message() {
        let pod = pod();
        let tracks = HashMap::from([(
            "a".to_string(),
            Track {
                waiting: Some(Waiting {
                    reason: "ErrImageNeverPull".into(),
                    message: "not here".into(),
                    retry_at: t(20),
                }),
                ..Track::default()
            },
        )]);
        let s = status(&pod, &shape(Policy::Always), &tracks, &Plan::default());
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["reason"],
            "ErrImageNeverPull"
        );
        assert_eq!(
            s["containerStatuses"][0]["state"]["waiting"]["message"],
            "not here"
        );
    }
}
