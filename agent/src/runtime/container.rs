//! The container process between fork and exec: joins the sandbox namespaces,
//! makes its rootfs ([`super::mounts`]), then user, capabilities, no_new_privs,
//! seccomp, and execs. Any failure is written to the error pipe as the message
//! the user sees, and the process exits.

use super::mounts;
use super::record::ContainerMeta;
use super::spec::USER_ANNOTATION;
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::signal::{signal, sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{Capabilities, LinuxNamespaceType, Spec};
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The fds the child gets from the shim.
pub(crate) struct ChildFds {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// CLOEXEC: closed by a successful exec, or carries the error.
    pub error: OwnedFd,
}

/// Sets up and execs; never returns.
pub(crate) fn run(spec: &Spec, meta: &ContainerMeta, dir: &Path, fds: ChildFds) -> ! {
    let ChildFds {
        stdout,
        stderr,
        error,
    } = fds;
    let msg = match setup_and_exec(spec, meta, dir, stdout, stderr) {
        Ok(never) => match never {},
        Err(msg) => msg,
    };
    let mut f = File::from(error);
    let _ = f.write_all(msg.as_bytes());
    drop(f);
    // SAFETY: _exit is always safe; no destructors are wanted in this child.
    unsafe { libc::_exit(127) }
}

enum Never {}

fn setup_and_exec(
    spec: &Spec,
    meta: &ContainerMeta,
    dir: &Path,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<Never, String> {
    // The shim ignores SIGPIPE (Rust's default); the container must not inherit that.
    for sig in [
        Signal::SIGPIPE,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        // SAFETY: resetting to the default disposition installs no handler.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);

    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(|e| format!("dup2 stdin: {e}"))?;
    nix::unistd::dup2_stdout(stdout.as_fd()).map_err(|e| format!("dup2 stdout: {e}"))?;
    nix::unistd::dup2_stderr(stderr.as_fd()).map_err(|e| format!("dup2 stderr: {e}"))?;
    drop((null, stdout, stderr));

    // Join the container cgroup by moving our own (only) thread: on cgroup v1
    // writing 0 to `tasks` skips the global threadgroup lock whose RCU sync makes
    // moving another process take up to tens of ms.
    for f in &meta.cgroup_join {
        std::fs::write(f, "0").map_err(|e| format!("join cgroup {}: {e}", f.display()))?;
    }

    let linux = spec.linux().as_ref().ok_or("spec has no linux section")?;
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    for ns in &namespaces {
        let flag = match ns.typ() {
            LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
            LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
            LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
            _ => continue,
        };
        match ns.path() {
            Some(p) => {
                let f =
                    File::open(p).map_err(|e| format!("open namespace {}: {e}", p.display()))?;
                setns(f.as_fd(), flag).map_err(|e| format!("setns {}: {e}", p.display()))?;
            }
            None => unshare(flag).map_err(|e| format!("unshare {:?}: {e}", ns.typ()))?,
        }
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare mount namespace: {e}"))?;

    let rootfs = mounts::setup_rootfs(spec, meta, dir)?;
    mounts::pivot(&rootfs)?;
    mounts::mask_and_protect(spec)?;

    let process = spec.process().as_ref().ok_or("spec has no process")?;
    let cwd = process.cwd();
    if std::fs::metadata(cwd).is_err() {
        let _ = std::fs::create_dir_all(cwd);
    }

    // User: the spec's numbers, refined by the image's /etc/passwd and /etc/group.
    let u = process.user();
    let (mut uid, mut gid) = (u.uid(), u.gid());
    let mut groups: Vec<u32> = u.additional_gids().clone().unwrap_or_default();
    if let Some(user) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(USER_ANNOTATION))
    {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
        let r = super::user::resolve(user, &passwd, &group)?;
        uid = r.uid;
        gid = r.gid;
        for g in r.groups {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
    }

    // Seccomp while we still hold CAP_SYS_ADMIN (no no_new_privs needed).
    if let Some(s) = linux.seccomp() {
        let prog = super::seccomp::compile(s)?;
        super::seccomp::install(&prog).map_err(|e| format!("install seccomp filter: {e}"))?;
    }

    let caps = process.capabilities().clone().unwrap_or_default();
    let supported = caps::runtime::thread_all_supported();
    let conv = |set: &Option<Capabilities>| -> caps::CapsHashSet {
        set.iter()
            .flatten()
            .filter_map(|c| {
                caps::to_canonical(&c.to_string())
                    .parse::<caps::Capability>()
                    .ok()
            })
            .filter(|c| supported.contains(c))
            .collect()
    };
    let bounding = conv(caps.bounding());
    for c in &supported {
        if !bounding.contains(c) {
            caps::drop(None, caps::CapSet::Bounding, *c)
                .map_err(|e| format!("drop {c} from bounding set: {e}"))?;
        }
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(format!("keepcaps: {}", std::io::Error::last_os_error()));
    }
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    let g = Gid::from_raw(gid);
    nix::unistd::setresgid(g, g, g).map_err(|e| format!("setgid {gid}: {e}"))?;
    let u = Uid::from_raw(uid);
    nix::unistd::setresuid(u, u, u).map_err(|e| format!("setuid {uid}: {e}"))?;
    caps::set(None, caps::CapSet::Inheritable, &conv(caps.inheritable()))
        .map_err(|e| format!("set inheritable caps: {e}"))?;
    caps::set(None, caps::CapSet::Effective, &conv(caps.effective()))
        .map_err(|e| format!("set effective caps: {e}"))?;
    caps::set(None, caps::CapSet::Permitted, &conv(caps.permitted()))
        .map_err(|e| format!("set permitted caps: {e}"))?;
    for c in conv(caps.ambient()) {
        let _ = caps::raise(None, caps::CapSet::Ambient, c);
    }
    if process.no_new_privileges() == Some(true) {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
        }
    }

    nix::unistd::chdir(cwd)
        .map_err(|e| format!("chdir to cwd ({:?}) set in config.json failed: {e}", cwd))?;
    let args = process.args().clone().unwrap_or_default();
    let env = process.env().clone().unwrap_or_default();
    let arg0 = args.first().ok_or("no command")?;
    let path = find_executable(arg0, &env)?;
    let cstr = |s: &[u8]| {
        CString::new(s).map_err(|_| format!("{:?} contains a NUL byte", String::from_utf8_lossy(s)))
    };
    let cpath = cstr(path.as_os_str().as_bytes())?;
    let cargs = args
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let cenv = env
        .iter()
        .map(|a| cstr(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let e = match nix::unistd::execve(&cpath, &cargs, &cenv) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    Err(format!("exec: {:?}: {}", arg0, errno_text(e)))
}

fn errno_text(e: nix::errno::Errno) -> String {
    std::io::Error::from_raw_os_error(e as i32)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or("")
        .to_lowercase()
}

/// The file to exec for `arg0`, searching the container's PATH.
fn find_executable(arg0: &str, env: &[String]) -> Result<PathBuf, String> {
    if arg0.contains('/') {
        return Ok(PathBuf::from(arg0));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for d in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(d).join(arg0);
        if nix::unistd::access(&p, nix::unistd::AccessFlags::X_OK).is_ok()
            && std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false)
        {
            return Ok(p);
        }
    }
    Err(format!(
        "exec: {arg0:?}: executable file not found in $PATH"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_read_like_runc() {
        assert_eq!(
            errno_text(nix::errno::Errno::ENOENT),
            "no such file or directory"
        );
        let e = find_executable("surely-not-a-binary-xyz", &["PATH=/bin".into()]).unwrap_err();
        assert_eq!(
            e,
            "exec: \"surely-not-a-binary-xyz\": executable file not found in $PATH"
        );
        assert_eq!(
            find_executable("/bin/x", &[]).unwrap(),
            PathBuf::from("/bin/x")
        );
    }
}
