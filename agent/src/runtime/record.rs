//! The runtime's on-disk records: what a restarted agent reads back. Every record
//! is written whole (temp file + rename) so a reader never sees half of one.

use super::{ContainerState, RuntimeError, SandboxSpec};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the agent tells the shim about a container (beside `config.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub id: String,
    pub name: String,
    pub attempt: u32,
    pub image_ref: String,
    pub image_id: String,
    /// Unpacked layer dirs, bottom first.
    pub layers: Vec<PathBuf>,
    pub log_path: PathBuf,
    pub log_max_size: u64,
    /// Files the container process writes "0" to, to join its cgroup (v1
    /// `tasks`, v2 `cgroup.procs`).
    pub cgroup_join: Vec<PathBuf>,
    /// v1 `memory.oom_control` or v2 `memory.events` of the container and pod
    /// cgroups, to tell an OOM kill.
    pub oom_files: Vec<PathBuf>,
    pub created_at_ns: u64,
}

/// The shim's identity, to find it again (pid + start time against pid reuse).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimRecord {
    pub pid: i32,
    pub start_ticks: u64,
}

/// The container's main process once it exec'd.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRecord {
    pub pid: i32,
    pub started_at_ns: u64,
}

/// How a container ended; written by the shim before it exits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    pub started_at_ns: u64,
    pub finished_at_ns: u64,
    pub message: Option<String>,
}

pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn from_unix_nanos(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

/// Writes `value` as JSON to `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RuntimeError> {
    let json = serde_json::to_vec(value).map_err(|source| RuntimeError::Record {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, json).map_err(RuntimeError::io("write", &tmp))?;
    fs::rename(&tmp, path).map_err(RuntimeError::io("rename", &tmp))
}

/// Reads a JSON record; None if the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RuntimeError> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| RuntimeError::Record {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::io("read", path)(e)),
    }
}

pub fn read_sandbox(pod_dir: &Path) -> Result<Option<SandboxSpec>, RuntimeError> {
    read_json(&pod_dir.join("sandbox.json"))
}

pub fn read_meta(dir: &Path) -> Result<Option<ContainerMeta>, RuntimeError> {
    read_json(&dir.join("container.json"))
}

pub fn read_shim(dir: &Path) -> Result<Option<ShimRecord>, RuntimeError> {
    read_json(&dir.join("shim.json"))
}

pub fn read_run(dir: &Path) -> Result<Option<RunRecord>, RuntimeError> {
    read_json(&dir.join("state.json"))
}

pub fn read_exit(dir: &Path) -> Result<Option<ExitRecord>, RuntimeError> {
    read_json(&dir.join("exit.json"))
}

/// The ids of the containers recorded under a pod dir.
pub fn container_ids(pod_dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(pod_dir.join("containers")) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| super::ids::is_container_id(n))
        .collect();
    ids.sort();
    ids
}

/// A container's state from its records: an exit record wins; a run record with
/// a live shim is Running; anything else is Unknown.
pub fn state_of(dir: &Path) -> ContainerState {
    if let Ok(Some(exit)) = read_exit(dir) {
        return exited(exit);
    }
    let run = read_run(dir).ok().flatten();
    let shim = read_shim(dir).ok().flatten();
    match (run, shim) {
        (Some(run), Some(shim)) if super::sys::process_alive(shim.pid, shim.start_ticks) => {
            ContainerState::Running {
                pid: run.pid,
                started_at: from_unix_nanos(run.started_at_ns),
            }
        }
        _ => {
            // The shim may have written the record just after we looked.
            match read_exit(dir) {
                Ok(Some(exit)) => exited(exit),
                _ => ContainerState::Unknown,
            }
        }
    }
}

fn exited(e: ExitRecord) -> ContainerState {
    ContainerState::Exited {
        exit_code: e.exit_code,
        signal: e.signal,
        oom_killed: e.oom_killed,
        started_at: from_unix_nanos(e.started_at_ns),
        finished_at: from_unix_nanos(e.finished_at_ns),
        message: e.message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_record_wins_over_run_record() {
        let d = tempfile::tempdir().unwrap();
        write_json(
            &d.path().join("state.json"),
            &RunRecord {
                pid: 1,
                started_at_ns: 5,
            },
        )
        .unwrap();
        assert_eq!(state_of(d.path()), ContainerState::Unknown);
        let e = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            oom_killed: true,
            started_at_ns: 5,
            finished_at_ns: 9,
            message: None,
        };
        write_json(&d.path().join("exit.json"), &e).unwrap();
        assert!(matches!(
            state_of(d.path()),
            ContainerState::Exited {
                exit_code: 137,
                oom_killed: true,
                ..
            }
        ));
        assert!(!d.path().join("exit.tmp").exists());
    }
}
