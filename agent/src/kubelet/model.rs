//! What the kubelet knows about a pod's containers: each container's latest and
//! previous run (an [`Instance`]), or why it cannot start yet. Plain data, shared
//! by the pure planners ([`super::plan`], [`super::status`]) and the worker.

use std::time::SystemTime;

/// How one run of a container stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunState {
    Running {
        started_at: SystemTime,
    },
    Exited {
        exit_code: i32,
        signal: Option<i32>,
        /// Set by the runtime or the kubelet: `OOMKilled`, `StartError`, … —
        /// `None` means "Completed" for code 0 and "Error" otherwise.
        reason: Option<String>,
        message: Option<String>,
        started_at: Option<SystemTime>,
        finished_at: SystemTime,
    },
}

impl RunState {
    /// A run whose state the runtime no longer has (e.g. after a reboot): it
    /// counts as exited with 255, as the kubelet reports it.
    pub fn lost() -> RunState {
        RunState::Exited {
            exit_code: 255,
            signal: None,
            reason: Some("Unknown".into()),
            message: Some("the container's state was lost".into()),
            started_at: None,
            finished_at: SystemTime::now(),
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, RunState::Running { .. })
    }

    /// The exit code, if this run is over.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            RunState::Exited { exit_code, .. } => Some(*exit_code),
            RunState::Running { .. } => None,
        }
    }

    /// The reason Kubernetes shows for a terminated container.
    pub fn terminated_reason(&self) -> Option<String> {
        match self {
            RunState::Exited {
                reason: Some(r), ..
            } => Some(r.clone()),
            RunState::Exited { exit_code: 0, .. } => Some("Completed".into()),
            RunState::Exited { .. } => Some("Error".into()),
            RunState::Running { .. } => None,
        }
    }
}

/// One run (attempt) of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// The runtime's container id; empty when the start failed before there was one.
    pub id: String,
    /// The restart count this run was started with.
    pub attempt: u32,
    /// The image as the status shows it (`docker.io/library/busybox:latest`).
    pub image: String,
    /// The image's id or repo digest.
    pub image_id: String,
    pub state: RunState,
}

/// Why a container that has no run yet (or none to show) is waiting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
    /// When to try starting it again.
    pub retry_at: SystemTime,
}

/// Everything known about one container of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Track {
    /// The latest run.
    pub current: Option<Instance>,
    /// The run before it (the status's `lastState`).
    pub previous: Option<Instance>,
    /// Set while the container cannot be started (bad image, bad config).
    pub waiting: Option<Waiting>,
    /// Crash-loop back-off level: 0 restarts at once, n waits 10 s · 2ⁿ⁻¹ (≤ 5 min).
    pub backoff_level: u32,
    /// Failed image pulls, for ImagePullBackOff.
    pub pull: super::images::PullFailures,
}

impl Track {
    /// A new run replaces the current one, which becomes the previous one.
    pub fn push(&mut self, instance: Instance) {
        self.previous = self.current.take();
        self.current = Some(instance);
        self.waiting = None;
    }

    /// The restart count the status shows.
    pub fn restart_count(&self) -> u32 {
        self.current.as_ref().map_or(0, |i| i.attempt)
    }

    /// The attempt number of the next run.
    pub fn next_attempt(&self) -> u32 {
        self.current.as_ref().map_or(0, |i| i.attempt + 1)
    }

    pub fn is_running(&self) -> bool {
        self.current.as_ref().is_some_and(|i| i.state.is_running())
    }
}
