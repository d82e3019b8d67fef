//! Pod sandboxes: the net, uts and ipc namespaces a pod's containers share, kept
//! alive without any process by bind-mounting their nsfs files under
//! `<pod-dir>/ns/`; the pod's /etc files; the pod cgroup. Teardown drops them.

use super::cgroups::Cgroups;
use super::spec::SandboxPaths;
use super::{record, RuntimeError, SandboxSpec};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
};
use std::fs;
use std::path::{Path, PathBuf};

/// The namespace kinds a sandbox may own, with their clone flag.
const KINDS: [(&str, CloneFlags); 3] = [
    ("net", CloneFlags::CLONE_NEWNET),
    ("uts", CloneFlags::CLONE_NEWUTS),
    ("ipc", CloneFlags::CLONE_NEWIPC),
];

/// The files of a sandbox at `dir`.
pub fn paths(dir: &Path, sb: &SandboxSpec) -> SandboxPaths {
    let ns = dir.join("ns");
    SandboxPaths {
        net: (!sb.host_network).then(|| ns.join("net")),
        uts: (!sb.host_network).then(|| ns.join("uts")),
        ipc: (!sb.host_ipc).then(|| ns.join("ipc")),
        host_pid: sb.host_pid,
        hosts: dir.join("etc/hosts"),
        hostname: dir.join("etc/hostname"),
        resolv_conf: dir.join("etc/resolv.conf"),
    }
}

/// Makes a sandbox; on error the caller removes what was made.
pub fn create(
    dir: &Path,
    sb: &SandboxSpec,
    log_dir: &Path,
    cgroups: &Cgroups,
    rel: &Path,
) -> Result<(), RuntimeError> {
    if sb.hostname.is_empty() || sb.hostname.len() > 63 {
        return Err(RuntimeError::Spec(format!(
            "bad hostname {:?}",
            sb.hostname
        )));
    }
    for d in ["ns", "etc", "containers"] {
        let p = dir.join(d);
        fs::create_dir_all(&p).map_err(RuntimeError::io("create", &p))?;
    }
    let p = paths(dir, sb);
    let write =
        |path: &Path, text: &str| fs::write(path, text).map_err(RuntimeError::io("write", path));
    write(&p.hosts, &sb.hosts_file)?;
    write(&p.hostname, &format!("{}\n", sb.hostname))?;
    write(&p.resolv_conf, &sb.resolv_conf)?;

    let wanted: Vec<(&'static str, CloneFlags, PathBuf)> = KINDS
        .iter()
        .filter_map(|(kind, flag)| {
            let path = match *kind {
                "net" => p.net.clone(),
                "uts" => p.uts.clone(),
                _ => p.ipc.clone(),
            }?;
            Some((*kind, *flag, path))
        })
        .collect();
    if !wanted.is_empty() {
        let hostname = sb.hostname.clone();
        std::thread::Builder::new()
            .name("bosun-sandbox".into())
            .spawn(move || make_namespaces(&wanted, &hostname))
            .map_err(RuntimeError::io("spawn thread for", "sandbox"))?
            .join()
            .unwrap_or_else(|_| Err(RuntimeError::Spec("sandbox thread panicked".into())))?;
    }
    cgroups.create(rel, Some(&linux_resources(&sb.resources)))?;
    fs::create_dir_all(log_dir).map_err(RuntimeError::io("create", log_dir))?;
    record::write_json(&dir.join("sandbox.json"), sb)
}

/// On a throwaway thread: unshare, set the hostname, bring lo up, and pin each
/// namespace by bind-mounting /proc/thread-self/ns/<kind> onto its file.
fn make_namespaces(
    wanted: &[(&'static str, CloneFlags, PathBuf)],
    hostname: &str,
) -> Result<(), RuntimeError> {
    let flags = wanted.iter().fold(CloneFlags::empty(), |f, w| f | w.1);
    unshare(flags).map_err(RuntimeError::sys("unshare pod namespaces"))?;
    if flags.contains(CloneFlags::CLONE_NEWUTS) {
        nix::unistd::sethostname(hostname).map_err(RuntimeError::sys("sethostname"))?;
    }
    if flags.contains(CloneFlags::CLONE_NEWNET) {
        loopback_up()?;
    }
    for (kind, _, path) in wanted {
        fs::File::create(path).map_err(RuntimeError::io("create", path))?;
        let src = format!("/proc/thread-self/ns/{kind}");
        mount(
            Some(src.as_str()),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(RuntimeError::sys(format!(
            "bind-mount {src} on {}",
            path.display()
        )))?;
    }
    Ok(())
}

/// Sets IFF_UP on `lo` of the calling thread's network namespace.
fn loopback_up() -> Result<(), RuntimeError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(RuntimeError::sys("socket for lo"))?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and fills ifru_flags of our ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) } < 0 {
        return Err(RuntimeError::io("get flags of", "lo")(
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: the union was filled as flags by SIOCGIFFLAGS just above.
    unsafe { ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS reads our ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) } < 0 {
        return Err(RuntimeError::io("set lo", "up")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The pod cgroup limits as OCI resources.
pub fn linux_resources(r: &super::PodResources) -> LinuxResources {
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(s) = r.cpu_shares {
        cpu = cpu.shares(s);
    }
    if let Some(q) = r.cpu_quota_us {
        cpu = cpu.quota(q).period(r.cpu_period_us);
    }
    let mut b = LinuxResourcesBuilder::default();
    if let Ok(cpu) = cpu.build() {
        b = b.cpu(cpu);
    }
    if let Some(l) = r.memory_limit {
        if let Ok(m) = LinuxMemoryBuilder::default().limit(l).build() {
            b = b.memory(m);
        }
    }
    b.build().unwrap_or_default()
}

/// Drops a sandbox: unmounts its namespace files, removes its cgroups, its dir
/// and its log dir. Missing pieces are fine.
pub fn remove(
    dir: &Path,
    cgroups: &Cgroups,
    rel: &Path,
    log_dir: Option<&Path>,
) -> Result<(), RuntimeError> {
    for (kind, _) in KINDS {
        let f = dir.join("ns").join(kind);
        match umount2(&f, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(RuntimeError::sys(format!("unmount {}", f.display()))(e)),
        }
    }
    cgroups.remove(rel)?;
    discard(dir)?;
    if let Some(l) = log_dir {
        discard(l)?;
    }
    Ok(())
}

/// The trash dir next to `dir`, where removed dirs wait for deletion.
pub fn trash_of(dir: &Path) -> Option<PathBuf> {
    dir.parent().map(|p| p.join(TRASH))
}

/// Name of the dirs whose content is deleted in the background.
pub const TRASH: &str = ".trash";

/// Removes `dir` at once by renaming it into the trash next to it, then
/// deletes it on a background thread (unlinking a container's files can take
/// tens of ms when the disk is busy). Falls back to deleting in place.
fn discard(dir: &Path) -> Result<(), RuntimeError> {
    if fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    let moved = trash_of(dir).and_then(|trash| {
        fs::create_dir_all(&trash).ok()?;
        let nanos = record::unix_nanos(std::time::SystemTime::now());
        let name = format!("{}-{nanos}", dir.file_name()?.to_string_lossy());
        let to = trash.join(name);
        fs::rename(dir, &to).ok().map(|()| to)
    });
    match moved {
        Some(to) => {
            let spawned = std::thread::Builder::new()
                .name("bosun-trash".into())
                .spawn({
                    let to = to.clone();
                    move || {
                        let _ = fs::remove_dir_all(&to);
                    }
                })
                .is_ok();
            if !spawned {
                let _ = fs::remove_dir_all(&to);
            }
            Ok(())
        }
        None => match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("remove", dir)(e)),
        },
    }
}

/// Deletes what an earlier agent left in the trash under `parent`.
pub fn empty_trash(parent: &Path) {
    let trash = parent.join(TRASH);
    if trash.exists() {
        let _ = std::thread::Builder::new()
            .name("bosun-trash".into())
            .spawn(move || {
                let _ = fs::remove_dir_all(&trash);
            });
    }
}
