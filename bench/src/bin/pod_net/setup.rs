//! The setup/teardown part: N pods wired by bosun's library and N by the CNI
//! bridge plugin (host-local IPAM) in this process's namespace, interleaved so
//! both see the same machine.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent::network::{cleanup, NetConfig, Network};
use anyhow::{bail, Context as _};
use api::cidr::Cidr;
use serde_json::{json, Value};

use crate::ip;

pub struct Options {
    pub tag: String,
    pub scratch: PathBuf,
    pub pods: usize,
    pub node_ip: Ipv4Addr,
    pub cni_path: PathBuf,
}

/// Milliseconds per pod.
pub struct Figures {
    pub bosun_setup: Vec<f64>,
    /// The allocate part of each bosun setup.
    pub bosun_allocate: Vec<f64>,
    pub cni_setup: Vec<f64>,
    pub bosun_teardown: Vec<f64>,
    pub cni_teardown: Vec<f64>,
    /// From the last bosun teardown until the kernel had removed every host veth.
    pub veths_gone_ms: f64,
}

/// A network namespace made with `ip netns add`; deleted on drop when still there.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn add(name: String) -> anyhow::Result<Netns> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.path().exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .status();
        }
    }
}

/// A pod of the CNI side: DEL'd on drop when ADD'ed and not DEL'd yet.
struct CniPod<'a> {
    ns: Netns,
    id: String,
    added: bool,
    cni: &'a Cni,
}

impl Drop for CniPod<'_> {
    fn drop(&mut self) {
        if self.added {
            let _ = self.cni.call("DEL", &self.id, &self.ns.path());
        }
    }
}

struct Cni {
    plugin: PathBuf,
    path: PathBuf,
    conf: Value,
}

impl Cni {
    fn call(&self, command: &str, id: &str, netns: &Path) -> anyhow::Result<()> {
        let mut child = Command::new(&self.plugin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.plugin.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(self.conf.to_string().as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "CNI {command} of {id} failed: {}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn run(o: &Options) -> anyhow::Result<Figures> {
    let cfg = NetConfig {
        bridge: format!("{}b", o.tag),
        pod_cidr: Cidr::parse("10.250.0.0/24").map_err(anyhow::Error::msg)?,
        cluster_cidr: Cidr::parse("10.250.0.0/16").map_err(anyhow::Error::msg)?,
        state_dir: o.scratch.join("bosun-net"),
        nft_table: format!("{}t", o.tag),
        mtu: None,
        node_ip: o.node_ip,
    };
    let net = Network::setup(cfg.clone()).context("bosun network setup")?;
    let result = measure(o, &net);
    cleanup(&cfg.bridge, &cfg.nft_table, &cfg.state_dir).context("bosun network cleanup")?;
    result
}

fn measure(o: &Options, net: &Network) -> anyhow::Result<Figures> {
    let cni = Cni {
        plugin: o.cni_path.join("bridge"),
        path: o.cni_path.clone(),
        conf: json!({
            "cniVersion": "1.0.0",
            "name": "bosun-bench",
            "type": "bridge",
            "bridge": format!("{}c", o.tag),
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "subnet": "10.251.0.0/24",
                "dataDir": o.scratch.join("cni").to_string_lossy(),
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }),
    };
    let mut f = Figures {
        bosun_setup: Vec::new(),
        bosun_allocate: Vec::new(),
        cni_setup: Vec::new(),
        bosun_teardown: Vec::new(),
        cni_teardown: Vec::new(),
        veths_gone_ms: 0.0,
    };
    let mut bosun_pods = Vec::new();
    let mut cni_pods = Vec::new();
    for i in 0..o.pods {
        let uid = format!("{}-pod-{i}", o.tag);
        let bp = Netns::add(format!("{}p{i}", o.tag))?;
        let mut cp = CniPod {
            ns: Netns::add(format!("{}q{i}", o.tag))?,
            id: format!("{}q{i}", o.tag),
            added: false,
            cni: &cni,
        };
        let mut allocate = 0.0;
        let mut bosun = || -> anyhow::Result<f64> {
            let t = Instant::now();
            let addr = net.allocate(&uid)?;
            allocate = ms(t.elapsed());
            net.attach(&uid, &bp.path(), addr)?;
            Ok(ms(t.elapsed()))
        };
        let mut theirs = || -> anyhow::Result<f64> {
            let t = Instant::now();
            cni.call("ADD", &cp.id, &cp.ns.path())?;
            cp.added = true;
            Ok(ms(t.elapsed()))
        };
        let (b, c) = if i % 2 == 0 {
            let b = bosun()?;
            (b, theirs()?)
        } else {
            let c = theirs()?;
            (bosun()?, c)
        };
        f.bosun_setup.push(b);
        f.bosun_allocate.push(allocate);
        f.cni_setup.push(c);
        bosun_pods.push((uid, bp));
        cni_pods.push(cp);
    }
    // Both sides really wired their first pod.
    let first = ip(&[
        "-n",
        &bosun_pods[0].1.name,
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
    ])?;
    if !first.contains("10.250.0.2/24") {
        bail!("bosun's first pod has no 10.250.0.2/24: {first}");
    }
    let first = ip(&[
        "-n",
        &cni_pods[0].ns.name,
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
    ])?;
    if !first.contains("10.251.0.") {
        bail!("CNI's first pod has no address: {first}");
    }

    let mut last = Instant::now();
    for (i, ((uid, bp), mut cp)) in bosun_pods.into_iter().zip(cni_pods).enumerate() {
        let bosun = || -> anyhow::Result<f64> {
            let t = Instant::now();
            net.release(&uid)?;
            let path = bp.path();
            nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
                .with_context(|| format!("unmounting {}", path.display()))?;
            std::fs::remove_file(&path)?;
            Ok(ms(t.elapsed()))
        };
        let mut theirs = || -> anyhow::Result<f64> {
            let t = Instant::now();
            cni.call("DEL", &cp.id, &cp.ns.path())?;
            cp.added = false;
            Ok(ms(t.elapsed()))
        };
        let (b, c) = if i % 2 == 0 {
            let b = bosun()?;
            last = Instant::now();
            (b, theirs()?)
        } else {
            let c = theirs()?;
            let b = bosun()?;
            last = Instant::now();
            (b, c)
        };
        f.bosun_teardown.push(b);
        f.cni_teardown.push(c);
        drop(cp);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let links = ip(&["-o", "link", "show"])?;
        if !links.lines().any(|l| l.contains(": bsn")) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the kernel did not remove bosun's host veths within 60 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    f.veths_gone_ms = ms(last.elapsed());
    Ok(f)
}
