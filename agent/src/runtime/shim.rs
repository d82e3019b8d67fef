//! The per-container supervisor, run as `bosun shim <container-dir>`. It
//! detaches from the agent (the agent's child forks and exits at once, the
//! grandchild calls setsid: it survives the agent's kill -9 and is not its
//! child), forks the container process into new PID and mount namespaces
//! (the child joins its cgroup itself, see [`super::container`]), reports "ok
//! <pid> <started-unix-ns>" or "err <message>" on its stdout, then writes the
//! container's output as CRI log lines, waits for its exit, tells an OOM kill,
//! writes `exit.json` atomically and exits.
//!
//! Single-threaded and without tokio: it must be dispatched by `main` before any
//! thread exists, so that forking is safe.

use super::cgroups::oom_kills;
use super::container::{self, ChildFds};
use super::log::{CriLog, Splitter};
use super::record::{self, ContainerMeta, ExitRecord, RunRecord, ShimRecord};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

/// Entry point of `bosun shim <container-dir>` (and of `bosun shim pause …`,
/// see [`super::pause`]).
pub fn main(args: Vec<OsString>) -> ExitCode {
    if args.first().map(|a| a == "pause").unwrap_or(false) {
        return super::pause::main(args[1..].to_vec());
    }
    let dir = if args.first().is_some_and(|a| a == super::warm::WAIT_ARG) {
        // A warm shim: its container comes later, on stdin.
        match super::warm::read_dir_line(&mut std::io::stdin().lock()) {
            Some(dir) => dir,
            None => return ExitCode::SUCCESS,
        }
    } else {
        let Some(dir) = args.first().map(PathBuf::from) else {
            eprintln!("bosun: usage: bosun shim <container-dir> (internal)");
            return ExitCode::from(64);
        };
        dir
    };
    // SAFETY: the shim is single-threaded (dispatched before any thread starts).
    match unsafe { fork() } {
        Err(e) => {
            println!("err fork shim: {e}");
            return ExitCode::from(1);
        }
        Ok(ForkResult::Parent { .. }) => return ExitCode::SUCCESS,
        Ok(ForkResult::Child) => {}
    }
    // The parent has exited, so this process is orphaned (re-parented to init
    // or a subreaper): it is not the agent's child and survives its death.
    let _ = nix::unistd::setsid();
    let code = supervise(&dir);
    // SAFETY: _exit is always safe; nothing is left to flush.
    unsafe { libc::_exit(code) }
}

/// The report channel to the agent (our stdout), taken out of fd 1.
struct Report(Option<File>);

impl Report {
    fn take() -> Report {
        let fd = nix::fcntl::fcntl(
            std::io::stdout().as_fd(),
            nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
        )
        .ok();
        // The container's stdio never points at the agent's pipe; 0-2 go to /dev/null.
        if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdin(null.as_fd());
            let _ = nix::unistd::dup2_stdout(null.as_fd());
            let _ = nix::unistd::dup2_stderr(null.as_fd());
        }
        // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
        Report(fd.map(|fd| unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) }))
    }

    fn send(&mut self, line: &str) {
        if let Some(mut f) = self.0.take() {
            let _ = f.write_all(format!("{}\n", line.replace('\n', " ")).as_bytes());
        }
    }
}

fn supervise(dir: &Path) -> i32 {
    let mut report = Report::take();
    let me = std::process::id() as i32;
    if let Some(t) = super::sys::start_ticks_of(me) {
        let _ = record::write_json(
            &dir.join("shim.json"),
            &ShimRecord {
                pid: me,
                start_ticks: t,
            },
        );
    }
    match run(dir, &mut report) {
        Ok(code) => code,
        Err(msg) => {
            let now = record::unix_nanos(SystemTime::now());
            let _ = record::write_json(
                &dir.join("exit.json"),
                &ExitRecord {
                    exit_code: 128,
                    signal: None,
                    oom_killed: false,
                    started_at_ns: now,
                    finished_at_ns: now,
                    message: Some(msg.clone()),
                },
            );
            report.send(&format!("err {msg}"));
            1
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn run(dir: &Path, report: &mut Report) -> Result<i32, String> {
    let meta: ContainerMeta = record::read_meta(dir)
        .map_err(|e| e.to_string())?
        .ok_or("container.json is missing")?;
    let spec = Spec::load(dir.join("config.json")).map_err(|e| format!("read config.json: {e}"))?;
    let mut log = CriLog::open(&meta.log_path, meta.log_max_size)
        .map_err(|e| format!("open log {}: {e}", meta.log_path.display()))?;
    let oom_before: Vec<u64> = meta.oom_files.iter().map(|f| oom_kills(f)).collect();

    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ep_r, ep_w) = pipe()?;

    // The PID namespace applies to our next child.
    let pid_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| {
            ns.iter()
                .find(|n| n.typ() == LinuxNamespaceType::Pid)
                .cloned()
        });
    if let Some(ns) = pid_ns {
        match ns.path() {
            Some(p) => {
                let f = File::open(p).map_err(|e| format!("open {}: {e}", p.display()))?;
                setns(f.as_fd(), CloneFlags::CLONE_NEWPID)
                    .map_err(|e| format!("setns pid: {e}"))?;
            }
            None => unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare pid: {e}"))?,
        }
    }

    // SAFETY: the shim is single-threaded, so the child may run ordinary code.
    let child = match unsafe { fork() }.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Child => {
            drop((out_r, err_r, ep_r));
            let fds = ChildFds {
                stdout: out_w,
                stderr: err_w,
                error: ep_w,
            };
            container::run(&spec, &meta, dir, fds)
        }
        ForkResult::Parent { child } => child,
    };
    drop((out_w, err_w, ep_w));

    let mut msg = String::new();
    let _ = File::from(ep_r).read_to_string(&mut msg);
    if !msg.is_empty() {
        let _ = waitpid(child, None);
        return Err(msg);
    }
    let started = SystemTime::now();
    let started_ns = record::unix_nanos(started);
    record::write_json(
        &dir.join("state.json"),
        &RunRecord {
            pid: child.as_raw(),
            started_at_ns: started_ns,
        },
    )
    .map_err(|e| e.to_string())?;
    report.send(&format!("ok {} {}", child.as_raw(), started_ns));

    let status = pump(child, out_r, err_r, &mut log);
    let (exit_code, signal) = match status {
        WaitStatus::Exited(_, c) => (c, None),
        WaitStatus::Signaled(_, s, _) => (128 + s as i32, Some(s as i32)),
        _ => (255, None),
    };
    let oom_after: Vec<u64> = meta.oom_files.iter().map(|f| oom_kills(f)).collect();
    let oom_killed =
        signal == Some(libc::SIGKILL) && oom_after.iter().zip(&oom_before).any(|(a, b)| a > b);
    record::write_json(
        &dir.join("exit.json"),
        &ExitRecord {
            exit_code,
            signal,
            oom_killed,
            started_at_ns: started_ns,
            finished_at_ns: record::unix_nanos(SystemTime::now()),
            message: None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(0)
}

/// Copies the container's output into the log until it exits; returns its status.
fn pump(child: Pid, out: OwnedFd, err: OwnedFd, log: &mut CriLog) -> WaitStatus {
    let pidfd = super::sys::pidfd_open(child.as_raw());
    let mut streams = [
        (Some(out), Splitter::default(), "stdout"),
        (Some(err), Splitter::default(), "stderr"),
    ];
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let mut fds = Vec::new();
        let mut which = Vec::new();
        for (i, (fd, _, _)) in streams.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                which.push(Some(i));
            }
        }
        if let Some(p) = &pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            which.push(None);
        }
        if fds.is_empty() {
            break;
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<Option<usize>> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| f.revents().map(|r| !r.is_empty()).unwrap_or(false))
            .map(|(_, w)| *w)
            .collect();
        drop(fds);
        let mut exited = false;
        for w in ready {
            match w {
                Some(i) => read_into(&mut streams[i], &mut buf, log, false),
                None => exited = true,
            }
        }
        if exited {
            break;
        }
    }
    let status = loop {
        match waitpid(child, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(s) => break s,
            Err(_) => break WaitStatus::StillAlive,
        }
    };
    // Whatever is still buffered in the pipes (writers may be gone or not).
    for s in streams.iter_mut() {
        if let Some(fd) = &s.0 {
            let _ = nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        }
        read_into(s, &mut buf, log, true);
        if let Some(rest) = s.1.finish() {
            let _ = log.write(s.2, false, &rest, SystemTime::now());
        }
    }
    status
}

/// Reads what is available from one stream into the log; at EOF closes it.
fn read_into(
    s: &mut (Option<OwnedFd>, Splitter, &'static str),
    buf: &mut [u8],
    log: &mut CriLog,
    drain: bool,
) {
    loop {
        let Some(fd) = &s.0 else { return };
        match nix::unistd::read(fd, buf) {
            Ok(0) => {
                s.0 = None;
                return;
            }
            Ok(n) => {
                let now = SystemTime::now();
                for (partial, line) in s.1.push(&buf[..n]) {
                    let _ = log.write(s.2, partial, &line, now);
                }
                if !drain {
                    return;
                }
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => {
                if !drain {
                    s.0 = None;
                }
                return;
            }
        }
    }
}
