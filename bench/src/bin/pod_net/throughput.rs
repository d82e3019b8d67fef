//! The throughput part: two hosts (network namespaces joined by a veth), each
//! with a bosun bridge and one pod, host-gw routes from `sync_routes`; iperf3
//! from the pod on A to the pod on B, alternating with iperf3 from A to B.

use std::net::Ipv4Addr;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agent::network::{cleanup, NetConfig, Network, PeerRoute};
use anyhow::{bail, Context as _};
use api::cidr::Cidr;

use crate::setup::Netns;

pub struct Options {
    pub tag: String,
    pub scratch: PathBuf,
    /// Each host: its namespace and its address on the shared link.
    pub a: (PathBuf, Ipv4Addr),
    pub b: (PathBuf, Ipv4Addr),
    pub seconds: u32,
    pub rounds: usize,
}

/// Bits per second of each run.
pub struct Figures {
    pub pod: Vec<f64>,
    pub host: Vec<f64>,
}

/// Runs `f` on a new thread inside the network namespace `netns`.
fn in_ns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let file =
        std::fs::File::open(netns).with_context(|| format!("opening {}", netns.display()))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("joining {}", netns.display()))?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("netns thread panicked"))?
    })
}

/// An iperf3 server, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server(netns: &Path, ip: Ipv4Addr, pids: &Path) -> anyhow::Result<Server> {
    let child = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "iperf3", "-s", "-B", &ip.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting iperf3 -s")?;
    // The script kills these should the bench itself be killed.
    let mut list = std::fs::read_to_string(pids).unwrap_or_default();
    list.push_str(&format!("{}\n", child.id()));
    std::fs::write(pids, list)?;
    Ok(Server(child))
}

/// One iperf3 run from `netns` to `ip`; the receiver's bits per second. Retries
/// while the server is not listening yet.
fn client(netns: &Path, ip: Ipv4Addr, seconds: u32) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args([
                "--",
                "iperf3",
                "-c",
                &ip.to_string(),
                "-J",
                "-t",
                &seconds.to_string(),
            ])
            .output()
            .context("running iperf3 -c")?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if out.status.success() {
            return report
                .pointer("/end/sum_received/bits_per_second")
                .and_then(serde_json::Value::as_f64)
                .context("iperf3 gave no end.sum_received.bits_per_second");
        }
        if Instant::now() > deadline {
            bail!("iperf3 -c {ip} failed: {}", report["error"]);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Host {
    netns: PathBuf,
    ip: Ipv4Addr,
    cfg: NetConfig,
}

impl Drop for Host {
    fn drop(&mut self) {
        let cfg = &self.cfg;
        let _ = in_ns(&self.netns, || {
            cleanup(&cfg.bridge, &cfg.nft_table, &cfg.state_dir)
        });
    }
}

pub fn run(o: &Options) -> anyhow::Result<Figures> {
    let cidr = |s: &str| Cidr::parse(s).map_err(anyhow::Error::msg);
    let host = |(netns, ip): &(PathBuf, Ipv4Addr), n: u8| -> anyhow::Result<Host> {
        Ok(Host {
            netns: netns.clone(),
            ip: *ip,
            cfg: NetConfig {
                bridge: format!("{}x", o.tag),
                pod_cidr: cidr(&format!("10.252.{n}.0/24"))?,
                cluster_cidr: cidr("10.252.0.0/16")?,
                state_dir: o.scratch.join(format!("net-{n}")),
                nft_table: format!("{}t", o.tag),
                mtu: None,
                node_ip: *ip,
            },
        })
    };
    let (a, b) = (host(&o.a, 1)?, host(&o.b, 2)?);
    let na = in_ns(&a.netns, || Network::setup(a.cfg.clone()))?.context("network setup on A")?;
    let nb = in_ns(&b.netns, || Network::setup(b.cfg.clone()))?.context("network setup on B")?;
    let route = |to: &Host, node: &str| PeerRoute {
        dst: to.cfg.pod_cidr,
        via: to.ip,
        node: node.into(),
    };
    na.sync_routes(&[route(&b, "b")])?;
    nb.sync_routes(&[route(&a, "a")])?;
    let pa = Netns::add(format!("{}xa", o.tag))?;
    let pb = Netns::add(format!("{}xb", o.tag))?;
    let ipa = na.allocate("pod-a")?;
    let ipb = nb.allocate("pod-b")?;
    na.attach("pod-a", &pa.path(), ipa)?;
    nb.attach("pod-b", &pb.path(), ipb)?;

    let pids = o.scratch.join("pids");
    let _pod_server = server(&pb.path(), ipb, &pids)?;
    let _host_server = server(&b.netns, b.ip, &pids)?;
    let mut f = Figures {
        pod: Vec::new(),
        host: Vec::new(),
    };
    for _ in 0..o.rounds {
        f.pod.push(client(&pa.path(), ipb, o.seconds)?);
        f.host.push(client(&a.netns, b.ip, o.seconds)?);
    }
    Ok(f)
}
