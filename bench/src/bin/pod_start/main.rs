//! `bench/pod-start`: how fast pods start and go away — the bosun agent against
//! what a CRI runtime does with the standard tools (`runc run -d` or `crun run -d`
//! plus the CNI bridge plugin) for the same busybox `sleep` container.
//!
//! Run by `bench/pod-start` inside a network namespace it made as the benchmark's
//! host (the binary refuses to run in the machine's own namespace). The
//! baselines: N pods set up one after another and then N more as a burst (with
//! `--parallel` workers), then the first N torn down one after another and the
//! burst torn down with the same parallelism; per pod, setup = `ip netns add` +
//! CNI ADD + `run -d`, teardown = `delete -f` + CNI DEL + `ip netns del`. The
//! bosun part (when `--kubeconfig` is given) does the same through the master to
//! one agent and reads the agent's own timings from its log. Prints
//! `name: value` lines, then the ratios.

mod bosun;
mod peers;
mod runtime;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bosun_bench::percentile;
use clap::Parser;

use peers::{Env, Oci, Pods, Steps};

#[derive(Parser, Debug)]
#[command(about = "Benchmark pod setup and teardown: bosun agent vs runc/crun + CNI")]
struct Args {
    /// A directory for bundles, runtime and CNI state (made by the script).
    #[arg(long)]
    scratch: PathBuf,
    /// Pods one after another, and again as a burst.
    #[arg(long, default_value_t = 50)]
    pods: usize,
    /// Workers of the baselines' burst (the machine has 2 cores).
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// The busybox root filesystem (made by the script from busybox-static),
    /// used read-only by every container.
    #[arg(long)]
    rootfs: PathBuf,
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_path: PathBuf,
    /// Prefix of every kernel object the run makes (netns, container and cgroup
    /// names); the script passes its own so it can find leftovers. Default bt<pid>.
    #[arg(long)]
    tag: Option<String>,
    /// Skip the runc and crun baselines.
    #[arg(long)]
    no_peers: bool,
    /// The bosun binary: the agent runtime's shim, for timing the runtime
    /// library directly (skipped without it).
    #[arg(long)]
    bosun: Option<PathBuf>,
    #[arg(long, default_value = "/sys/fs/cgroup")]
    cgroup_root: PathBuf,
    /// The master's admin kubeconfig; without it the bosun part is skipped.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    #[arg(long)]
    agent_pid: Option<u32>,
    /// The agent's stderr (BOSUN_LOG=info), where it logs its timings.
    #[arg(long)]
    agent_log: Option<PathBuf>,
    #[arg(long)]
    node: Option<String>,
    #[arg(long, default_value = "bench/busybox:1")]
    image: String,
    /// Give up on the bosun part after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived: loops stop and guards clean up.
pub fn stopped() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Catches SIGINT and SIGTERM on a thread of its own, so that the run stops
/// between steps and every guard still removes what it made.
fn catch_signals() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                eprintln!("pod-start: stopping, cleaning up");
                STOP.store(true, Ordering::Relaxed);
            }
        })
    });
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    catch_signals()?;
    if !bosun_bench::in_named_netns(Path::new("/run/netns"))? {
        bail!(
            "pod-start runs the CNI bridge plugin, which changes its network namespace \
             (bridge, veths, ip_forward): run it inside a namespace made for it under \
             /run/netns, as bench/pod-start does"
        );
    }
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| format!("bt{}", std::process::id()));
    if !tag.starts_with("bt") || !tag[2..].chars().all(|c| c.is_ascii_digit()) {
        bail!("--tag must be bt<digits>, not {tag:?}");
    }

    let env = if args.no_peers {
        None
    } else {
        let env = prepare(&args, &tag)?;
        let overhead = peers::unshare_overhead(20)?;
        println!(
            "crun helper: one mount namespace per call would add p50 ms: {:.1}",
            ms(overhead)
        );
        Some(env)
    };
    let rt = match &args.bosun {
        Some(bosun) => Some(runtime::Pods::new(
            runtime::Options {
                tag: tag.clone(),
                scratch: args.scratch.clone(),
                rootfs: args.rootfs.clone(),
                bosun: bosun.clone(),
                cgroup_root: args.cgroup_root.clone(),
            },
            2 * args.pods,
        )?),
        None => None,
    };
    let figures = local_run(env.as_ref(), rt.as_ref(), args.pods, args.parallel)?;
    drop(rt);
    for f in &figures {
        f.print();
    }
    let peer_figures: Vec<&Figures> = figures.iter().filter(|f| f.runtime.is_some()).collect();
    if let Some(rt) = figures.iter().find(|f| f.runtime.is_none()) {
        for p in &peer_figures {
            print_ratios("bosun runtime", &rt.side(), p);
        }
    }

    if let Some(kubeconfig) = &args.kubeconfig {
        let (Some(agent_pid), Some(agent_log), Some(node)) =
            (args.agent_pid, args.agent_log.clone(), args.node.clone())
        else {
            bail!("--kubeconfig needs --agent-pid, --agent-log and --node");
        };
        let opts = bosun::Options {
            kubeconfig: kubeconfig.clone(),
            agent_pid,
            agent_log,
            node,
            image: args.image.clone(),
            pods: args.pods,
            timeout: Duration::from_secs(args.timeout),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let f = rt.block_on(bosun::run(&opts)).context("the bosun part")?;
        print_bosun(&f, &peer_figures);
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The rootfs, the base config from `runc spec` and the CNI config.
fn prepare(args: &Args, tag: &str) -> anyhow::Result<Env> {
    let scratch = args.scratch.clone();
    let rootfs = args.rootfs.clone();
    if !rootfs.join("bin/busybox").is_file() {
        bail!("{} has no bin/busybox", rootfs.display());
    }
    let spec_dir = scratch.join("spec");
    std::fs::create_dir_all(&spec_dir)?;
    let status = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&spec_dir)
        .status()
        .context("running runc spec")?;
    if !status.success() {
        bail!("runc spec failed");
    }
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(spec_dir.join("config.json")).context("reading runc's config.json")?,
    )?;
    Ok(Env {
        tag: tag.to_string(),
        base_config: peers::base_config(spec, &rootfs)?,
        cni_conf: peers::cni_conf(&format!("{tag}cni"), "10.250.0.0/16", &scratch.join("cni")),
        cni_path: args.cni_path.clone(),
        scratch,
    })
}

/// One contender's figures: a baseline (with its OCI runtime) or the agent's
/// runtime library.
struct Figures {
    label: String,
    runtime: Option<Oci>,
    seq_setup: Vec<Steps>,
    seq_teardown: Vec<Steps>,
    burst_setup: peers::Batch,
    burst_teardown: peers::Batch,
}

/// A contender being measured.
enum Contender<'a> {
    Peer(Oci, Pods<'a>),
    Runtime(&'a runtime::Pods),
}

/// A contender's per-worker state.
enum Worker {
    Peer(peers::Runner),
    Runtime,
}

impl Contender<'_> {
    fn label(&self) -> String {
        match self {
            Contender::Peer(oci, _) => format!("{}+cni", oci.name()),
            Contender::Runtime(_) => "bosun runtime".to_string(),
        }
    }

    fn worker(&self) -> anyhow::Result<Worker> {
        Ok(match self {
            Contender::Peer(oci, _) => Worker::Peer(peers::Runner::new(*oci)?),
            Contender::Runtime(_) => Worker::Runtime,
        })
    }

    fn setup(&self, w: &mut Worker, i: usize) -> anyhow::Result<Steps> {
        match (self, w) {
            (Contender::Peer(_, pods), Worker::Peer(r)) => pods.setup(r, i),
            (Contender::Runtime(rt), _) => rt.setup(i),
            _ => bail!("a worker of another contender"),
        }
    }

    fn teardown(&self, w: &mut Worker, i: usize) -> anyhow::Result<Steps> {
        match (self, w) {
            (Contender::Peer(_, pods), Worker::Peer(r)) => pods.teardown(r, i),
            (Contender::Runtime(rt), _) => rt.teardown(i),
            _ => bail!("a worker of another contender"),
        }
    }
}

/// Measures the baselines and the runtime library. The one-after-another
/// phases are interleaved pod by pod (the order rotating), so that all see the
/// same machine even when its load changes; each burst runs alone.
fn local_run(
    env: Option<&Env>,
    rt: Option<&runtime::Pods>,
    n: usize,
    parallel: usize,
) -> anyhow::Result<Vec<Figures>> {
    let mut contenders = Vec::new();
    if let Some(env) = env {
        for oci in [Oci::Runc, Oci::Crun] {
            contenders.push(Contender::Peer(oci, Pods::new(env, oci, 2 * n)?));
        }
    }
    if let Some(rt) = rt {
        contenders.push(Contender::Runtime(rt));
    }
    let k = contenders.len();
    let mut workers = contenders
        .iter()
        .map(Contender::worker)
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Pod i of every contender, in an order rotating with i.
    let interleaved = |workers: &mut Vec<Worker>,
                       step: fn(&Contender, &mut Worker, usize) -> anyhow::Result<Steps>|
     -> anyhow::Result<Vec<Vec<Steps>>> {
        let mut out = vec![Vec::new(); k];
        for i in 0..n {
            for j in 0..k {
                let c = (i + j) % k;
                if stopped() {
                    bail!("interrupted");
                }
                let steps = step(&contenders[c], &mut workers[c], i)
                    .with_context(|| contenders[c].label())?;
                out[c].push(steps);
            }
        }
        Ok(out)
    };
    let seq_setup = interleaved(&mut workers, |c, w, i| c.setup(w, i))?;
    let mut burst_setup = Vec::new();
    for c in &contenders {
        let b = peers::run_many(n..2 * n, parallel, || c.worker(), |w, i| c.setup(w, i))
            .with_context(|| c.label())?;
        burst_setup.push(b);
    }
    let seq_teardown = interleaved(&mut workers, |c, w, i| c.teardown(w, i))?;
    let mut out = Vec::new();
    for ((c, (setup, teardown)), burst_up) in contenders
        .iter()
        .zip(seq_setup.into_iter().zip(seq_teardown))
        .zip(burst_setup)
    {
        let burst_down =
            peers::run_many(n..2 * n, parallel, || c.worker(), |w, i| c.teardown(w, i))
                .with_context(|| c.label())?;
        out.push(Figures {
            label: c.label(),
            runtime: match c {
                Contender::Peer(oci, _) => Some(*oci),
                Contender::Runtime(_) => None,
            },
            seq_setup: setup,
            seq_teardown: teardown,
            burst_setup: burst_up,
            burst_teardown: burst_down,
        });
    }
    Ok(out)
}

/// The figures the ratios compare, in ms: per pod one after another; per pod
/// in the burst from its start (or, for the agent, from the pod's sighting) until
/// the pod was done; and the bursts' wall times.
struct Side {
    setup: Vec<f64>,
    teardown: Vec<f64>,
    burst_setup: Vec<f64>,
    burst_teardown: Vec<f64>,
    up_wall: f64,
    down_wall: f64,
}

impl Figures {
    fn side(&self) -> Side {
        let done = |b: &peers::Batch| b.done.iter().map(|d| ms(*d)).collect();
        Side {
            setup: totals(&self.seq_setup),
            teardown: totals(&self.seq_teardown),
            burst_setup: done(&self.burst_setup),
            burst_teardown: done(&self.burst_teardown),
            up_wall: ms(self.burst_setup.wall),
            down_wall: ms(self.burst_teardown.wall),
        }
    }
}

/// p50 and p99 in ms of `values` (any order).
fn p50_p99(values: &[f64]) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

fn totals(steps: &[Steps]) -> Vec<f64> {
    steps.iter().map(|s| ms(s.total())).collect()
}

fn line(label: &str, values: &[f64]) {
    let (p50, p99) = p50_p99(values);
    println!("{label} p50/p99 ms: {p50:.1} / {p99:.1}");
}

impl Figures {
    fn print(&self) {
        let l = &self.label;
        let side = self.side();
        let part = |steps: &[Steps], f: fn(&Steps) -> Duration| {
            p50_p99(&steps.iter().map(|s| ms(f(s))).collect::<Vec<_>>()).0
        };
        match self.runtime {
            Some(_) => {
                line(&format!("{l} setup"), &side.setup);
                println!(
                    "{l} setup parts p50 ms: netns {:.1}, cni add {:.1}, run -d {:.1}",
                    part(&self.seq_setup, |s| s.netns),
                    part(&self.seq_setup, |s| s.cni),
                    part(&self.seq_setup, |s| s.oci),
                );
                line(&format!("{l} teardown"), &side.teardown);
                println!(
                    "{l} teardown parts p50 ms: delete -f {:.1}, cni del {:.1}, netns del {:.1}",
                    part(&self.seq_teardown, |s| s.oci),
                    part(&self.seq_teardown, |s| s.cni),
                    part(&self.seq_teardown, |s| s.netns),
                );
            }
            None => {
                line(&format!("{l} sandbox+container setup"), &side.setup);
                line(&format!("{l} sandbox+container teardown"), &side.teardown);
            }
        }
        line(
            &format!("{l} burst setup, own work"),
            &totals(&self.burst_setup.steps),
        );
        line(
            &format!("{l} burst setup, from burst start"),
            &side.burst_setup,
        );
        line(
            &format!("{l} burst teardown, own work"),
            &totals(&self.burst_teardown.steps),
        );
        line(
            &format!("{l} burst teardown, from burst start"),
            &side.burst_teardown,
        );
        println!(
            "{l} burst wall ms: setup {:.0}, teardown {:.0} ({} pods)",
            side.up_wall,
            side.down_wall,
            self.burst_setup.steps.len()
        );
    }
}

fn print_bosun(f: &bosun::Figures, peers: &[&Figures]) {
    line("bosun seen->running", &f.seq_setup);
    line("bosun client create->running", &f.seq_client);
    line("bosun teardown", &f.seq_teardown);
    line("bosun burst seen->running", &f.burst_setup);
    line("bosun burst teardown", &f.burst_teardown);
    println!(
        "bosun burst wall ms: create->all running {:.0}, delete->all torn down {:.0} ({} pods)",
        f.burst_up_wall,
        f.burst_down_wall,
        f.burst_setup.len()
    );
    println!(
        "agent rss MB at 0 pods: {:.1} ({} threads)",
        f.rss_0, f.threads_0
    );
    println!(
        "agent rss MB at {} pods: {:.1} ({} threads)",
        f.full, f.rss_full, f.threads_full
    );
    println!(
        "agent rss MB at {} pods, settled (15 s later): {:.1} ({} threads)",
        f.full, f.rss_settled, f.threads_settled
    );
    println!("agent rss MB after deleting them: {:.1}", f.rss_after);
    let side = Side {
        setup: f.seq_setup.clone(),
        teardown: f.seq_teardown.clone(),
        burst_setup: f.burst_setup.clone(),
        burst_teardown: f.burst_teardown.clone(),
        up_wall: f.burst_up_wall,
        down_wall: f.burst_down_wall,
    };
    for p in peers {
        print_ratios("bosun", &side, p);
    }
}

/// bosun's figures over a baseline's: p50s, and the bursts' wall times.
fn print_ratios(label: &str, ours: &Side, p: &Figures) {
    let theirs = p.side();
    let r = |a: &[f64], b: &[f64]| p50_p99(a).0 / p50_p99(b).0.max(1e-9);
    println!(
        "ratio {label}/{} p50: setup {:.2}, teardown {:.2}, burst setup {:.2}, burst teardown {:.2}; \
         burst wall: setup {:.2}, teardown {:.2}",
        p.label,
        r(&ours.setup, &theirs.setup),
        r(&ours.teardown, &theirs.teardown),
        r(&ours.burst_setup, &theirs.burst_setup),
        r(&ours.burst_teardown, &theirs.burst_teardown),
        ours.up_wall / theirs.up_wall.max(1e-9),
        ours.down_wall / theirs.down_wall.max(1e-9),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_unsorted_values() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(p50_p99(&v), (3.0, 5.0));
        assert_eq!(p50_p99(&[]), (0.0, 0.0));
    }
}
