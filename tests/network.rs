//! Privileged tests of `agent::network` (the library, no bosun process): each
//! test makes its own network namespaces — a "node" (a [`TestHost`]) and pod
//! namespaces — runs the library inside the node's namespace on a thread that
//! joins it, and checks the result with `ip` and with real traffic between
//! namespaces the test made. Everything is removed on drop, also on panic.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent::network::{cleanup, peer_routes, NetConfig, NetError, Network, PeerRoute, RTPROT_BOSUN};
use api::cidr::Cidr;
use common::host::{require_root, unique, TestHost};

/// Runs `f` on a new thread inside the network namespace `netns`.
fn in_ns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(netns).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// `ip ARGS`, its stdout; panics when it fails.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod's network namespace (`/run/netns/<name>`, lo up); deleted on drop.
struct PodNs {
    name: String,
}

impl PodNs {
    fn new() -> PodNs {
        let name = unique("p");
        ip(&["netns", "add", &name]);
        let ns = PodNs { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn ping(&self, to: Ipv4Addr) -> bool {
        ping_from(&self.path(), to)
    }
}

impl Drop for PodNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn ping_from(netns: &Path, to: Ipv4Addr) -> bool {
    Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args([
            "--",
            "busybox",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            &to.to_string(),
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A TCP round trip from namespace `from` to `to_ip` inside namespace `to`;
/// the source address the server saw.
fn tcp_round_trip(from: &Path, to: &Path, to_ip: Ipv4Addr) -> std::net::IpAddr {
    let listener = in_ns(to, || TcpListener::bind((to_ip, 0)).expect("listen in pod"));
    let port = listener.local_addr().unwrap().port();
    std::thread::scope(|s| {
        let server = s.spawn(|| {
            let (mut c, peer) = listener.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf).unwrap();
            peer.ip()
        });
        let mut c = in_ns(from, || {
            TcpStream::connect_timeout(&(to_ip, port).into(), Duration::from_secs(5))
                .expect("connect to the pod")
        });
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");
        server.join().unwrap()
    })
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn cidr(s: &str) -> Cidr {
    Cidr::parse(s).unwrap()
}

fn config(host: &TestHost, pod_cidr: &str, state: &Path) -> NetConfig {
    NetConfig {
        bridge: unique("b"),
        pod_cidr: cidr(pod_cidr),
        cluster_cidr: cidr("10.244.0.0/16"),
        state_dir: state.to_path_buf(),
        nft_table: unique("t"),
        mtu: None,
        node_ip: host.ip.parse().unwrap(),
    }
}

fn setup(host: &TestHost, cfg: &NetConfig) -> Network {
    in_ns(&host.netns_path(), || Network::setup(cfg.clone())).expect("network setup")
}

/// The host ends of pod veths (`bsn…`) in the node.
fn pod_links(host: &TestHost) -> Vec<String> {
    ip(&["-n", &host.name, "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with("bsn"))
        .collect()
}

fn ipam_files(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("ipam"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn setup_and_attach_wire_pods_that_reach_each_other_and_the_node() {
    if !require_root("network setup and attach") {
        return;
    }
    let host = TestHost::new();
    // The pods' MTU comes from the link holding the node address.
    ip(&["-n", &host.name, "link", "set", "eth0", "mtu", "1400"]);
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&host, "10.244.7.0/24", state.path());
    let net = setup(&host, &cfg);
    assert_eq!(net.mtu(), 1400);

    let br = ip(&["-n", &host.name, "addr", "show", "dev", &cfg.bridge]);
    assert!(br.contains("inet 10.244.7.1/24"), "{br}");
    assert!(br.contains(",UP"), "{br}");
    let forward = Command::new("nsenter")
        .arg(format!("--net={}", host.netns_path().display()))
        .args(["--", "cat", "/proc/sys/net/ipv4/ip_forward"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&forward.stdout).trim(), "1");
    assert!(
        table_exists(&host, &cfg.nft_table),
        "setup made the masquerade table"
    );

    let (pa, pb) = (PodNs::new(), PodNs::new());
    let ipa = net.allocate("pod-a").unwrap();
    let ipb = net.allocate("pod-b").unwrap();
    assert_eq!(ipa, "10.244.7.2".parse::<Ipv4Addr>().unwrap());
    assert_eq!(ipb, "10.244.7.3".parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        net.allocate("pod-a").unwrap(),
        ipa,
        "same pod, same address"
    );
    net.attach("pod-a", &pa.path(), ipa).unwrap();
    net.attach("pod-b", &pb.path(), ipb).unwrap();

    let eth0 = ip(&["-n", &pa.name, "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet 10.244.7.2/24"), "{eth0}");
    assert!(eth0.contains("mtu 1400"), "{eth0}");
    assert!(eth0.contains(",UP"), "{eth0}");
    let route = ip(&["-n", &pa.name, "route", "show", "default"]);
    assert!(route.contains("default via 10.244.7.1 dev eth0"), "{route}");
    let hostend = agent::network::veth::host_name("pod-a");
    let port = ip(&["-d", "-n", &host.name, "link", "show", "dev", &hostend]);
    assert!(port.contains(&format!("master {}", cfg.bridge)), "{port}");
    assert!(port.contains("hairpin on"), "{port}");
    assert!(port.contains("mtu 1400"), "{port}");

    // Attaching again leaves the pod as it is.
    net.attach("pod-a", &pa.path(), ipa).unwrap();
    let eth0 = ip(&["-n", &pa.name, "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert_eq!(eth0.lines().count(), 1, "{eth0}");

    assert!(pa.ping(ipb), "pod a pings pod b");
    assert!(pb.ping(ipa), "pod b pings pod a");
    assert!(ping_from(&host.netns_path(), ipa), "the node pings pod a");
    assert_eq!(tcp_round_trip(&pa.path(), &pb.path(), ipb), ipa);
    tcp_round_trip(&host.netns_path(), &pa.path(), ipa);

    // After a restart (a new Network on the same state) the pods keep their
    // addresses, and setup repairs what differs: a gateway of an old podCIDR.
    ip(&[
        "-n",
        &host.name,
        "addr",
        "add",
        "10.244.99.1/24",
        "dev",
        &cfg.bridge,
    ]);
    ip(&[
        "-n",
        &host.name,
        "addr",
        "del",
        "10.244.7.1/24",
        "dev",
        &cfg.bridge,
    ]);
    let again = setup(&host, &cfg);
    assert_eq!(again.address_of("pod-a"), Some(ipa));
    assert_eq!(again.address_of("pod-b"), Some(ipb));
    assert_eq!(again.allocate("pod-c").unwrap().to_string(), "10.244.7.4");
    let br = ip(&[
        "-n",
        &host.name,
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        &cfg.bridge,
    ]);
    assert_eq!(br.lines().count(), 1, "{br}");
    assert!(br.contains("inet 10.244.7.1/24"), "{br}");
    assert!(
        pa.ping(ipb),
        "pods still reach each other after setup again"
    );

    // The pod's sandbox made again while its old namespace lingers: the old
    // pair is replaced by one into the new namespace.
    let pa2 = PodNs::new();
    net.attach("pod-a", &pa2.path(), ipa).unwrap();
    let eth0 = ip(&["-n", &pa2.name, "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(eth0.contains("inet 10.244.7.2/24"), "{eth0}");
    let old = ip(&["-n", &pa.name, "-o", "link", "show"]);
    assert!(!old.contains("eth0"), "{old}");
    assert!(pa2.ping(ipb), "pod a in its new namespace reaches pod b");

    // An address outside the podCIDR is refused, naming it.
    let err = net
        .attach("pod-x", &pa.path(), "10.9.9.9".parse().unwrap())
        .unwrap_err();
    assert!(matches!(err, NetError::NotInPodCidr { .. }), "{err}");
    assert!(err.to_string().contains("10.9.9.9"), "{err}");

    // A namespace that is not there is named in the error.
    let err = net
        .attach("pod-y", Path::new("/run/netns/bt-no-such-ns"), ipb)
        .unwrap_err();
    assert!(err.to_string().contains("bt-no-such-ns"), "{err}");

    in_ns(&host.netns_path(), || {
        cleanup(&cfg.bridge, &cfg.nft_table, state.path())
    })
    .unwrap();
    assert!(
        !table_exists(&host, &cfg.nft_table),
        "cleanup removed the table"
    );
}

fn table_exists(host: &TestHost, table: &str) -> bool {
    in_ns(&host.netns_path(), || {
        agent::network::nft::table_exists(table)
    })
    .unwrap()
}

#[test]
fn two_hundred_cycles_leave_nothing_behind_and_reuse_addresses() {
    if !require_root("network attach/release cycles") {
        return;
    }
    let host = TestHost::new();
    let state = tempfile::tempdir().unwrap();
    // 29 pod addresses: 200 cycles go round the range several times.
    let cfg = config(&host, "10.244.8.0/27", state.path());
    let net = setup(&host, &cfg);
    let routes_before = ip(&["-n", &host.name, "-4", "route", "show", "table", "all"]);
    let mut seen = HashSet::new();
    let peer = PodNs::new();
    let peer_ip = net.allocate("peer").unwrap();
    net.attach("peer", &peer.path(), peer_ip).unwrap();
    for i in 0..200 {
        let uid = format!("cycle-{i}");
        let pod = PodNs::new();
        let ip_addr = net.allocate(&uid).unwrap();
        assert!(cfg.pod_cidr.contains(ip_addr));
        assert_ne!(ip_addr, peer_ip);
        net.attach(&uid, &pod.path(), ip_addr).unwrap();
        if i % 50 == 0 {
            assert!(pod.ping(peer_ip), "cycle {i}: pod reaches the peer pod");
        }
        net.release(&uid).unwrap();
        net.release(&uid).unwrap();
        assert_eq!(net.address_of(&uid), None);
        seen.insert(ip_addr);
        drop(pod);
    }
    assert!(
        seen.len() <= 28,
        "freed addresses are reused: {}",
        seen.len()
    );
    assert_eq!(seen.len(), 28, "round-robin uses the whole range");
    // Pods gone while the agent was down: reclaim frees all but the live.
    let ghost = net.allocate("ghost").unwrap();
    let live: HashSet<String> = ["peer".to_string()].into();
    assert_eq!(net.reclaim(&live).unwrap(), 1);
    assert_eq!(net.address_of("ghost"), None);
    assert_eq!(net.address_of("peer"), Some(peer_ip));
    assert!(!ipam_files(state.path()).contains(&ghost.to_string()));
    drop(peer);
    net.release("peer").unwrap();
    wait_until("the kernel to remove every pod veth", || {
        pod_links(&host).is_empty()
    });
    assert_eq!(ipam_files(state.path()), Vec::<String>::new());
    let routes_after = ip(&["-n", &host.name, "-4", "route", "show", "table", "all"]);
    assert_eq!(routes_before, routes_after);
    let addrs = ip(&["-n", &host.name, "-4", "-o", "addr", "show"]);
    assert_eq!(addrs.lines().count(), 3, "lo, eth0 and the bridge: {addrs}");
}

#[test]
fn sync_routes_touches_only_its_own_routes_and_cleanup_removes_everything() {
    if !require_root("peer route sync") {
        return;
    }
    let (a, b) = TestHost::pair();
    let state = tempfile::tempdir().unwrap();
    let cfg = config(&a, "10.244.10.0/24", state.path());
    let net = setup(&a, &cfg);
    let b_ip: Ipv4Addr = b.ip.parse().unwrap();
    // Another address on the same link (a gateway only needs to be on-link).
    let other_gw = Ipv4Addr::from(u32::from(b_ip) + 1);
    // A route bosun did not make, and one in its way.
    ip(&[
        "-n",
        &a.name,
        "route",
        "add",
        "10.244.50.0/24",
        "via",
        &b.ip,
    ]);
    ip(&[
        "-n",
        &a.name,
        "route",
        "add",
        "10.244.51.0/24",
        "via",
        &b.ip,
    ]);
    let ours = || {
        ip(&[
            "-n",
            &a.name,
            "route",
            "show",
            "proto",
            &RTPROT_BOSUN.to_string(),
        ])
    };
    let route = |dst: &str, via: Ipv4Addr, node: &str| PeerRoute {
        dst: cidr(dst),
        via,
        node: node.into(),
    };

    net.sync_routes(&[
        route("10.244.11.0/24", b_ip, "b"),
        route("10.244.12.0/24", b_ip, "c"),
    ])
    .unwrap();
    let r = ours();
    assert!(
        r.contains(&format!("10.244.11.0/24 via {b_ip} dev eth0")),
        "{r}"
    );
    assert!(
        r.contains(&format!("10.244.12.0/24 via {b_ip} dev eth0")),
        "{r}"
    );
    assert_eq!(r.lines().count(), 2, "{r}");

    // Changed, stale, new, unreachable and blocked in one go.
    let err = net
        .sync_routes(&[
            route("10.244.11.0/24", other_gw, "b"),
            route("10.244.13.0/24", b_ip, "d"),
            route("10.244.14.0/24", "192.0.2.1".parse().unwrap(), "e"),
            route("10.244.51.0/24", b_ip, "f"),
        ])
        .unwrap_err();
    let NetError::Routes(failed) = &err else {
        panic!("want per-route failures, got {err}");
    };
    let nodes: Vec<&str> = failed.iter().map(|f| f.route.node.as_str()).collect();
    assert_eq!(nodes, ["e", "f"], "{err}");
    assert!(err.to_string().contains("192.0.2.1"), "{err}");
    let r = ours();
    assert!(
        r.contains(&format!("10.244.11.0/24 via {other_gw} dev eth0")),
        "{r}"
    );
    assert!(
        r.contains(&format!("10.244.13.0/24 via {b_ip} dev eth0")),
        "{r}"
    );
    assert!(
        !r.contains("10.244.12.0/24"),
        "the stale route is gone: {r}"
    );
    assert_eq!(r.lines().count(), 2, "{r}");
    let all = ip(&["-n", &a.name, "route", "show"]);
    assert!(all.contains(&format!("10.244.50.0/24 via {b_ip}")), "{all}");
    assert!(all.contains(&format!("10.244.51.0/24 via {b_ip}")), "{all}");

    net.sync_routes(&[]).unwrap();
    assert_eq!(ours(), "");
    net.sync_routes(&[route("10.244.11.0/24", b_ip, "b")])
        .unwrap();

    let pod = PodNs::new();
    let pod_ip = net.allocate("p").unwrap();
    net.attach("p", &pod.path(), pod_ip).unwrap();
    assert!(!ipam_files(state.path()).is_empty());

    for _ in 0..2 {
        in_ns(&a.netns_path(), || {
            cleanup(&cfg.bridge, &cfg.nft_table, state.path())
        })
        .unwrap();
        assert_eq!(ours(), "");
        let links = ip(&["-n", &a.name, "-o", "link", "show"]);
        assert!(!links.contains(&cfg.bridge), "{links}");
        assert!(!state.path().join("ipam").exists());
        assert!(!table_exists(&a, &cfg.nft_table));
        let all = ip(&["-n", &a.name, "route", "show"]);
        assert!(
            all.contains("10.244.50.0/24"),
            "foreign routes survive: {all}"
        );
        assert!(all.contains("10.244.51.0/24"), "{all}");
    }
}

#[test]
fn pods_on_two_hosts_reach_each_other_over_host_gw_routes() {
    if !require_root("pod traffic across hosts") {
        return;
    }
    let (a, b) = TestHost::pair();
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ca = config(&a, "10.244.20.0/24", sa.path());
    let cb = config(&b, "10.244.21.0/24", sb.path());
    let (na, nb) = (setup(&a, &ca), setup(&b, &cb));
    let nodes = [node("a", &ca, &a), node("b", &cb, &b)];
    na.sync_routes(&peer_routes(&nodes, "a")).unwrap();
    nb.sync_routes(&peer_routes(&nodes, "b")).unwrap();

    let (pa, pb) = (PodNs::new(), PodNs::new());
    let ipa = na.allocate("pa").unwrap();
    let ipb = nb.allocate("pb").unwrap();
    na.attach("pa", &pa.path(), ipa).unwrap();
    nb.attach("pb", &pb.path(), ipb).unwrap();
    assert!(pa.ping(ipb), "pod on a pings pod on b");
    assert!(ping_from(&a.netns_path(), ipb), "host a pings the pod on b");
    // Inside the cluster CIDR the pod's own address arrives; towards anything
    // else (here host b's address) it is masqueraded to its node's address.
    assert_eq!(tcp_round_trip(&pa.path(), &pb.path(), ipb), ipa);
    assert_eq!(
        tcp_round_trip(&b.netns_path(), &pa.path(), ipa),
        host_ip(&b)
    );
    assert_eq!(
        tcp_round_trip(&pa.path(), &b.netns_path(), host_ip(&b)),
        a.ip.parse::<Ipv4Addr>().unwrap()
    );
}

fn host_ip(h: &TestHost) -> Ipv4Addr {
    h.ip.parse().unwrap()
}

fn node(name: &str, cfg: &NetConfig, host: &TestHost) -> k8s_openapi::api::core::v1::Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": cfg.pod_cidr.to_string()},
        "status": {"addresses": [{"type": "InternalIP", "address": host.ip}]},
    }))
    .unwrap()
}
