//! The baselines: what a CRI runtime does for a pod with the standard tools —
//! `ip netns add`, the CNI `bridge` plugin (host-local IPAM) and `runc run -d` or
//! `crun run -d` of one busybox bundle — and the teardown (`delete -f`, CNI DEL,
//! `ip netns del`). Each step is a process, as it is under containerd.
//!
//! The bench process must already be inside a network namespace made for the
//! benchmark (`bench/pod-start` starts it with `nsenter --net=…`): the bridge, the
//! host ends of the veths and the `ip_forward` the plugin sets all stay there.
//! crun refuses this hybrid cgroup host while `/sys/fs/cgroup/unified` is
//! visible, so its commands go through a long-lived shell in a mount namespace
//! (slave propagation, so the pods' `/run/netns` files still appear there) in
//! which that mount is hidden; the cost of making such a namespace per call is
//! measured separately. Everything a pod made is undone by [`Pods`]'s drop,
//! whatever happened.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::stopped;

/// Which OCI runtime a baseline uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oci {
    Runc,
    Crun,
}

impl Oci {
    pub fn name(self) -> &'static str {
        match self {
            Oci::Runc => "runc",
            Oci::Crun => "crun",
        }
    }
}

/// Where the tools and the benchmark's files are.
pub struct Env {
    /// The benchmark's run id (`bt<pid>`), the prefix of every kernel object.
    pub tag: String,
    pub scratch: PathBuf,
    /// `config.json` from `runc spec`, adjusted once (args, terminal, rootfs).
    pub base_config: Value,
    pub cni_path: PathBuf,
    pub cni_conf: Value,
}

/// Per-pod step times of one setup or teardown.
#[derive(Clone, Copy, Debug, Default)]
pub struct Steps {
    pub netns: Duration,
    pub cni: Duration,
    pub oci: Duration,
}

impl Steps {
    pub fn total(&self) -> Duration {
        self.netns + self.cni + self.oci
    }
}

/// The kubelet-like CNI network config: a bridge with the gateway address,
/// no masquerading, host-local IPAM keeping its state in `data_dir`.
pub fn cni_conf(bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bosun-bench",
        "type": "bridge",
        "bridge": bridge,
        "isGateway": true,
        "ipMasq": false,
        "ipam": {
            "type": "host-local",
            "subnet": subnet,
            "dataDir": data_dir.to_string_lossy(),
            "routes": [{"dst": "0.0.0.0/0"}],
        },
    })
}

/// `runc spec`'s config turned into the benchmark's container: `sleep 3600`,
/// no terminal, the shared read-only busybox rootfs.
pub fn base_config(mut spec: Value, rootfs: &Path) -> anyhow::Result<Value> {
    let process = spec
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .context("`runc spec` gave no process")?;
    process.insert("terminal".into(), json!(false));
    process.insert("args".into(), json!(["sleep", "3600"]));
    spec["root"] = json!({"path": rootfs.to_string_lossy(), "readonly": true});
    if spec.pointer("/linux/namespaces").is_none() {
        bail!("`runc spec` gave no linux.namespaces");
    }
    Ok(spec)
}

/// One pod's config: its hostname and the network namespace it joins.
pub fn pod_config(base: &Value, hostname: &str, netns: &Path) -> Value {
    let mut spec = base.clone();
    spec["hostname"] = json!(hostname);
    if let Some(nss) = spec
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    {
        for ns in nss.iter_mut() {
            if ns["type"] == "network" {
                ns["path"] = json!(netns.to_string_lossy());
            }
        }
    }
    spec
}

/// What one pod has made so far, so that the guard can undo exactly that.
#[derive(Default)]
struct Made {
    netns: bool,
    cni: bool,
    container: bool,
}

/// The pods of one baseline run; dropping it removes whatever they still have.
pub struct Pods<'a> {
    env: &'a Env,
    oci: Oci,
    state_root: PathBuf,
    made: Vec<Mutex<Made>>,
}

/// Runs the OCI runtime's commands: directly for runc, through a shell in a
/// mount namespace without the cgroup2 mount for crun.
pub struct Runner {
    oci: Oci,
    shell: Option<Shell>,
}

struct Shell {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// `unshare -m --propagation slave sh -c 'umount /sys/fs/cgroup/unified && CMD'`,
/// the per-call way of running crun on this host.
fn crun_unshare(cmd: &str) -> Command {
    let mut c = Command::new("unshare");
    c.args(["-m", "--propagation", "slave", "sh", "-c"])
        .arg(format!(
            "{{ ! mountpoint -q /sys/fs/cgroup/unified || umount /sys/fs/cgroup/unified; }} && {cmd}"
        ))
        .stdin(Stdio::null());
    c
}

impl Runner {
    pub fn new(oci: Oci) -> anyhow::Result<Runner> {
        let shell = match oci {
            Oci::Runc => None,
            Oci::Crun => {
                let mut c = crun_unshare("exec sh -s");
                c.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    // Its own process group: a Ctrl-C at the terminal must not
                    // kill it before the pods are torn down.
                    .process_group(0);
                let mut child = c.spawn().context("starting the crun helper shell")?;
                let stdin = child.stdin.take().context("helper stdin")?;
                let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
                Some(Shell {
                    child,
                    stdin,
                    stdout,
                })
            }
        };
        Ok(Runner { oci, shell })
    }

    /// Runs the OCI runtime with `args`; its stderr goes to `err_file`.
    fn run(&mut self, state_root: &Path, args: &[&str], err_file: &Path) -> anyhow::Result<()> {
        let ok = match &mut self.shell {
            None => {
                let err = std::fs::File::create(err_file)?;
                Command::new(self.oci.name())
                    .arg("--root")
                    .arg(state_root)
                    .args(args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(err)
                    .status()
                    .with_context(|| format!("running {}", self.oci.name()))?
                    .success()
            }
            Some(sh) => {
                let mut line = format!("{} --root {}", self.oci.name(), shell_word(state_root)?);
                for a in args {
                    line.push(' ');
                    line.push_str(&shell_word(Path::new(a))?);
                }
                writeln!(
                    sh.stdin,
                    "{line} </dev/null >/dev/null 2>{}; echo $?",
                    shell_word(err_file)?
                )?;
                sh.stdin.flush()?;
                let mut answer = String::new();
                sh.stdout.read_line(&mut answer)?;
                if answer.is_empty() {
                    bail!("the crun helper shell exited");
                }
                answer.trim() == "0"
            }
        };
        if !ok {
            let err = std::fs::read_to_string(err_file).unwrap_or_default();
            bail!(
                "{} {} failed: {}",
                self.oci.name(),
                args.join(" "),
                err.trim()
            );
        }
        Ok(())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(sh) = &mut self.shell {
            let _ = writeln!(sh.stdin, "exit");
            let _ = sh.child.wait();
        }
    }
}

/// A path as one shell word; the benchmark's paths never need quoting, and one
/// that would is refused rather than quoted.
fn shell_word(p: &Path) -> anyhow::Result<String> {
    let s = p.to_string_lossy();
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        bail!("{s:?} is not a plain path");
    }
    Ok(s.into_owned())
}

fn run_ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl<'a> Pods<'a> {
    pub fn new(env: &'a Env, oci: Oci, count: usize) -> anyhow::Result<Pods<'a>> {
        let state_root = env.scratch.join(format!("{}-state", oci.name()));
        std::fs::create_dir_all(&state_root)?;
        Ok(Pods {
            env,
            oci,
            state_root,
            made: (0..count).map(|_| Mutex::new(Made::default())).collect(),
        })
    }

    fn netns_name(&self, i: usize) -> String {
        format!("{}{}{i}", self.env.tag, &self.oci.name()[..1])
    }

    fn container_id(&self, i: usize) -> String {
        self.netns_name(i)
    }

    fn bundle(&self, i: usize) -> PathBuf {
        self.env
            .scratch
            .join(format!("bundles/{}", self.container_id(i)))
    }

    fn cni(&self, command: &str, i: usize) -> anyhow::Result<()> {
        let plugin = self.env.cni_path.join("bridge");
        let mut child = Command::new(&plugin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", self.container_id(i))
            .env("CNI_NETNS", format!("/run/netns/{}", self.netns_name(i)))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.env.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", plugin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.env.cni_conf.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "CNI {command} of {} failed: {}{}",
                self.container_id(i),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// netns, CNI ADD, `run -d`; the time of each.
    pub fn setup(&self, runner: &mut Runner, i: usize) -> anyhow::Result<Steps> {
        let name = self.netns_name(i);
        let mut made = self.made[i].lock().unwrap_or_else(|e| e.into_inner());
        let t0 = Instant::now();
        run_ip(&["netns", "add", &name])?;
        made.netns = true;
        let t1 = Instant::now();
        made.cni = true;
        self.cni("ADD", i)?;
        let t2 = Instant::now();
        let bundle = self.bundle(i);
        std::fs::create_dir_all(&bundle)?;
        let config = pod_config(
            &self.env.base_config,
            &format!("pod-{i}"),
            &Path::new("/run/netns").join(&name),
        );
        std::fs::write(bundle.join("config.json"), config.to_string())?;
        made.container = true;
        runner.run(
            &self.state_root,
            &[
                "run",
                "-d",
                "--bundle",
                &bundle.to_string_lossy(),
                &self.container_id(i),
            ],
            &bundle.join("stderr"),
        )?;
        let t3 = Instant::now();
        Ok(Steps {
            netns: t1 - t0,
            cni: t2 - t1,
            oci: t3 - t2,
        })
    }

    /// `delete -f`, CNI DEL, `ip netns del`; the time of each.
    pub fn teardown(&self, runner: &mut Runner, i: usize) -> anyhow::Result<Steps> {
        let name = self.netns_name(i);
        let mut made = self.made[i].lock().unwrap_or_else(|e| e.into_inner());
        let bundle = self.bundle(i);
        let t0 = Instant::now();
        runner.run(
            &self.state_root,
            &["delete", "-f", &self.container_id(i)],
            &bundle.join("stderr"),
        )?;
        made.container = false;
        let t1 = Instant::now();
        self.cni("DEL", i)?;
        made.cni = false;
        let t2 = Instant::now();
        run_ip(&["netns", "del", &name])?;
        made.netns = false;
        let t3 = Instant::now();
        Ok(Steps {
            oci: t1 - t0,
            cni: t2 - t1,
            netns: t3 - t2,
        })
    }

    /// Best-effort removal of everything pod `i` still has, for the guard.
    fn undo(&self, i: usize) {
        let made = self.made[i].lock().unwrap_or_else(|e| e.into_inner());
        if made.container {
            let id = self.container_id(i);
            let root = self.state_root.to_string_lossy();
            let _ = match self.oci {
                Oci::Runc => Command::new("runc")
                    .args(["--root", &root, "delete", "-f", &id])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status(),
                Oci::Crun => crun_unshare(&format!("exec crun --root {root} delete -f {id}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status(),
            };
        }
        if made.cni {
            let _ = self.cni("DEL", i);
        }
        if made.netns {
            let _ = run_ip(&["netns", "del", &self.netns_name(i)]);
        }
    }
}

impl Drop for Pods<'_> {
    fn drop(&mut self) {
        for i in 0..self.made.len() {
            self.undo(i);
        }
    }
}

/// What [`run_many`] measured: per pod (in pod order) its own steps and the
/// time from the start of the batch until it was done (its wait in line
/// included), and the batch's wall time.
pub struct Batch {
    pub steps: Vec<Steps>,
    pub done: Vec<Duration>,
    pub wall: Duration,
}

/// Runs `op` on pods `range` with `parallel` workers, each with its own state
/// from `make` (a [`Runner`] for the baselines).
pub fn run_many<R, F>(
    range: std::ops::Range<usize>,
    parallel: usize,
    make: impl Fn() -> anyhow::Result<R> + Sync,
    op: F,
) -> anyhow::Result<Batch>
where
    F: Fn(&mut R, usize) -> anyhow::Result<Steps> + Sync,
{
    let next = AtomicUsize::new(range.start);
    let results: Mutex<Vec<(usize, Steps, Duration)>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..parallel.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    let mut state = make()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= range.end {
                            return Ok(());
                        }
                        if stopped() {
                            bail!("interrupted");
                        }
                        let steps = op(&mut state, i)?;
                        let done = started.elapsed();
                        results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, steps, done));
                    }
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(r) => r?,
                Err(_) => bail!("a worker panicked"),
            }
        }
        Ok(())
    })?;
    let wall = started.elapsed();
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _, _)| *i);
    Ok(Batch {
        steps: results.iter().map(|(_, s, _)| *s).collect(),
        done: results.iter().map(|(_, _, d)| *d).collect(),
        wall,
    })
}

/// What making the crun helper's mount namespace costs per call (the price of
/// running crun on this hybrid host without a long-lived helper): the median of
/// `n` runs of `unshare … sh -c 'umount … && exec true'`.
pub fn unshare_overhead(n: usize) -> anyhow::Result<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let ok = crun_unshare("exec true").status()?.success();
        if !ok {
            bail!("unshare of a mount namespace failed");
        }
        times.push(t.elapsed());
    }
    times.sort();
    Ok(bosun_bench::percentile(&times, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_config_joins_its_netns_and_keeps_the_rest() {
        let base = json!({
            "process": {"terminal": true, "args": ["sh"]},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
        });
        let base = base_config(base, Path::new("/s/rootfs")).unwrap();
        assert_eq!(base["process"]["args"], json!(["sleep", "3600"]));
        assert_eq!(base["process"]["terminal"], json!(false));
        assert_eq!(base["root"]["path"], "/s/rootfs");
        let pod = pod_config(&base, "pod-3", Path::new("/run/netns/bt1r3"));
        assert_eq!(pod["hostname"], "pod-3");
        let nss = pod["linux"]["namespaces"].as_array().unwrap();
        assert_eq!(
            nss[1],
            json!({"type": "network", "path": "/run/netns/bt1r3"})
        );
        assert_eq!(nss[0], json!({"type": "pid"}));
        assert!(base.pointer("/linux/namespaces/1/path").is_none());
    }

    #[test]
    fn a_spec_without_namespaces_is_refused() {
        let err = base_config(json!({"process": {}}), Path::new("/r")).unwrap_err();
        assert!(err.to_string().contains("namespaces"), "{err}");
    }

    #[test]
    fn the_cni_conf_keeps_ipam_state_in_the_given_dir() {
        let c = cni_conf("btcni7", "10.250.0.0/16", Path::new("/s/cni"));
        assert_eq!(c["type"], "bridge");
        assert_eq!(c["bridge"], "btcni7");
        assert_eq!(c["isGateway"], true);
        assert_eq!(c["ipMasq"], false);
        assert_eq!(c["ipam"]["dataDir"], "/s/cni");
        assert_eq!(c["ipam"]["subnet"], "10.250.0.0/16");
    }

    #[test]
    fn only_plain_paths_go_to_the_shell() {
        assert_eq!(
            shell_word(Path::new("/tmp/a-b_c.1")).unwrap(),
            "/tmp/a-b_c.1"
        );
        assert!(shell_word(Path::new("/tmp/a b")).is_err());
        assert!(shell_word(Path::new("/tmp/$(x)")).is_err());
        assert!(shell_word(Path::new("")).is_err());
    }
}
