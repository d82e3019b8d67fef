//! Privileged tests of `agent::network::nft` against the real kernel: every
//! test makes its own network namespace, runs the library on a thread that
//! entered it, and checks the result with `nft -j` inside that namespace (and
//! once with real traffic between namespaces it made). The host's own
//! namespace is never touched.

mod common;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use agent::network::nft::{self, Masquerade, NftError};
use api::cidr::Cidr;
use common::host::{require_root, unique};
use serde_json::Value;

/// A network namespace made for one test, deleted on drop (also on panic).
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = unique("n");
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns(name);
        sh(&["ip", "-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` on a thread that entered this namespace (and exits after).
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).expect("open the netns file");
                // SAFETY: setns on a valid namespace fd; it changes only this
                // thread, which ends when `f` returns.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// `nft ARGS` inside the namespace; stdout, or `None` when nft failed.
    fn nft(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, "nft"])
            .args(args)
            .output()
            .expect("run nft");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The objects of `nft -j list table ip <table>`, or `None` when absent.
    fn table(&self, table: &str) -> Option<Vec<Value>> {
        let out = self.nft(&["-j", "list", "table", "ip", table])?;
        let v: Value = serde_json::from_str(&out).expect("nft -j output is JSON");
        Some(v["nftables"].as_array().expect("nftables array").clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run a command");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn masq<'a>(table: &'a str, pod: &str) -> Masquerade<'a> {
    Masquerade {
        table,
        pod_cidr: Cidr::parse(pod).unwrap(),
        cluster_cidr: Cidr::parse("10.244.0.0/16").unwrap(),
        bridge: "bosun0",
    }
}

fn objects<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter_map(|o| o.get(kind)).collect()
}

/// The rules of chain `chain`.
fn rules<'a>(objs: &'a [Value], chain: &str) -> Vec<&'a Value> {
    objects(objs, "rule")
        .into_iter()
        .filter(|r| r["chain"] == chain)
        .collect()
}

/// Asserts the table holds chain postrouting (nat, postrouting, 100) with
/// exactly the masquerade rule for `pod`.
fn assert_masquerade(ns: &Netns, table: &str, pod: &str) {
    let objs = ns.table(table).expect("table exists");
    let chains = objects(&objs, "chain");
    let pr = chains
        .iter()
        .find(|c| c["name"] == "postrouting")
        .expect("chain postrouting");
    assert_eq!(pr["type"], "nat");
    assert_eq!(pr["hook"], "postrouting");
    assert_eq!(pr["prio"], 100);
    assert_eq!(pr["policy"], "accept");
    let rs = rules(&objs, "postrouting");
    assert_eq!(rs.len(), 1, "exactly one rule: {rs:?}");
    let (addr, len) = pod.split_once('/').unwrap();
    let want = serde_json::json!([
        {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                   "right": {"prefix": {"addr": addr, "len": len.parse::<u32>().unwrap()}}}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                   "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}}},
        {"masquerade": null}
    ]);
    assert_eq!(rs[0]["expr"], want);
    assert_eq!(rs[0]["comment"], nft::masquerade::COMMENT);
}

#[test]
fn ensure_makes_one_rule_and_is_idempotent() {
    if !require_root("nft ensure") {
        return;
    }
    let ns = Netns::new();
    let t = unique("t");
    assert!(!ns.run(|| nft::table_exists(&t)).unwrap());
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    assert!(ns.run(|| nft::table_exists(&t)).unwrap());
    // Twice (and a third time on another socket): still exactly one rule.
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    // A new podCIDR replaces the rule.
    ns.run(|| masq(&t, "10.244.7.0/25").ensure()).unwrap();
    assert_masquerade(&ns, &t, "10.244.7.0/25");
}

#[test]
fn ensure_leaves_other_chains_and_flushes_strays() {
    if !require_root("nft other chains") {
        return;
    }
    let ns = Netns::new();
    let t = unique("t");
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    // By hand: a chain of our own with a rule, and a stray rule in postrouting.
    ns.nft(&["add", "chain", "ip", &t, "mine"])
        .expect("add chain");
    ns.nft(&[
        "add", "rule", "ip", &t, "mine", "ip", "daddr", "10.9.9.9", "drop",
    ])
    .expect("add rule");
    ns.nft(&["add", "rule", "ip", &t, "postrouting", "counter"])
        .expect("add stray rule");
    assert_eq!(rules(&ns.table(&t).unwrap(), "postrouting").len(), 2);
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    let objs = ns.table(&t).unwrap();
    assert!(objects(&objs, "chain").iter().any(|c| c["name"] == "mine"));
    assert_eq!(rules(&objs, "mine").len(), 1, "the hand-made rule survives");
    // A table of another family with the same name is not ours.
    ns.nft(&["add", "table", "inet", &t])
        .expect("add inet table");
    ns.run(|| nft::delete_table(&t)).unwrap();
    assert!(ns.nft(&["list", "table", "inet", &t]).is_some());
}

#[test]
fn delete_table_removes_it_and_is_idempotent() {
    if !require_root("nft delete") {
        return;
    }
    let ns = Netns::new();
    let t = unique("t");
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    ns.nft(&["add", "chain", "ip", &t, "mine"])
        .expect("add chain");
    ns.run(|| nft::delete_table(&t)).unwrap();
    assert!(ns.table(&t).is_none(), "table gone");
    assert!(!ns.run(|| nft::table_exists(&t)).unwrap());
    ns.run(|| nft::delete_table(&t)).unwrap();
}

#[test]
fn refused_batch_names_the_object_and_changes_nothing() {
    if !require_root("nft errors") {
        return;
    }
    let ns = Netns::new();
    let t = unique("t");
    ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();
    // Someone redefined postrouting as a filter chain on another hook: the
    // kernel refuses our chain, and so the whole batch.
    ns.run(|| nft::delete_table(&t)).unwrap();
    ns.nft(&["add", "table", "ip", &t]).unwrap();
    ns.nft(&[
        "add",
        "chain",
        "ip",
        &t,
        "postrouting",
        "{",
        "type",
        "filter",
        "hook",
        "forward",
        "priority",
        "0",
        ";",
        "}",
    ])
    .unwrap();
    ns.nft(&["add", "rule", "ip", &t, "postrouting", "counter"])
        .unwrap();
    let err = ns.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap_err();
    assert!(matches!(err, NftError::Kernel { .. }), "{err}");
    eprintln!("refused: {err}");
    assert!(
        err.to_string()
            .contains(&format!("add chain ip {t} postrouting")),
        "{err}"
    );
    // Nothing of the batch applied: the counter rule is still the only rule.
    let objs = ns.table(&t).unwrap();
    let rs = rules(&objs, "postrouting");
    assert_eq!(rs.len(), 1);
    assert_eq!(
        rs[0]["expr"],
        serde_json::json!([{"counter": {"packets": 0, "bytes": 0}}])
    );
    // Bad names never reach the kernel.
    let err = ns.run(|| nft::table_exists("")).unwrap_err();
    assert!(matches!(err, NftError::InvalidName { .. }));
}

/// pod (10.244.1.2) — node (gateway 10.244.1.1, uplink 10.254.0.1) —
/// outside (10.254.0.2, also holding 10.244.2.9 as a "pod of another node").
/// UDP from the pod to the outside address arrives from the node's address;
/// to the cluster address it keeps the pod's.
#[test]
fn masquerade_rewrites_only_traffic_leaving_the_cluster() {
    if !require_root("nft masquerade traffic") {
        return;
    }
    let (pod, node, out) = (Netns::new(), Netns::new(), Netns::new());
    let ip = |ns: &Netns, args: &[&str]| {
        let mut v = vec!["ip", "-n", &ns.0];
        v.extend_from_slice(args);
        sh(&v);
    };
    ip(
        &node,
        &[
            "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", &out.0,
        ],
    );
    ip(
        &node,
        &[
            "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", &pod.0,
        ],
    );
    ip(&node, &["addr", "add", "10.254.0.1/24", "dev", "up0"]);
    ip(&node, &["addr", "add", "10.244.1.1/24", "dev", "pod0"]);
    ip(&out, &["addr", "add", "10.254.0.2/24", "dev", "eth0"]);
    ip(&out, &["addr", "add", "10.244.2.9/32", "dev", "lo"]);
    ip(&pod, &["addr", "add", "10.244.1.2/24", "dev", "eth0"]);
    for (ns, dev) in [
        (&node, "up0"),
        (&node, "pod0"),
        (&out, "eth0"),
        (&pod, "eth0"),
    ] {
        ip(ns, &["link", "set", dev, "up"]);
    }
    ip(&pod, &["route", "add", "default", "via", "10.244.1.1"]);
    ip(
        &node,
        &["route", "add", "10.244.2.0/24", "via", "10.254.0.2"],
    );
    ip(
        &out,
        &["route", "add", "10.244.0.0/16", "via", "10.254.0.1"],
    );
    sh(&[
        "ip",
        "netns",
        "exec",
        &node.0,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);

    let t = unique("t");
    node.run(|| masq(&t, "10.244.1.0/24").ensure()).unwrap();

    let server = out.run(|| UdpSocket::bind("0.0.0.0:0")).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let source_seen = |dst: Ipv4Addr| -> Ipv4Addr {
        let payload = format!("to {dst}");
        pod.run(|| {
            let c = UdpSocket::bind("0.0.0.0:0").unwrap();
            c.send_to(payload.as_bytes(), SocketAddr::from((dst, port)))
                .unwrap();
        });
        let mut buf = [0u8; 64];
        loop {
            let (n, from) = server.recv_from(&mut buf).expect("datagram arrives");
            if buf[..n] == *payload.as_bytes() {
                match from {
                    SocketAddr::V4(a) => return *a.ip(),
                    SocketAddr::V6(a) => panic!("v6 peer {a}"),
                }
            }
        }
    };
    assert_eq!(
        source_seen(Ipv4Addr::new(10, 254, 0, 2)),
        Ipv4Addr::new(10, 254, 0, 1),
        "leaving the cluster: masqueraded to the node's address"
    );
    assert_eq!(
        source_seen(Ipv4Addr::new(10, 244, 2, 9)),
        Ipv4Addr::new(10, 244, 1, 2),
        "inside the cluster CIDR: the pod's own address"
    );
    // Without the table the outside sees the pod's address (the check can fail).
    node.run(|| nft::delete_table(&t)).unwrap();
    // A fresh source port: the old flow's NAT mapping lives on in conntrack.
    assert_eq!(
        source_seen(Ipv4Addr::new(10, 254, 0, 2)),
        Ipv4Addr::new(10, 244, 1, 2)
    );
}

/// `ensure()` p50/p99 over 100 runs next to `nft -f` of the same ruleset
/// (both on an existing table, the steady state). Prints the figures.
#[test]
fn ensure_time_next_to_nft_f() {
    if !require_root("nft timing") {
        return;
    }
    let ns = Netns::new();
    let t = unique("t");
    let m = masq(&t, "10.244.1.0/24");
    let runs = 100;
    let ours = ns.run(|| {
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                m.ensure().unwrap();
                s.elapsed()
            })
            .collect::<Vec<_>>()
    });
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    // The same on one long-lived socket: what a caller applying often sees.
    let kept = ns.run(|| {
        let mut sock = nft::Socket::open().unwrap();
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                m.ensure_on(&mut sock).unwrap();
                s.elapsed()
            })
            .collect::<Vec<_>>()
    });
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    // Each run replaced the rule: handles count up (table, chain, 2 × runs rules).
    let objs = ns.table(&t).unwrap();
    let handle = rules(&objs, "postrouting")[0]["handle"].as_u64().unwrap();
    assert!(handle > 2 * runs as u64, "rule handle {handle}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        format!(
            "add table ip {t}\n\
             add chain ip {t} postrouting {{ type nat hook postrouting priority 100 ; }}\n\
             flush chain ip {t} postrouting\n\
             add rule ip {t} postrouting ip saddr 10.244.1.0/24 ip daddr != 10.244.0.0/16 masquerade comment \"{c}\"\n",
            c = nft::masquerade::COMMENT
        ),
    )
    .unwrap();
    let path = file.path().display().to_string();
    // Spawned from a thread inside the namespace (a child inherits the
    // thread's namespaces): no `ip netns exec` in the figure.
    let theirs: Vec<Duration> = ns.run(|| {
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                sh(&["nft", "-f", &path]);
                s.elapsed()
            })
            .collect()
    });
    assert_masquerade(&ns, &t, "10.244.1.0/24");
    let pct = |v: &[Duration], p: usize| {
        let mut v = v.to_vec();
        v.sort();
        v[(v.len() * p / 100).min(v.len() - 1)]
    };
    eprintln!(
        "nft ensure(): p50 {:?} p99 {:?}; ensure_on(kept socket): p50 {:?} p99 {:?}; \
         `nft -f`: p50 {:?} p99 {:?} ({runs} runs each)",
        pct(&ours, 50),
        pct(&ours, 99),
        pct(&kept, 50),
        pct(&kept, 99),
        pct(&theirs, 50),
        pct(&theirs, 99)
    );
}

/// 10,000 rules (`ip daddr <a> accept`) in one batch: one send past the
/// default socket buffer, applied atomically; prints the time.
#[test]
fn ten_thousand_rules_in_one_batch() {
    if !require_root("nft large batch") {
        return;
    }
    use agent::network::nft::expr::{match_ipv4_addr, Expr, Verdict, IPV4_DADDR};
    use agent::network::nft::objects::{Chain, Rule, Table};
    let ns = Netns::new();
    let t = unique("t");
    let n = 10_000u32;
    let elapsed = ns.run(|| {
        let table = Table::new(nft::Family::Ip, &t).unwrap();
        let chain = Chain::new(table, "many").unwrap();
        let mut b = nft::Batch::new();
        b.push(table.add()).push(chain.add());
        for i in 0..n {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i);
            let r = Rule::new(&chain)
                .with(match_ipv4_addr(IPV4_DADDR, addr))
                .with([Expr::Verdict(Verdict::Accept)]);
            b.push(r.add());
        }
        let s = Instant::now();
        nft::Socket::open().unwrap().apply(&b).unwrap();
        s.elapsed()
    });
    let listing = ns.nft(&["list", "chain", "ip", &t, "many"]).unwrap();
    let count = listing.lines().filter(|l| l.contains("accept")).count();
    assert_eq!(count, n as usize);
    assert!(
        listing.contains("ip daddr 10.200.39.15 accept"),
        "last rule"
    );
    eprintln!("nft: {n} rules in one batch applied in {elapsed:?}");
}
