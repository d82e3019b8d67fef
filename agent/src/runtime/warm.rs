//! A warm shim: `bosun shim --wait`, started before it is needed, reads the
//! directory of its container from stdin and then goes on as any shim. A
//! container start hands its directory over instead of paying for starting the
//! bosun binary; the runtime starts the next warm shim in the background. When
//! the runtime goes away (or the agent dies) the shim's stdin closes and it
//! exits without doing anything.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::{sys, START_TIMEOUT};

/// The argument that makes `bosun shim` wait for its directory on stdin.
pub const WAIT_ARG: &str = "--wait";

pub struct WarmShim {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl WarmShim {
    /// Starts `<exe> shim --wait` (from the calling thread, which must be a
    /// dedicated one: this forks).
    pub fn start(exe: &Path) -> Option<WarmShim> {
        let mut child = Command::new(exe)
            .args(["shim", WAIT_ARG])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| tracing::debug!(error = %e, "starting a warm shim"))
            .ok()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        Some(WarmShim {
            child,
            stdin,
            stdout,
        })
    }

    /// Gives the shim its container directory and returns its report line;
    /// `None` when the shim is gone (the caller then starts one cold).
    pub fn hand_over(mut self, dir: &Path) -> Option<String> {
        let mut stdin = self.stdin.take()?;
        let stdout = self.stdout.take()?;
        let mut line = dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        if stdin.write_all(&line).is_err() {
            return None;
        }
        drop(stdin);
        // The first process forks the supervisor and exits; reap it.
        let _ = self.child.wait();
        let fd = OwnedFd::from(stdout);
        if !sys::wait_readable(&fd, START_TIMEOUT) {
            return None;
        }
        let mut report = String::new();
        let _ = BufReader::new(std::fs::File::from(fd)).read_line(&mut report);
        let report = report.trim_end().to_string();
        (!report.is_empty()).then_some(report)
    }
}

impl Drop for WarmShim {
    /// An unused shim: closing its stdin ends it; reap it.
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            let _ = self.child.wait();
        }
    }
}

/// What a waiting shim reads: its container directory, one line (`None` when
/// stdin closed first).
pub fn read_dir_line(input: &mut impl BufRead) -> Option<std::path::PathBuf> {
    let mut line = String::new();
    input.read_line(&mut line).ok()?;
    let dir = line.trim_end_matches('\n');
    (!dir.is_empty()).then(|| std::path::PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiting_shim_reads_one_directory_or_nothing() {
        let mut input: &[u8] = b"/var/lib/bosun/pods/u1/containers/c1\n";
        assert_eq!(
            read_dir_line(&mut input),
            Some("/var/lib/bosun/pods/u1/containers/c1".into())
        );
        let mut closed: &[u8] = b"";
        assert_eq!(read_dir_line(&mut closed), None);
    }
}
