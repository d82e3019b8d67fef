//! Where a container's log files are: `<log-root>/<ns>_<pod>_<uid>/<container>/<n>.log`,
//! `n` being the attempt (restart count); the highest is the current attempt.
//! Rotated files are `<n>.log.<unix-nanos>` beside it.

use std::path::{Path, PathBuf};

use super::LogError;

/// The log directory of a pod.
pub fn pod_dir(log_root: &Path, namespace: &str, pod: &str, uid: &str) -> PathBuf {
    log_root.join(format!("{namespace}_{pod}_{uid}"))
}

/// The log directory of one container of a pod.
pub fn container_dir(
    log_root: &Path,
    namespace: &str,
    pod: &str,
    uid: &str,
    container: &str,
) -> PathBuf {
    pod_dir(log_root, namespace, pod, uid).join(container)
}

/// One attempt's current log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFile {
    /// The container's log directory.
    pub dir: PathBuf,
    pub attempt: u32,
}

impl LogFile {
    /// `<dir>/<attempt>.log`.
    pub fn path(&self) -> PathBuf {
        attempt_path(&self.dir, self.attempt)
    }

    /// Whether a later attempt's file exists, i.e. this attempt is over.
    pub fn superseded(&self) -> bool {
        attempts(&self.dir).is_ok_and(|a| a.last().is_some_and(|n| *n > self.attempt))
    }
}

pub(crate) fn attempt_path(dir: &Path, attempt: u32) -> PathBuf {
    dir.join(format!("{attempt}.log"))
}

/// The attempts that have a current file in `dir`, ascending.
fn attempts(dir: &Path) -> std::io::Result<Vec<u32>> {
    let mut found: Vec<u32> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
        })
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The file to read in a container's log directory: the highest attempt, or with
/// `previous` the highest one below it. `pod` and `container` name the error.
pub fn locate(dir: &Path, pod: &str, container: &str, previous: bool) -> Result<LogFile, LogError> {
    let found = match attempts(dir) {
        Ok(found) => found,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return Err(LogError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let pick = if previous {
        found.iter().rev().nth(1)
    } else {
        found.last()
    };
    match pick {
        Some(&attempt) => Ok(LogFile {
            dir: dir.to_path_buf(),
            attempt,
        }),
        None if previous => Err(LogError::NoPrevious {
            pod: pod.to_string(),
            container: container.to_string(),
        }),
        None => Err(LogError::NoLogs {
            pod: pod.to_string(),
            container: container.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_current_and_previous_attempts() {
        let root = tempfile::tempdir().unwrap();
        let dir = container_dir(root.path(), "ns", "web", "u1", "app");
        assert_eq!(dir, root.path().join("ns_web_u1/app"));
        let e = locate(&dir, "web", "app", false).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(
            e.to_string(),
            "container \"app\" in pod \"web\" has no log file"
        );
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["0.log", "2.log", "10.log", "10.log.1700000000", "junk"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let cur = locate(&dir, "web", "app", false).unwrap();
        assert_eq!(cur.attempt, 10);
        assert_eq!(cur.path(), dir.join("10.log"));
        assert!(!cur.superseded());
        let prev = locate(&dir, "web", "app", true).unwrap();
        assert_eq!(prev.attempt, 2);
        assert!(prev.superseded());
        std::fs::remove_file(dir.join("0.log")).unwrap();
        std::fs::remove_file(dir.join("2.log")).unwrap();
        let e = locate(&dir, "web", "app", true).unwrap_err();
        assert!(e.is_not_found());
        assert!(e.to_string().starts_with("previous terminated container"));
    }
}
