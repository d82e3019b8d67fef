//! The init of a pod's shared PID namespace (shareProcessNamespace), like the
//! kubelet's pause container, run as `bosun shim pause <pod-dir> <cgroup-file>…`.
//!
//! The first process joins the pod's `pause` cgroup (writing "0" to the given
//! files), unshares a PID namespace and forks the init: PID 1 of that namespace,
//! in its own session, not the agent's child (so it survives the agent's kill
//! -9). The first process then pins the namespace by bind-mounting
//! `/proc/<init>/ns/pid` on `<pod-dir>/ns/pid` (the path containers' shims
//! setns into: stable, and never another process's namespace after a pid
//! reuse), records the init in `<pod-dir>/pause.json`, reports "ok <pid>" or
//! "err <message>" on its stdout and exits.
//!
//! The init blocks its signals and waits for them synchronously: SIGCHLD reaps
//! every zombie (orphans of the pod's containers are re-parented to it), SIGTERM
//! or SIGINT end it — and with it, by the kernel, every process of the
//! namespace. Single-threaded and without tokio, like the shim.

use super::record::{self, ShimRecord};
use super::{sys, RuntimeError};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::ffi::OsString;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The record of the init in the pod dir.
pub const RECORD: &str = "pause.json";

/// The signals the init waits for (blocked, so that they are queued even though
/// the init of a PID namespace ignores default-handled signals).
fn signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set
}

/// Entry point of `bosun shim pause <pod-dir> <cgroup-file>…`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("bosun: usage: bosun shim pause <pod-dir> <cgroup-file>... (internal)");
        return ExitCode::from(64);
    };
    let join: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
    match start(&dir, &join) {
        Ok(pid) => {
            println!("ok {pid}");
            ExitCode::SUCCESS
        }
        Err(msg) => {
            println!("err {}", msg.replace('\n', " "));
            ExitCode::from(1)
        }
    }
}

fn start(dir: &Path, join: &[PathBuf]) -> Result<i32, String> {
    for f in join {
        std::fs::write(f, "0").map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
    }
    // Blocked before the fork so that the init never misses one.
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals()), None)
        .map_err(|e| format!("block signals: {e}"))?;
    unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid namespace: {e}"))?;
    // SAFETY: this process is single-threaded (the shim is dispatched by `main`
    // before any thread exists).
    let child = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => init(),
        ForkResult::Parent { child } => child,
    };
    match pin(dir, child) {
        Ok(()) => Ok(child.as_raw()),
        Err(msg) => {
            let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            Err(msg)
        }
    }
}

/// Bind-mounts the init's PID namespace on `ns/pid` and writes its record. The
/// init is our child here, so `/proc/<child>` cannot be another process.
fn pin(dir: &Path, child: Pid) -> Result<(), String> {
    let target = dir.join("ns/pid");
    File::create(&target).map_err(|e| format!("create {}: {e}", target.display()))?;
    let src = format!("/proc/{child}/ns/pid");
    mount(
        Some(src.as_str()),
        &target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind-mount {src} on {}: {e}", target.display()))?;
    let start_ticks =
        sys::start_ticks_of(child.as_raw()).ok_or_else(|| format!("no /proc/{child}/stat"))?;
    record::write_json(
        &dir.join(RECORD),
        &ShimRecord {
            pid: child.as_raw(),
            start_ticks,
        },
    )
    .map_err(|e| e.to_string())
}

/// PID 1 of the pod's namespace: reaps zombies until SIGTERM or SIGINT.
fn init() -> ! {
    let _ = nix::unistd::setsid();
    if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null.as_fd());
        let _ = nix::unistd::dup2_stdout(null.as_fd());
        let _ = nix::unistd::dup2_stderr(null.as_fd());
    }
    // Pin no mount of the agent's working dir.
    let _ = nix::unistd::chdir("/");
    let set = signals();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(Signal::SIGTERM | Signal::SIGINT) => {
                // SAFETY: _exit is always safe; nothing is left to flush.
                unsafe { libc::_exit(0) }
            }
            _ => {}
        }
    }
}

/// Reaps every child that has exited.
fn reap() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

/// Kills the init of the pod at `dir` (if it is still the recorded process)
/// and waits up to `timeout` for it to be gone; the kernel then kills every
/// process left in its namespace.
pub fn stop(dir: &Path, timeout: Duration) -> Result<(), RuntimeError> {
    let Some(rec) = record::read_json::<ShimRecord>(&dir.join(RECORD))? else {
        return Ok(());
    };
    let Some(fd) = sys::pidfd_open_checked(rec.pid, rec.start_ticks) else {
        return Ok(());
    };
    sys::pidfd_send_signal(&fd, libc::SIGKILL);
    if !sys::wait_readable(&fd, timeout) {
        return Err(RuntimeError::Timeout {
            what: format!("the pause process {} to exit", rec.pid),
            secs: timeout.as_secs(),
        });
    }
    Ok(())
}

/// Whether the init of the pod at `dir` is alive.
pub fn alive(dir: &Path) -> bool {
    matches!(
        record::read_json::<ShimRecord>(&dir.join(RECORD)),
        Ok(Some(r)) if sys::process_alive(r.pid, r.start_ticks)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_child_term_and_int() {
        let s = signals();
        assert!(s.contains(Signal::SIGCHLD));
        assert!(s.contains(Signal::SIGTERM));
        assert!(s.contains(Signal::SIGINT));
        assert!(!s.contains(Signal::SIGKILL));
    }

    #[test]
    fn stop_without_record_is_fine() {
        let d = tempfile::tempdir().unwrap();
        assert!(stop(d.path(), Duration::from_millis(10)).is_ok());
        assert!(!alive(d.path()));
    }
}
