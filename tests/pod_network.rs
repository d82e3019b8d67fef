//! End-to-end: the pod network across hosts. A cluster of three hosts on one
//! test switch ([`common::cluster`]), an agent on each; pods on every host reach
//! pods on the others by pod IP over TCP and UDP, hosts reach pods on other
//! hosts, pod IPs lie in their node's podCIDR and survive an agent restart, and
//! create/delete cycles leave nothing behind.

mod common;

use api::cidr::Cidr;
use common::cluster::Cluster;
use common::host::{can_run_pods, require_root, Agent, TestHost};
use common::{eventually, require_tool};

#[test]
fn the_cluster_harness_connects_its_hosts_and_removes_them() {
    if !require_root("the cluster harness test") {
        return;
    }
    let names;
    {
        let c = Cluster::new(3);
        names = c
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .chain([c.switch.name.clone()])
            .collect::<Vec<_>>();
        for a in &c.hosts {
            for b in &c.hosts {
                let out = a
                    .command("busybox")
                    .args(["ping", "-c1", "-W2", &b.ip])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{} -> {}", a.ip, b.ip);
            }
        }
        let nodes = common::ok(c.kubectl(&["get", "nodes", "-o", "name"]));
        assert_eq!(nodes.lines().count(), 3, "{nodes}");
    }
    let left = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    for n in names {
        assert!(!left.contains(&n), "{n} left behind: {left}");
    }
}

const IMAGE: &str = "bosun.test/busybox:net";

/// A pod on `node` serving its own name over HTTP on :8080.
fn web_pod(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c"]
    args:
    - mkdir -p /tmp/www && echo "$(hostname) $POD_IP" > /tmp/www/index.html &&
      exec httpd -f -p 8080 -h /tmp/www
    env:
    - name: POD_IP
      valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}
"#
    )
}

/// A pod on `node` that fetches `/` from each of `ips` on :8080 (each retried
/// for a while: routes to a new node take a moment) and prints what it got,
/// then exits. (busybox `nc`: the static busybox's `wget` needs NSS, which an
/// image without libc does not have.)
fn client_pod(name: &str, node: &str, ips: &[String]) -> String {
    let ips = ips.join(" ");
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  restartPolicy: Never
  containers:
  - name: get
    image: {IMAGE}
    imagePullPolicy: Never
    command: ["/bin/sh", "-c"]
    args:
    - for ip in {ips}; do
        n=0;
        until printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 2 $ip 8080 > /tmp/got && grep -q web- /tmp/got; do
          n=$((n+1)); [ $n -ge 20 ] && exit 1; sleep 0.5;
        done;
        tail -n 1 /tmp/got;
      done
"#
    )
}

fn pod_field(c: &Cluster, pod: &str, path: &str) -> String {
    c.master
        .pod_json(pod)
        .and_then(|p| p.pointer(path).and_then(|v| v.as_str()).map(String::from))
        .unwrap_or_default()
}

/// Waits until `pod` runs and returns its IP.
fn running_ip(c: &Cluster, pod: &str) -> String {
    eventually(60, &format!("pod {pod} Running with an IP"), || {
        let p = c.master.pod_json(pod)?;
        let ip = p.pointer("/status/podIP")?.as_str()?.to_string();
        (p.pointer("/status/phase")?.as_str()? == "Running").then_some(ip)
    })
}

/// `python3 -c script` inside the network namespace `netns`.
fn python_in(netns: &std::path::Path, script: &str) -> std::process::Command {
    let mut c = std::process::Command::new("nsenter");
    c.arg(format!("--net={}", netns.display()))
        .args(["--", "python3", "-c", script]);
    c
}

/// A UDP echo server inside a pod's network namespace, killed on drop.
struct UdpEcho(std::process::Child);

impl UdpEcho {
    fn start(netns: &std::path::Path, ip: &str) -> UdpEcho {
        let script = format!(
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('{ip}',9999))\nwhile True:\n d,a=s.recvfrom(2048)\n s.sendto(b'echo '+d,a)\n"
        );
        let child = python_in(netns, &script).spawn().expect("start python3");
        UdpEcho(child)
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends one datagram from inside `netns` to `ip`:9999 and returns the answer.
fn udp_ask(netns: &std::path::Path, ip: &str, text: &str) -> Option<String> {
    let script = format!(
        "import socket,sys\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.settimeout(1)\nfor _ in range(10):\n s.sendto(b'{text}',('{ip}',9999))\n try:\n  print(s.recv(2048).decode()); sys.exit(0)\n except socket.timeout:\n  pass\nsys.exit(1)\n"
    );
    let out = python_in(netns, &script).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The network namespace file of a pod on `agent`.
fn pod_netns(agent: &Agent, uid: &str) -> std::path::PathBuf {
    agent.data_dir().join("pods").join(uid).join("ns/net")
}

#[test]
fn pods_reach_pods_and_hosts_across_three_hosts() {
    if !can_run_pods("the pod network e2e test")
        || !require_tool(
            std::path::Path::new("/usr/bin/python3"),
            "UDP checks use python3",
        )
    {
        return;
    }
    let mut c = Cluster::new(3);
    for a in &c.agents {
        a.import_busybox(IMAGE);
    }
    let cluster_cidr = Cidr::parse("10.244.0.0/16").unwrap();
    let mut ips = Vec::new();
    for i in 0..3 {
        c.master
            .apply(&web_pod(&format!("web-{i}"), &format!("node-{i}")));
    }
    for i in 0..3 {
        let ip = running_ip(&c, &format!("web-{i}"));
        let cidr = common::ok(c.kubectl(&[
            "get",
            "node",
            &format!("node-{i}"),
            "-o",
            "jsonpath={.spec.podCIDR}",
        ]));
        let cidr = Cidr::parse(cidr.trim()).unwrap();
        let addr: std::net::Ipv4Addr = ip.parse().unwrap();
        assert!(
            cidr.contains(addr),
            "web-{i} has {ip}, outside its node's {cidr}"
        );
        assert!(cluster_cidr.contains(addr));
        assert_ne!(addr, cidr.nth(1), "the gateway is not a pod address");
        ips.push(ip);
    }

    // TCP, pod to pod: a client on every host fetches from every web pod.
    for i in 0..3 {
        c.master
            .apply(&client_pod(&format!("get-{i}"), &format!("node-{i}"), &ips));
    }
    for i in 0..3 {
        let name = format!("get-{i}");
        let phase = eventually(90, &format!("{name} finished"), || {
            let p = pod_field(&c, &name, "/status/phase");
            matches!(p.as_str(), "Succeeded" | "Failed").then_some(p)
        });
        let logs = common::stdout(&c.kubectl(&["logs", &name]));
        assert_eq!(phase, "Succeeded", "{name}: {logs}\n{}", c.logs());
        for (j, ip) in ips.iter().enumerate() {
            assert!(
                logs.contains(&format!("web-{j} {ip}")),
                "{name} did not reach web-{j}: {logs}"
            );
        }
    }

    // Hosts reach the pods of every host (their own and others').
    for h in &c.hosts {
        for (j, ip) in ips.iter().enumerate() {
            let body = eventually(20, &format!("{} -> web-{j}", h.ip), || {
                h.curl(&format!("http://{ip}:8080/"))
            });
            assert_eq!(body.trim(), format!("web-{j} {ip}"));
        }
    }

    // UDP, pod to pod, in both directions between every pair of hosts.
    let uids: Vec<String> = (0..3)
        .map(|i| pod_field(&c, &format!("web-{i}"), "/metadata/uid"))
        .collect();
    let netns: Vec<_> = (0..3).map(|i| pod_netns(&c.agents[i], &uids[i])).collect();
    let _servers: Vec<UdpEcho> = (0..3).map(|i| UdpEcho::start(&netns[i], &ips[i])).collect();
    for (i, from) in netns.iter().enumerate() {
        for (j, to) in ips.iter().enumerate() {
            if i == j {
                continue;
            }
            let got = udp_ask(from, to, &format!("from-{i}"));
            assert_eq!(
                got.as_deref(),
                Some(format!("echo from-{i}").as_str()),
                "UDP web-{i} -> web-{j}"
            );
        }
    }

    // Egress: a pod reaching an address outside the cluster CIDR (host 0's own
    // address) arrives from its node's address (masquerade).
    let seen_by = |pod_host: usize| {
        let watcher = python_in(
            &c.hosts[0].netns_path(),
            &format!(
                "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('{}',9998))\ns.listen(1)\nc,a=s.accept()\nprint(a[0])\n",
                c.hosts[0].ip
            ),
        )
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let script = format!(
            "import socket,time\nfor _ in range(50):\n try:\n  socket.create_connection(('{}',9998),timeout=1).close(); break\n except OSError:\n  time.sleep(0.1)\n",
            c.hosts[0].ip
        );
        let status = python_in(&netns[pod_host], &script).status().unwrap();
        assert!(status.success());
        let out = watcher.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        seen_by(1),
        c.hosts[1].ip,
        "traffic from a pod to outside the cluster CIDR is masqueraded"
    );

    // A node's pods keep their IPs (and keep running) when its agent restarts.
    let before = c.master.pod_json("web-1").unwrap();
    c.agents[1].kill();
    c.agents[1].spawn();
    c.wait_nodes_ready();
    // The restarted agent's own view (:10255/pods) has the pod with its IP.
    let h1 = &c.hosts[1];
    let ip1 = eventually(30, "the restarted agent reports web-1", || {
        let body = h1.curl(&format!("http://{}:10255/pods", h1.ip))?;
        let pods: serde_json::Value = serde_json::from_str(&body).ok()?;
        pods["items"]
            .as_array()?
            .iter()
            .find(|p| p["metadata"]["name"] == "web-1")?["status"]["podIP"]
            .as_str()
            .map(String::from)
    });
    assert_eq!(ip1, ips[1]);
    let after = c.master.pod_json("web-1").unwrap();
    assert_eq!(after["status"]["podIP"], before["status"]["podIP"]);
    assert_eq!(
        after["status"]["containerStatuses"][0]["containerID"],
        before["status"]["containerStatuses"][0]["containerID"]
    );
    let body = eventually(20, "web-1 still answers", || {
        c.hosts[0].curl(&format!("http://{}:8080/", ips[1]))
    });
    assert_eq!(body.trim(), format!("web-1 {}", ips[1]));
}

/// Every link on the bridge `bosun0` of `host`, and every bosun route.
fn leftovers(host: &TestHost) -> (Vec<String>, Vec<String>) {
    let text = |args: &[&str]| {
        let out = host.command("ip").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let ports = text(&["-o", "link", "show", "master", "bosun0"]);
    let routes = text(&["route", "show", "proto", "176"]);
    (ports, routes)
}

#[test]
fn create_delete_cycles_leave_nothing_behind_and_reuse_addresses() {
    if !can_run_pods("the pod network cycle test") {
        return;
    }
    // A /26 per node (61 pod addresses): 200 pods must reuse freed ones.
    let mut c = Cluster::with_master_args(3, &["--node-cidr-mask-size", "26"]);
    for a in &c.agents {
        a.import_busybox(IMAGE);
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    const ROUND: usize = 25;
    for round in 0..(200 / ROUND) {
        let mut manifest = String::new();
        for k in 0..ROUND {
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: c{round}-{k}, labels: {{cycle: x}}}}\nspec:\n  nodeName: node-1\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: s, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, '3600']}}\n"
            ));
        }
        c.master.apply(&manifest);
        let ips = eventually(120, &format!("round {round} running"), || {
            let out = c.kubectl(&[
                "get",
                "pods",
                "-l",
                "cycle=x",
                "-o",
                "jsonpath={range .items[*]}{.status.phase} {.status.podIP}{\"\\n\"}{end}",
            ]);
            let text = common::stdout(&out);
            let lines: Vec<&str> = text.lines().collect();
            (lines.len() == ROUND && lines.iter().all(|l| l.starts_with("Running ")))
                .then(|| lines.iter().map(|l| l[8..].to_string()).collect::<Vec<_>>())
        });
        let distinct: std::collections::HashSet<&String> = ips.iter().collect();
        assert_eq!(distinct.len(), ROUND, "no address twice at once: {ips:?}");
        for ip in ips {
            *seen.entry(ip).or_default() += 1;
        }
        common::ok(c.kubectl(&["delete", "pods", "-l", "cycle=x", "--wait=true"]));
    }
    assert!(
        seen.values().any(|n| *n > 1),
        "freed addresses are reused: {seen:?}"
    );
    let host = c.host_of("node-1");
    let state = c.agents[1].data_dir().join("network");
    eventually(30, "no veth and no address claim left", || {
        let (ports, _) = leftovers(host);
        let claims = walk_files(&state);
        (ports.is_empty() && claims.is_empty()).then_some(())
    });
    // The routes to the two other nodes are the only bosun routes; a node
    // that goes takes its route with it.
    let (_, routes) = leftovers(host);
    assert_eq!(routes.len(), 2, "{routes:?}");
    let cidr_of = |node: &str| {
        common::ok(c.kubectl(&["get", "node", node, "-o", "jsonpath={.spec.podCIDR}"]))
    };
    let (cidr0, cidr2) = (cidr_of("node-0"), cidr_of("node-2"));
    assert!(routes
        .iter()
        .any(|r| r.starts_with(&format!("{cidr2} via {}", c.hosts[2].ip))));
    c.agents[2].kill();
    common::ok(c.kubectl(&["delete", "node", "node-2"]));
    let routes = eventually(30, "the route to node-2 removed", || {
        let (_, routes) = leftovers(c.host_of("node-1"));
        (routes.len() == 1).then_some(routes)
    });
    assert!(
        routes[0].starts_with(&format!("{cidr0} via {}", c.hosts[0].ip)),
        "{routes:?}"
    );

    // `bosun agent --cleanup` stops the pods and removes the network.
    c.master.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: last}}\nspec:\n  nodeName: node-1\n  containers:\n  - {{name: s, image: {IMAGE}, imagePullPolicy: Never, command: [sleep, '3600']}}\n"
    ));
    running_ip(&c, "last");
    c.agents[1].kill();
    let out = c.agents[1].run_cleanup();
    assert!(out.status.success(), "{}", common::stderr(&out));
    let host = c.host_of("node-1");
    let (ports, routes) = leftovers(host);
    assert!(
        ports.is_empty() && routes.is_empty(),
        "{ports:?} {routes:?}"
    );
    let bridge = host
        .command("ip")
        .args(["link", "show", "bosun0"])
        .output()
        .unwrap();
    assert!(!bridge.status.success(), "the bridge is gone");
    let table = host
        .command("nft")
        .args(["list", "table", "ip", "bosun"])
        .output()
        .unwrap();
    assert!(!table.status.success(), "the nftables table is gone");
    assert!(walk_files(&state).is_empty());
    let pods = std::fs::read_dir(c.agents[1].data_dir().join("pods")).map_or(0, |d| d.count());
    assert_eq!(pods, 0, "no pod left on disk");
    assert!(
        c.agents[1].mounts().is_empty(),
        "{:?}",
        c.agents[1].mounts()
    );
}

/// Files under `dir` that name an address claim (a file whose name parses as
/// an IPv4 address).
fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
            {
                out.push(p);
            }
        }
    }
    out
}
