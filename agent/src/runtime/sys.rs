//! Small safe wrappers over the syscalls nix lacks (pidfd) and over /proc reads
//! about processes.

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// pidfd_open(2).
pub fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; a non-negative result is a
    // new fd that we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just gave us this fd.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// pidfd_open of `pid` if it is still the process that started at `start_ticks`.
pub fn pidfd_open_checked(pid: i32, start_ticks: u64) -> Option<OwnedFd> {
    let fd = pidfd_open(pid)?;
    // Checked after opening: the pidfd pins the process, so if the start time
    // matches now, the fd refers to the right one.
    (start_ticks_of(pid) == Some(start_ticks)).then_some(fd)
}

/// Sends `sig` through a pidfd.
pub fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall; the fd is valid for the call, info is NULL.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    r == 0
}

/// Fields of /proc/<pid>/stat after the command: (state, ppid, start ticks).
pub fn stat_of(pid: i32) -> Option<(char, i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

pub fn parse_stat(s: &str) -> Option<(char, i32, u64)> {
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // rest starts at field 3 (state); ppid is field 4, starttime field 22.
    let state = f.first()?.chars().next()?;
    let ppid = f.get(1)?.parse().ok()?;
    let start = f.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

pub fn start_ticks_of(pid: i32) -> Option<u64> {
    stat_of(pid).map(|s| s.2)
}

/// Whether `pid` is alive (not a zombie) and started at `start_ticks`.
pub fn process_alive(pid: i32, start_ticks: u64) -> bool {
    matches!(stat_of(pid), Some((state, _, t)) if t == start_ticks && state != 'Z')
}

/// Signals `pid` only if its parent is the container's shim (against pid reuse).
pub fn kill_if_child_of(pid: i32, shim: Option<i32>, sig: i32) -> bool {
    let Some(shim) = shim else { return false };
    let Some(fd) = pidfd_open(pid) else {
        return false;
    };
    match stat_of(pid) {
        Some((_, ppid, _)) if ppid == shim => pidfd_send_signal(&fd, sig),
        _ => false,
    }
}

/// Waits up to `timeout` for `fd` to become readable (or hung up).
pub fn wait_readable(fd: &impl AsFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Waits, without a thread, until `fd` (e.g. a pidfd) is readable.
pub async fn readable(fd: OwnedFd) -> std::io::Result<()> {
    // SAFETY: the AsyncFd takes ownership of `fd`, which is neither closed nor
    // replaced while it is registered (it is dropped with the AsyncFd).
    let afd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
    }?;
    let _ = afd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let s = "42 (a b) c) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        assert_eq!(parse_stat(s), Some(('S', 7, 123456)));
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let t = start_ticks_of(me).unwrap();
        assert!(process_alive(me, t));
        assert!(!process_alive(me, t + 1));
    }
}
