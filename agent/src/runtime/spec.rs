//! Pure: the OCI runtime Spec of a container from its pod, the image config and
//! the sandbox paths; the pod's QoS class and pod-cgroup resources. No I/O.

use super::RuntimeError;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Annotation carrying the user to resolve against the rootfs' /etc/passwd and
/// /etc/group in the shim, docker style: `user[:group]` (names or numbers).
pub const USER_ANNOTATION: &str = "io.bosun.user";

/// RLIMIT_NOFILE (soft and hard) of every container, as containerd sets it.
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// The CFS period used for cpu limits, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// The files of a sandbox that a container spec points at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SandboxPaths {
    /// Network namespace file; None = the host's.
    pub net: Option<PathBuf>,
    /// UTS namespace file; None = the host's.
    pub uts: Option<PathBuf>,
    /// IPC namespace file; None = the host's.
    pub ipc: Option<PathBuf>,
    /// Use the host's PID namespace.
    pub host_pid: bool,
    /// The pod's shared PID namespace file (shareProcessNamespace); None = a
    /// new PID namespace per container (unless `host_pid`).
    pub pid: Option<PathBuf>,
    pub hosts: PathBuf,
    pub hostname: PathBuf,
    pub resolv_conf: PathBuf,
}

/// Pod cgroup limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodResources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota_us: Option<i64>,
    pub cpu_period_us: u64,
    pub memory_limit: Option<i64>,
}

/// A volume mounted into the container, already a host path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeMountSpec {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub read_only: bool,
}

/// Everything [`build`] needs.
#[derive(Clone, Copy, Debug)]
pub struct SpecInput<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    /// The image config, if the image has one.
    pub image: Option<&'a ImageConfiguration>,
    /// The container's env, valueFrom already resolved, in order.
    pub env: &'a [(String, String)],
    pub volume_mounts: &'a [VolumeMountSpec],
    pub sandbox: &'a SandboxPaths,
}

/// containerd's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability, for privileged containers (the shim skips the ones the
/// kernel does not know).
const ALL_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// runc's default masked paths.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// runc's default read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn bad(what: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Spec(what.to_string())
}

/// Builds the container's OCI Spec. `linux.cgroupsPath` is left for the runtime.
pub fn build(input: &SpecInput) -> Result<Spec, RuntimeError> {
    let c = input.container;
    let pod_spec = input.pod.spec.as_ref();
    let img = input.image.and_then(|i| i.config().as_ref());

    // Environment: image first, container entries replace by name.
    let mut env: Vec<(String, String)> = Vec::new();
    for kv in img.and_then(|i| i.env().as_ref()).into_iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        set_env(&mut env, k, v);
    }
    for (k, v) in input.env {
        set_env(&mut env, k, v);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH["PATH=".len()..].into()));
    }
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        if let Some(h) = pod_hostname(input.pod) {
            env.push(("HOSTNAME".into(), h));
        }
    }

    let args = merge_args(
        c.command.as_deref(),
        c.args.as_deref(),
        img.and_then(|i| i.entrypoint().as_deref()),
        img.and_then(|i| i.cmd().as_deref()),
        &env,
    );
    if args.is_empty() {
        return Err(bad(format!(
            "no command specified for container {:?}",
            c.name
        )));
    }

    let cwd = c
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| {
            img.and_then(|i| i.working_dir().clone())
                .filter(|w| !w.is_empty())
        })
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(bad(format!("workingDir {cwd:?} is not absolute")));
    }

    let sc = c.security_context.as_ref();
    let psc = pod_spec.and_then(|p| p.security_context.as_ref());
    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);

    // User: numbers where known; names are resolved by the shim.
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(psc.and_then(|p| p.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(psc.and_then(|p| p.run_as_group));
    let image_user = img.and_then(|i| i.user().clone()).unwrap_or_default();
    let (img_u, img_g) = match image_user.split_once(':') {
        Some((u, g)) => (u.to_string(), Some(g.to_string())),
        None => (image_user.clone(), None),
    };
    let user_part = match run_as_user {
        Some(u) => u.to_string(),
        None if img_u.is_empty() => "0".to_string(),
        None => img_u,
    };
    let group_part = match run_as_group {
        Some(g) => Some(g.to_string()),
        None if run_as_user.is_none() => img_g,
        None => None,
    };
    let mut additional: Vec<u32> = Vec::new();
    for g in psc
        .and_then(|p| p.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
    {
        additional.push(u32::try_from(*g).map_err(|_| bad(format!("bad supplemental group {g}")))?);
    }
    let uid = user_part.parse::<u32>().unwrap_or(0);
    let gid = group_part
        .as_deref()
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or(0);
    let user_spec = match &group_part {
        Some(g) => format!("{user_part}:{g}"),
        None => user_part.clone(),
    };
    let user = UserBuilder::default()
        .uid(uid)
        .gid(gid)
        .additional_gids(additional)
        .build()
        .map_err(bad)?;

    // Capabilities.
    let caps: Capabilities = if privileged {
        ALL_CAPS.iter().filter_map(|n| cap(n)).collect()
    } else {
        let mut set: Vec<String> = DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
        let k8s_caps = sc.and_then(|s| s.capabilities.as_ref());
        let drops: Vec<String> = k8s_caps
            .and_then(|c| c.drop.clone())
            .unwrap_or_default()
            .iter()
            .map(|s| norm_cap(s))
            .collect();
        if drops.iter().any(|d| d == "ALL") {
            set.clear();
        } else {
            set.retain(|c| !drops.contains(c));
        }
        for a in k8s_caps.and_then(|c| c.add.clone()).unwrap_or_default() {
            let a = norm_cap(&a);
            if a == "ALL" {
                set = ALL_CAPS.iter().map(|s| s.to_string()).collect();
            } else if !set.contains(&a) {
                set.push(a);
            }
        }
        let mut out = Capabilities::new();
        for n in &set {
            out.insert(cap(n).ok_or_else(|| bad(format!("unknown capability {n:?}")))?);
        }
        out
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(bad)?;

    let no_new_privs = sc.and_then(|s| s.allow_privilege_escalation) == Some(false) && !privileged;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(args)
        .env(
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(no_new_privs)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(NOFILE_LIMIT)
            .soft(NOFILE_LIMIT)
            .build()
            .map_err(bad)?])
        .build()
        .map_err(bad)?;

    let readonly = sc
        .and_then(|s| s.read_only_root_filesystem)
        .unwrap_or(false);
    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(readonly)
        .build()
        .map_err(bad)?;

    let mounts = mounts(input.sandbox, input.volume_mounts, privileged)?;

    let mut namespaces: Vec<LinuxNamespace> = Vec::new();
    let ns = |t: LinuxNamespaceType, p: Option<&Path>| -> Result<LinuxNamespace, RuntimeError> {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if let Some(p) = p {
            b = b.path(p.to_path_buf());
        }
        b.build().map_err(bad)
    };
    namespaces.push(ns(LinuxNamespaceType::Mount, None)?);
    if !input.sandbox.host_pid {
        namespaces.push(ns(LinuxNamespaceType::Pid, input.sandbox.pid.as_deref())?);
    }
    if let Some(p) = &input.sandbox.net {
        namespaces.push(ns(LinuxNamespaceType::Network, Some(p))?);
    }
    if let Some(p) = &input.sandbox.uts {
        namespaces.push(ns(LinuxNamespaceType::Uts, Some(p))?);
    }
    if let Some(p) = &input.sandbox.ipc {
        namespaces.push(ns(LinuxNamespaceType::Ipc, Some(p))?);
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(container_resources(c.resources.as_ref())?);
    if privileged {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new());
    } else {
        linux = linux
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            );
        let profile = sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .or(psc.and_then(|p| p.seccomp_profile.as_ref()));
        if profile.map(|p| p.type_.as_str()) == Some("RuntimeDefault") {
            linux = linux.seccomp(super::seccomp::runtime_default());
        }
    }
    let linux = linux.build().map_err(bad)?;

    let mut annotations = HashMap::new();
    annotations.insert(USER_ANNOTATION.to_string(), user_spec);
    SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(root)
        .mounts(mounts)
        .linux(linux)
        .annotations(annotations)
        .build()
        .map_err(bad)
}

fn pod_hostname(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .or_else(|| pod.metadata.name.clone())
}

fn set_env(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    match env.iter_mut().find(|(name, _)| name == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    }
}

/// Entrypoint/Cmd merged the Kubernetes way, with `$(VAR)` expanded in the
/// pod's command and args.
pub fn merge_args(
    command: Option<&[String]>,
    args: Option<&[String]>,
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
    env: &[(String, String)],
) -> Vec<String> {
    let expand = |v: &[String]| v.iter().map(|s| expand_vars(s, env)).collect::<Vec<_>>();
    let command = command.filter(|c| !c.is_empty());
    let args = args.filter(|a| !a.is_empty());
    let mut out: Vec<String> = match command {
        Some(c) => expand(c),
        None => entrypoint.map(|e| e.to_vec()).unwrap_or_default(),
    };
    match (args, command) {
        (Some(a), _) => out.extend(expand(a)),
        (None, Some(_)) => {}
        (None, None) => out.extend(cmd.map(|c| c.to_vec()).unwrap_or_default()),
    }
    out
}

/// Kubernetes `$(VAR)` expansion: defined vars are replaced, `$$` is a literal
/// `$`, anything else is left as written.
pub fn expand_vars(s: &str, env: &[(String, String)]) -> String {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    api::expansion::expand(s, &lookup)
}

fn norm_cap(s: &str) -> String {
    let u = s.trim().to_ascii_uppercase();
    u.strip_prefix("CAP_").map(str::to_string).unwrap_or(u)
}

fn cap(name: &str) -> Option<Capability> {
    Capability::from_str(&norm_cap(name)).ok()
}

fn mount(dest: &str, typ: &str, src: &Path, opts: &[&str]) -> Result<Mount, RuntimeError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(src)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(bad)
}

fn mounts(
    sb: &SandboxPaths,
    volumes: &[VolumeMountSpec],
    privileged: bool,
) -> Result<Vec<Mount>, RuntimeError> {
    let sys_opts: &[&str] = if privileged {
        &["nosuid", "noexec", "nodev"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let mut out = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", Path::new("sysfs"), sys_opts)?,
    ];
    let taken = |p: &str| volumes.iter().any(|v| v.container_path == Path::new(p));
    for (dest, src) in [
        ("/etc/hosts", &sb.hosts),
        ("/etc/hostname", &sb.hostname),
        ("/etc/resolv.conf", &sb.resolv_conf),
    ] {
        if !taken(dest) {
            out.push(mount(dest, "bind", src, &["rbind", "rprivate", "rw"])?);
        }
    }
    for v in volumes {
        let dest = v
            .container_path
            .to_str()
            .ok_or_else(|| bad("volume path is not UTF-8"))?;
        if !dest.starts_with('/') {
            return Err(bad(format!("mount path {dest:?} is not absolute")));
        }
        let opts: &[&str] = if v.read_only {
            &["rbind", "rprivate", "ro"]
        } else {
            &["rbind", "rprivate", "rw"]
        };
        out.push(mount(dest, "bind", &v.host_path, opts)?);
    }
    Ok(out)
}

/// CPU in millicores from a quantity ("250m", "0.5", "2"), rounded up, as the
/// API server parses it ([`api::quantity`]).
pub fn cpu_millis(q: &Quantity) -> Option<i64> {
    let q = api::quantity::Quantity::parse(&q.0).ok()?;
    i64::try_from(q.millis()).ok()
}

/// Bytes from a quantity ("32Mi", "1G", "128974848", "1e3"), rounded up.
pub fn bytes(q: &Quantity) -> Option<i64> {
    let q = api::quantity::Quantity::parse(&q.0).ok()?;
    i64::try_from(q.value()).ok()
}

/// (cpu millicores, memory bytes) of requests (defaulted to limits) and limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Res {
    req_cpu: Option<i64>,
    req_mem: Option<i64>,
    lim_cpu: Option<i64>,
    lim_mem: Option<i64>,
}

fn res_of(r: Option<&ResourceRequirements>) -> Res {
    let get =
        |m: Option<&std::collections::BTreeMap<String, Quantity>>,
         k: &str,
         f: fn(&Quantity) -> Option<i64>| { m.and_then(|m| m.get(k)).and_then(f) };
    let lim = r.and_then(|r| r.limits.as_ref());
    let req = r.and_then(|r| r.requests.as_ref());
    let lim_cpu = get(lim, "cpu", cpu_millis);
    let lim_mem = get(lim, "memory", bytes);
    Res {
        req_cpu: get(req, "cpu", cpu_millis).or(lim_cpu),
        req_mem: get(req, "memory", bytes).or(lim_mem),
        lim_cpu,
        lim_mem,
    }
}

/// cpu.shares for a cpu request in millicores (2 when none).
pub fn shares(millis: Option<i64>) -> u64 {
    match millis {
        Some(m) if m > 0 => ((m as u64) * 1024 / 1000).max(2),
        _ => 2,
    }
}

/// CFS quota for a cpu limit in millicores (at least 1 ms per period).
pub fn quota(millis: i64) -> i64 {
    (millis * CPU_PERIOD_US as i64 / 1000).max(1000)
}

fn container_resources(
    r: Option<&ResourceRequirements>,
) -> Result<oci_spec::runtime::LinuxResources, RuntimeError> {
    let res = res_of(r);
    let mut cpu = LinuxCpuBuilder::default().shares(shares(res.req_cpu));
    if let Some(l) = res.lim_cpu {
        cpu = cpu.quota(quota(l)).period(CPU_PERIOD_US);
    }
    let mut b = LinuxResourcesBuilder::default().cpu(cpu.build().map_err(bad)?);
    if let Some(m) = res.lim_mem {
        b = b.memory(
            LinuxMemoryBuilder::default()
                .limit(m)
                .build()
                .map_err(bad)?,
        );
    }
    b.build().map_err(bad)
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
}

/// The pod's QoS class: Guaranteed, Burstable or BestEffort.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let all: Vec<Res> = all_containers(spec)
        .map(|c| res_of(c.resources.as_ref()))
        .collect();
    let none = all.iter().all(|r| {
        r.req_cpu.is_none() && r.req_mem.is_none() && r.lim_cpu.is_none() && r.lim_mem.is_none()
    });
    if none {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|r| {
        r.lim_cpu.is_some()
            && r.lim_mem.is_some()
            && r.req_cpu == r.lim_cpu
            && r.req_mem == r.lim_mem
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Pod cgroup limits: the sum over app containers, or the largest init
/// container if that is more; a limit only when every container has one.
pub fn pod_resources(spec: &PodSpec) -> PodResources {
    let apps: Vec<Res> = spec
        .containers
        .iter()
        .map(|c| res_of(c.resources.as_ref()))
        .collect();
    let inits: Vec<Res> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| res_of(c.resources.as_ref()))
        .collect();
    let sum = |f: fn(&Res) -> Option<i64>, all: bool| -> Option<i64> {
        let app: Option<i64> = if all {
            apps.iter().map(f).sum()
        } else {
            Some(apps.iter().filter_map(f).sum())
        };
        let init_max: Option<i64> = if all {
            inits
                .iter()
                .map(f)
                .try_fold(0i64, |m, v| v.map(|v| m.max(v)))
        } else {
            Some(inits.iter().filter_map(f).max().unwrap_or(0))
        };
        match (app, init_max) {
            (Some(a), Some(i)) => Some(a.max(i)),
            _ => None,
        }
    };
    let req_cpu = sum(|r| r.req_cpu, false).filter(|v| *v > 0);
    PodResources {
        cpu_shares: Some(shares(req_cpu)),
        cpu_quota_us: sum(|r| r.lim_cpu, true)
            .filter(|_| !apps.is_empty())
            .map(quota),
        cpu_period_us: CPU_PERIOD_US,
        memory_limit: sum(|r| r.lim_mem, true).filter(|_| !apps.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities as K8sCaps, SeccompProfile, SecurityContext};
    use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder};
    use std::collections::BTreeMap;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn pod(c: Container) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web".into());
        p.spec = Some(PodSpec {
            containers: vec![c],
            ..Default::default()
        });
        p
    }

    fn image(user: &str) -> ImageConfiguration {
        let cfg = ConfigBuilder::default()
            .entrypoint(s(&["/entry"]))
            .cmd(s(&["a", "b"]))
            .env(s(&["PATH=/bin", "A=img", "B=img"]))
            .working_dir("/srv")
            .user(user)
            .build()
            .unwrap();
        ImageConfigurationBuilder::default()
            .config(cfg)
            .build()
            .unwrap()
    }

    fn sandbox() -> SandboxPaths {
        SandboxPaths {
            net: Some("/p/ns/net".into()),
            uts: Some("/p/ns/uts".into()),
            ipc: Some("/p/ns/ipc".into()),
            host_pid: false,
            pid: None,
            hosts: "/p/etc/hosts".into(),
            hostname: "/p/etc/hostname".into(),
            resolv_conf: "/p/etc/resolv.conf".into(),
        }
    }

    fn build_one(c: Container, img: &ImageConfiguration, env: &[(String, String)]) -> Spec {
        let p = pod(c.clone());
        let sb = sandbox();
        build(&SpecInput {
            pod: &p,
            container: &c,
            image: Some(img),
            env,
            volume_mounts: &[],
            sandbox: &sb,
        })
        .unwrap()
    }

    fn q(v: &str) -> Quantity {
        Quantity(v.into())
    }

    #[test]
    fn args_merge_the_kubernetes_way() {
        let e = s(&["/entry"]);
        let cmd = s(&["a", "b"]);
        let m = |c: Option<Vec<String>>, a: Option<Vec<String>>| {
            merge_args(c.as_deref(), a.as_deref(), Some(&e), Some(&cmd), &[])
        };
        assert_eq!(m(None, None), s(&["/entry", "a", "b"]));
        assert_eq!(m(Some(s(&["/x"])), None), s(&["/x"]));
        assert_eq!(m(None, Some(s(&["z"]))), s(&["/entry", "z"]));
        assert_eq!(m(Some(s(&["/x"])), Some(s(&["z"]))), s(&["/x", "z"]));
    }

    #[test]
    fn vars_expand_in_args() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand_vars("x$(A)y $(B) $$(A) $", &env), "x1y $(B) $(A) $");
    }

    #[test]
    fn env_user_cwd_and_namespaces() {
        let c = Container {
            name: "c".into(),
            args: Some(s(&["run"])),
            ..Default::default()
        };
        let env = vec![
            ("B".to_string(), "pod".to_string()),
            ("C".to_string(), "pod".to_string()),
        ];
        let spec = build_one(c, &image("nobody:nogroup"), &env);
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.args().as_ref().unwrap(), &s(&["/entry", "run"]));
        let env = p.env().as_ref().unwrap();
        assert!(env.contains(&"A=img".to_string()));
        assert!(env.contains(&"B=pod".to_string()));
        assert!(env.contains(&"C=pod".to_string()));
        assert!(env.contains(&"HOSTNAME=web".to_string()));
        assert_eq!(p.cwd(), Path::new("/srv"));
        let nofile = p
            .rlimits()
            .iter()
            .flatten()
            .find(|r| r.typ() == PosixRlimitType::RlimitNofile)
            .unwrap();
        assert_eq!((nofile.soft(), nofile.hard()), (NOFILE_LIMIT, NOFILE_LIMIT));
        assert_eq!(
            spec.annotations().as_ref().unwrap()[USER_ANNOTATION],
            "nobody:nogroup"
        );
        let ns = spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        let net = ns
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::Network)
            .unwrap();
        assert_eq!(net.path().as_deref(), Some(Path::new("/p/ns/net")));
        assert!(ns
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none()));
        let dests: Vec<_> = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.destination().clone())
            .collect();
        assert!(dests.contains(&PathBuf::from("/etc/resolv.conf")));
        assert!(dests.contains(&PathBuf::from("/sys")));
    }

    #[test]
    fn shared_and_host_pid_namespaces() {
        let c = Container {
            name: "c".into(),
            command: Some(s(&["x"])),
            ..Default::default()
        };
        let p = pod(c.clone());
        let pid_of = |sb: &SandboxPaths| {
            let spec = build(&SpecInput {
                pod: &p,
                container: &c,
                image: None,
                env: &[],
                volume_mounts: &[],
                sandbox: sb,
            })
            .unwrap();
            spec.linux()
                .as_ref()
                .unwrap()
                .namespaces()
                .as_ref()
                .unwrap()
                .iter()
                .find(|n| n.typ() == LinuxNamespaceType::Pid)
                .map(|n| n.path().clone())
        };
        let mut sb = sandbox();
        sb.pid = Some("/p/ns/pid".into());
        assert_eq!(pid_of(&sb), Some(Some(PathBuf::from("/p/ns/pid"))));
        sb.host_pid = true;
        assert_eq!(pid_of(&sb), None);
    }

    #[test]
    fn run_as_user_overrides_image_user() {
        let c = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(2000),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = build_one(c, &image("nobody"), &[]);
        let u = spec.process().as_ref().unwrap().user();
        assert_eq!((u.uid(), u.gid()), (1000, 2000));
        assert_eq!(
            spec.annotations().as_ref().unwrap()[USER_ANNOTATION],
            "1000:2000"
        );
    }

    #[test]
    fn capabilities_add_drop_and_privileged() {
        let mk = |add: &[&str], drop: &[&str], privileged: bool| {
            let c = Container {
                name: "c".into(),
                security_context: Some(SecurityContext {
                    privileged: Some(privileged),
                    capabilities: Some(K8sCaps {
                        add: Some(s(add)),
                        drop: Some(s(drop)),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let spec = build_one(c, &image(""), &[]);
            let p = spec.process().clone().unwrap();
            let caps = p.capabilities().clone().unwrap();
            (caps.effective().clone().unwrap(), spec)
        };
        let (def, _) = mk(&[], &[], false);
        assert!(def.contains(&Capability::Chown));
        assert!(!def.contains(&Capability::SysAdmin));
        assert!(!def.contains(&Capability::NetAdmin));
        let (c, _) = mk(&["NET_ADMIN"], &["CHOWN"], false);
        assert!(c.contains(&Capability::NetAdmin));
        assert!(!c.contains(&Capability::Chown));
        let (c, _) = mk(&["NET_BIND_SERVICE"], &["ALL"], false);
        assert_eq!(c.len(), 1);
        let (c, spec) = mk(&[], &[], true);
        assert!(c.contains(&Capability::SysAdmin));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        assert!(linux.devices().as_ref().is_none_or(|d| d.is_empty()));
    }

    #[test]
    fn masked_paths_readonly_rootfs_and_no_new_privs() {
        let c = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = build_one(c, &image(""), &[]);
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(
            spec.process().as_ref().unwrap().no_new_privileges(),
            Some(true)
        );
        let linux = spec.linux().as_ref().unwrap();
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/kcore".to_string()));
        assert!(linux
            .readonly_paths()
            .as_ref()
            .unwrap()
            .contains(&"/proc/sys".to_string()));
        assert!(linux.seccomp().is_some());
        // Default: escalation allowed, rootfs writable, no seccomp.
        let spec = build_one(
            Container {
                name: "c".into(),
                ..Default::default()
            },
            &image(""),
            &[],
        );
        assert_eq!(
            spec.process().as_ref().unwrap().no_new_privileges(),
            Some(false)
        );
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
        assert!(spec.linux().as_ref().unwrap().seccomp().is_none());
    }

    #[test]
    fn cpu_and_memory_resources() {
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([("cpu".to_string(), q("250m"))])),
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), q("500m")),
                    ("memory".to_string(), q("32Mi")),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = build_one(c, &image(""), &[]);
        let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
        let cpu = r.cpu().clone().unwrap();
        assert_eq!(cpu.shares(), Some(256));
        assert_eq!(cpu.quota(), Some(50_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(r.memory().unwrap().limit(), Some(32 * 1024 * 1024));
    }

    #[test]
    fn no_command_is_an_error() {
        let c = Container {
            name: "c".into(),
            ..Default::default()
        };
        let p = pod(c.clone());
        let sb = sandbox();
        let err = build(&SpecInput {
            pod: &p,
            container: &c,
            image: None,
            env: &[],
            volume_mounts: &[],
            sandbox: &sb,
        })
        .unwrap_err();
        assert!(err.to_string().contains("no command"), "{err}");
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis(&q("250m")), Some(250));
        assert_eq!(cpu_millis(&q("1.5")), Some(1500));
        assert_eq!(bytes(&q("32Mi")), Some(33_554_432));
        assert_eq!(bytes(&q("1G")), Some(1_000_000_000));
        assert_eq!(bytes(&q("1e3")), Some(1000));
        assert_eq!(bytes(&q("x")), None);
    }

    fn with_res(req: &[(&str, &str)], lim: &[(&str, &str)]) -> Container {
        let m = |v: &[(&str, &str)]| Some(v.iter().map(|(k, x)| (k.to_string(), q(x))).collect());
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: m(req),
                limits: m(lim),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn qos_classes() {
        let spec = |cs: Vec<Container>| PodSpec {
            containers: cs,
            ..Default::default()
        };
        assert_eq!(qos_class(&spec(vec![Container::default()])), "BestEffort");
        let g = with_res(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&spec(vec![g.clone()])), "Guaranteed");
        let b = with_res(&[("cpu", "100m")], &[]);
        assert_eq!(qos_class(&spec(vec![g, b])), "Burstable");
    }

    #[test]
    fn pod_resources_sum_containers() {
        let a = with_res(&[("cpu", "100m")], &[("cpu", "200m"), ("memory", "32Mi")]);
        let b = with_res(&[("cpu", "300m")], &[("cpu", "300m"), ("memory", "32Mi")]);
        let r = pod_resources(&PodSpec {
            containers: vec![a.clone(), b],
            ..Default::default()
        });
        assert_eq!(r.cpu_shares, Some(409));
        assert_eq!(r.cpu_quota_us, Some(50_000));
        assert_eq!(r.memory_limit, Some(64 * 1024 * 1024));
        let none = Container::default();
        let r = pod_resources(&PodSpec {
            containers: vec![a, none],
            ..Default::default()
        });
        assert_eq!(r.cpu_quota_us, None);
        assert_eq!(r.memory_limit, None);
        assert_eq!(r.cpu_shares, Some(102));
    }
}
