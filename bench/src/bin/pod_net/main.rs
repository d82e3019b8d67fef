//! `bench/pod-net`: how fast bosun wires and unwires a pod's network, next to
//! the CNI bridge plugin with host-local IPAM in the same run, and how much TCP
//! throughput a pod gets across two hosts next to the hosts themselves.
//!
//! Run by `bench/pod-net` inside a network namespace it made as the node (the
//! binary refuses to run in the machine's own namespace). Setup and teardown:
//! N pods, each with a network namespace made beforehand (untimed, as the
//! runtime makes it); setup = `Network::allocate` + `attach` against one CNI
//! ADD, interleaved; then teardown = `release` + unmounting the namespace's
//! bind file (the kernel then removes the veth pair by itself) against one CNI
//! DEL. Throughput: two namespaces "hosts" joined by a veth, each with a bosun
//! bridge and host-gw routes from `sync_routes`, iperf3 from a pod on one to a
//! pod on the other against iperf3 from host to host. Prints `name: value`
//! lines, then the ratios.

mod setup;
mod throughput;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use bosun_bench::percentile;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Benchmark pod network setup/teardown (bosun vs CNI bridge) and pod throughput")]
struct Args {
    /// A directory for IPAM state (bosun's and CNI's), made by the script.
    #[arg(long)]
    scratch: PathBuf,
    /// Prefix of every kernel object the run makes; the script passes its own
    /// so it can find leftovers. Default bt<pid>.
    #[arg(long)]
    tag: Option<String>,
    /// Pods set up and torn down (each side).
    #[arg(long, default_value_t = 200)]
    pods: usize,
    /// The node's address in this namespace (the link holding it gives the MTU).
    #[arg(long)]
    node_ip: Ipv4Addr,
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_path: PathBuf,
    /// The two hosts of the throughput part: namespaces under /run/netns
    /// joined by a veth, and their addresses on it. Without them the part is
    /// skipped.
    #[arg(long, num_args = 2, value_names = ["NETNS", "IP"])]
    host_a: Vec<String>,
    #[arg(long, num_args = 2, value_names = ["NETNS", "IP"])]
    host_b: Vec<String>,
    /// Seconds per iperf3 run.
    #[arg(long, default_value_t = 5)]
    seconds: u32,
    /// iperf3 runs per path (pod-to-pod and host-to-host alternate).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !bosun_bench::in_named_netns(Path::new("/run/netns"))? {
        bail!(
            "pod-net runs the CNI bridge plugin, which changes its network namespace \
             (bridge, veths, ip_forward): run it inside a namespace made for it under \
             /run/netns, as bench/pod-net does"
        );
    }
    let tag = args
        .tag
        .clone()
        .unwrap_or_else(|| format!("bt{}", std::process::id()));
    if !tag.starts_with("bt") || !tag[2..].chars().all(|c| c.is_ascii_digit()) || tag.len() > 12 {
        bail!("--tag must be bt<digits> (at most 12 characters), not {tag:?}");
    }
    if args.pods == 0 || args.pods > 250 {
        bail!("--pods must be 1..=250 (one /24 per side)");
    }

    let f = setup::run(&setup::Options {
        tag: tag.clone(),
        scratch: args.scratch.clone(),
        pods: args.pods,
        node_ip: args.node_ip,
        cni_path: args.cni_path.clone(),
    })?;
    line("bosun setup (allocate+attach)", &f.bosun_setup);
    line("  of which allocate (IPAM file)", &f.bosun_allocate);
    line("cni bridge ADD", &f.cni_setup);
    line("bosun teardown (release+umount netns)", &f.bosun_teardown);
    line("cni bridge DEL", &f.cni_teardown);
    println!(
        "kernel removed all {} bosun host veths within ms after the last teardown: {:.0}",
        args.pods, f.veths_gone_ms
    );
    let r = |a: &[f64], b: &[f64]| p50_p99(a).0 / p50_p99(b).0.max(1e-9);
    let r99 = |a: &[f64], b: &[f64]| p50_p99(a).1 / p50_p99(b).1.max(1e-9);
    println!(
        "ratio bosun/cni setup p50: {:.3} (p99 {:.3}; goal <= 0.3)",
        r(&f.bosun_setup, &f.cni_setup),
        r99(&f.bosun_setup, &f.cni_setup)
    );
    println!(
        "ratio bosun/cni teardown p50: {:.3} (p99 {:.3}; goal <= 0.3)",
        r(&f.bosun_teardown, &f.cni_teardown),
        r99(&f.bosun_teardown, &f.cni_teardown)
    );

    if let ([a_ns, a_ip], [b_ns, b_ip]) = (args.host_a.as_slice(), args.host_b.as_slice()) {
        let t = throughput::run(&throughput::Options {
            tag,
            scratch: args.scratch.clone(),
            a: (
                PathBuf::from("/run/netns").join(a_ns),
                a_ip.parse().context("--host-a IP")?,
            ),
            b: (
                PathBuf::from("/run/netns").join(b_ns),
                b_ip.parse().context("--host-b IP")?,
            ),
            seconds: args.seconds,
            rounds: args.rounds,
        })?;
        let gbit = |v: &[f64]| {
            v.iter()
                .map(|b| format!("{:.2}", b / 1e9))
                .collect::<Vec<_>>()
        };
        println!("pod-to-pod across hosts Gbit/s: {:?}", gbit(&t.pod));
        println!("host-to-host Gbit/s: {:?}", gbit(&t.host));
        println!(
            "ratio pod/host throughput (medians): {:.3} (goal >= 0.9)",
            median(&t.pod) / median(&t.host).max(1e-9)
        );
    } else {
        println!("note: no --host-a/--host-b; throughput skipped");
    }
    Ok(())
}

/// `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// (p50, p99) of `v`.
fn p50_p99(v: &[f64]) -> (f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (percentile(&s, 0.50), percentile(&s, 0.99))
}

fn median(v: &[f64]) -> f64 {
    p50_p99(v).0
}

fn line(name: &str, ms: &[f64]) {
    let (p50, p99) = p50_p99(ms);
    println!("{name} ms: p50 {p50:.2}, p99 {p99:.2} ({} pods)", ms.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let v = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(p50_p99(&v), (3.0, 5.0));
        assert_eq!(median(&[]), 0.0);
    }
}
