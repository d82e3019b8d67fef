//! End to end: `bosun hollow` against a real master, checked with kubectl as an
//! operator would — its nodes are Ready and renew their Leases, pods bound to them
//! run with IPs from the node's pod CIDR, a deleted pod goes away, and SIGTERM
//! stops the process cleanly. Loopback only: the nodes' addresses are never used.

mod common;

use common::{eventually, ok, Hollow, Master};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 5;
/// Pods per node in the test.
const PER_NODE: usize = 2;

fn get_json(m: &Master, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(m.kubectl(&all))).unwrap()
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// Whether `ip` is inside `cidr` (IPv4).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').unwrap();
    let net: u32 = net.parse::<Ipv4Addr>().unwrap().into();
    let len: u32 = len.parse().unwrap();
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    ip.parse::<Ipv4Addr>()
        .is_ok_and(|ip| u32::from(ip) & mask == net & mask)
}

fn renew_times(m: &Master) -> HashMap<String, String> {
    items(&get_json(m, &["leases", "-n", "kube-node-lease"]))
        .iter()
        .map(|l| {
            (
                l["metadata"]["name"].as_str().unwrap_or("").to_string(),
                l["spec"]["renewTime"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn hollow_nodes_register_renew_leases_and_run_their_pods() {
    let m = Master::start();
    let mut hollow = Hollow::start(&m, NODES, "hollow");
    let names: Vec<String> = (0..NODES).map(|i| format!("hollow-{i:04}")).collect();

    // The nodes register Ready, with what a real kubelet reports.
    let nodes = eventually(30, "5 Ready hollow nodes", || {
        let nodes = items(&get_json(&m, &["nodes", "-l", "type=hollow"]));
        (nodes.len() == NODES && nodes.iter().all(ready)).then_some(nodes)
    });
    for n in &nodes {
        assert_eq!(n["status"]["allocatable"]["pods"], "110");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            "v1.32.0-bosun-hollow"
        );
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/os"], "linux");
    }
    eventually(10, "the registered progress line", || {
        hollow
            .output()
            .contains("hollow: 5 nodes registered")
            .then_some(())
    });

    // Each node holds its Lease, and renews it.
    let first = eventually(30, "5 node leases", || {
        let t = renew_times(&m);
        names.iter().all(|n| t.contains_key(n)).then_some(t)
    });
    for t in first.values() {
        assert!(
            t.ends_with('Z') && t.len() == "2026-11-26T16:00:00.000000Z".len(),
            "renewTime {t} is not a MicroTime"
        );
    }

    // No node IPAM controller yet: give each node its pod CIDR by hand.
    for (i, n) in names.iter().enumerate() {
        let patch =
            format!(r#"{{"spec":{{"podCIDR":"10.244.{i}.0/24","podCIDRs":["10.244.{i}.0/24"]}}}}"#);
        ok(m.kubectl(&["patch", "node", n, "-p", &patch]));
    }

    // Pods bound directly (no scheduler yet), one with an init container.
    let mut manifest = String::new();
    for (i, n) in names.iter().enumerate() {
        for j in 0..PER_NODE {
            let init = if j == 0 {
                "  initContainers: [{name: setup, image: busybox}]\n"
            } else {
                ""
            };
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p-{i}-{j}}}\nspec:\n  nodeName: {n}\n{init}  containers: [{{name: app, image: nginx}}, {{name: side, image: busybox}}]\n"
            ));
        }
    }
    ok(m.kubectl_with(
        &common::kubectl_bin(),
        &["apply", "-f", "-"],
        Some(&manifest),
    ));

    let pods = eventually(30, "every pod Running and ready", || {
        let pods = items(&get_json(&m, &["pods"]));
        let done = pods.len() == NODES * PER_NODE
            && pods.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|cs| cs.len() == 2 && cs.iter().all(|c| c["ready"] == true))
            });
        done.then_some(pods)
    });
    let mut ips = HashSet::new();
    for p in &pods {
        let node = p["spec"]["nodeName"].as_str().unwrap();
        let i: usize = node.trim_start_matches("hollow-").parse().unwrap();
        let ip = p["status"]["podIP"].as_str().unwrap();
        assert!(
            in_cidr(ip, &format!("10.244.{i}.0/24")),
            "pod {} on {node} has {ip}",
            p["metadata"]["name"]
        );
        assert!(ips.insert(ip.to_string()), "{ip} given twice");
        assert_eq!(p["status"]["podIPs"][0]["ip"], ip);
        let cs = &p["status"]["containerStatuses"][0];
        assert_eq!(cs["started"], true);
        assert!(cs["state"]["running"]["startedAt"].is_string());
        assert!(cs["imageID"]
            .as_str()
            .unwrap()
            .starts_with("hollow://sha256:"));
        let conditions = p["status"]["conditions"].as_array().unwrap();
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(
                conditions
                    .iter()
                    .any(|c| c["type"] == t && c["status"] == "True"),
                "{t} in {conditions:?}"
            );
        }
    }
    let with_init = pods
        .iter()
        .find(|p| p["metadata"]["name"] == "p-0-0")
        .unwrap();
    assert_eq!(
        with_init["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );

    // A graceful delete completes: the hollow node finishes it.
    let started = Instant::now();
    ok(m.kubectl(&["delete", "pod", "p-1-0", "--timeout=30s"]));
    assert!(started.elapsed() < Duration::from_secs(30));
    let gone = m.kubectl(&["get", "pod", "p-1-0"]);
    assert!(!gone.status.success(), "p-1-0 still exists");

    // Leases are renewed while the process runs (every 10 s).
    eventually(25, "every lease renewed", || {
        let now = renew_times(&m);
        names
            .iter()
            .all(|n| now.get(n) > first.get(n))
            .then_some(())
    });

    // SIGTERM: a clean stop with exit code 0; the nodes stay registered.
    let child = hollow.child.as_mut().unwrap();
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = eventually(10, "hollow to exit after SIGTERM", || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "exit {status}: {}", hollow.output());
    assert!(hollow.output().contains("hollow: stopping"));
    hollow.child = None;
    assert_eq!(
        items(&get_json(&m, &["nodes", "-l", "type=hollow"])).len(),
        NODES
    );
}

#[test]
fn a_missing_token_file_is_one_line_and_exit_64() {
    let out = Command::new(common::bosun_bin())
        .args([
            "hollow",
            "--server",
            "https://127.0.0.1:1",
            "--token-file",
            "/nonexistent/join-token",
            "--ca-file",
            "/nonexistent/ca.crt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("token file /nonexistent/join-token"), "{err}");
}
