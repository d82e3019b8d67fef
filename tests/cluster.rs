//! Cluster-scale behaviour with simulated nodes (`bosun hollow`), driven by kubectl
//! as a user would: Deployments spread over nodes, scale, roll and roll back;
//! unschedulable pods say why; lost nodes' pods come back elsewhere; deleting a
//! namespace or a Deployment removes everything under it. No root needed.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// These tests each run a master and many hollow nodes: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn deployment(name: &str, replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: app
        image: {image}
        resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}
"
    )
}

fn jsonpath(m: &Master, args: &[&str], path: &str) -> String {
    let arg = format!("jsonpath={path}");
    let mut a: Vec<&str> = vec!["get"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["-o", &arg]);
    ok(m.kubectl(&a))
}

/// Pods of `app` per node (Running ones only).
fn pods_per_node(m: &Master, app: &str) -> BTreeMap<String, usize> {
    let out = jsonpath(
        m,
        &["pods", "-l", &format!("app={app}")],
        "{range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}",
    );
    let mut per = BTreeMap::new();
    for line in out.lines() {
        if let Some((node, "Running")) = line.split_once(' ') {
            *per.entry(node.to_string()).or_default() += 1;
        }
    }
    per
}

fn rollout_status(m: &Master, name: &str) -> String {
    ok(m.kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--timeout=180s",
    ]))
}

fn running(m: &Master, app: &str) -> usize {
    pods_per_node(m, app).values().sum()
}

fn require_kubectl() -> bool {
    require_tool(&kubectl_bin(), "kubectl drives the cluster")
}

#[test]
fn deployments_spread_scale_roll_and_undo_over_hollow_nodes() {
    let _g = serial();
    if !require_kubectl() {
        return;
    }
    let m = Master::start();
    let _nodes = Hollow::start(&m, 50, "h");
    eventually(120, "50 Ready nodes", || {
        let out = jsonpath(
            &m,
            &["nodes"],
            "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        );
        (out.lines().filter(|l| *l == "True").count() == 50).then_some(())
    });

    // 300 replicas become available and spread evenly.
    assert!(m
        .apply(&deployment("web", 300, "busybox:1.36"))
        .contains("deployment.apps/web created"));
    let status = rollout_status(&m, "web");
    assert!(
        status.contains("deployment \"web\" successfully rolled out"),
        "{status}"
    );
    let per = pods_per_node(&m, "web");
    assert_eq!(per.values().sum::<usize>(), 300);
    let (min, max) = (
        per.values().min().copied().unwrap_or(0),
        per.values().max().copied().unwrap_or(0),
    );
    assert_eq!(per.len(), 50, "pods on {} of 50 nodes", per.len());
    assert!(max - min <= 2, "uneven spread: min {min} max {max}");

    // Scale up and down.
    ok(m.kubectl(&["scale", "deployment/web", "--replicas=400"]));
    rollout_status(&m, "web");
    eventually(120, "400 running pods", || {
        (running(&m, "web") == 400).then_some(())
    });
    ok(m.kubectl(&["scale", "deployment/web", "--replicas=100"]));
    eventually(120, "100 pods", || {
        let names = ok(m.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"]));
        (names.lines().count() == 100).then_some(())
    });
    rollout_status(&m, "web");

    // A rolling update never goes below replicas - maxUnavailable available pods.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let min_available = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(i64::MAX));
    let samples = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let watcher = {
        let (stop, min_available, samples) = (stop.clone(), min_available.clone(), samples.clone());
        let kubeconfig = m.kubeconfig();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = api::client::Client::from_kubeconfig(&kubeconfig).unwrap();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(d) = client
                        .get("/apis/apps/v1/namespaces/default/deployments/web")
                        .await
                    {
                        let avail = d
                            .pointer("/status/availableReplicas")
                            .and_then(|v| v.as_i64())
                            .unwrap_or(0);
                        min_available.fetch_min(avail, std::sync::atomic::Ordering::SeqCst);
                        samples.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        })
    };
    ok(m.kubectl(&["set", "image", "deployment/web", "app=busybox:1.37"]));
    let status = rollout_status(&m, "web");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.join();
    assert!(status.contains("successfully rolled out"), "{status}");
    let min = min_available.load(std::sync::atomic::Ordering::SeqCst);
    let samples = samples.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("rollout: {samples} availability samples, minimum {min} (floor 75)");
    assert!(
        samples >= 3,
        "the availability watcher saw only {samples} samples"
    );
    assert!(
        min >= 75,
        "availability fell to {min} during the rollout (floor 75)"
    );
    assert_eq!(
        jsonpath(
            &m,
            &["deployment", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "busybox:1.37"
    );
    let images = jsonpath(
        &m,
        &["pods", "-l", "app=web"],
        "{.items[*].spec.containers[0].image}",
    );
    assert!(images.split(' ').all(|i| i == "busybox:1.37"), "{images}");

    // Undo returns to the previous template with a new revision.
    let undo = ok(m.kubectl(&["rollout", "undo", "deployment/web"]));
    assert!(undo.contains("deployment.apps/web rolled back"), "{undo}");
    rollout_status(&m, "web");
    assert_eq!(
        jsonpath(
            &m,
            &["deployment", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "busybox:1.36"
    );
    assert_eq!(
        jsonpath(
            &m,
            &["deployment", "web"],
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "3"
    );
    let history = ok(m.kubectl(&["rollout", "history", "deployment/web"]));
    assert!(history.contains("2") && history.contains("3"), "{history}");

    // Cascading delete removes the ReplicaSets and pods.
    ok(m.kubectl(&["delete", "deployment", "web"]));
    eventually(120, "no replicasets or pods left", || {
        let rs = ok(m.kubectl(&["get", "rs", "-o", "name"]));
        let pods = ok(m.kubectl(&["get", "pods", "-o", "name"]));
        (rs.trim().is_empty() && pods.trim().is_empty()).then_some(())
    });
}

#[test]
fn unschedulable_pod_stays_pending_with_the_reason() {
    let _g = serial();
    if !require_kubectl() {
        return;
    }
    let m = Master::start();
    let _nodes = Hollow::start(&m, 3, "small");
    eventually(60, "3 nodes", || {
        (ok(m.kubectl(&["get", "nodes", "-o", "name"]))
            .lines()
            .count()
            == 3)
            .then_some(())
    });
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources: {requests: {cpu: \"1000\"}}\n";
    m.apply(pod);
    let described = eventually(60, "a FailedScheduling event", || {
        let d = ok(m.kubectl(&["describe", "pod", "huge"]));
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(described.contains("Insufficient cpu"), "{described}");
    assert_eq!(jsonpath(&m, &["pod", "huge"], "{.status.phase}"), "Pending");
    assert_eq!(
        jsonpath(
            &m,
            &["pod", "huge"],
            "{.status.conditions[?(@.type==\"PodScheduled\")].reason}"
        ),
        "Unschedulable"
    );
}

#[test]
fn pods_of_lost_nodes_run_again_elsewhere() {
    let _g = serial();
    if !require_kubectl() {
        return;
    }
    let m = Master::start_with(&[
        "--node-monitor-grace-period",
        "6",
        "--default-unreachable-toleration-seconds",
        "2",
    ]);
    let mut doomed = Hollow::start(&m, 10, "doomed");
    let _kept = Hollow::start(&m, 10, "kept");
    eventually(60, "20 nodes", || {
        (ok(m.kubectl(&["get", "nodes", "-o", "name"]))
            .lines()
            .count()
            == 20)
            .then_some(())
    });
    m.apply(&deployment("svc", 40, "busybox:1.36"));
    rollout_status(&m, "svc");
    let before = pods_per_node(&m, "svc");
    assert!(before.keys().any(|n| n.starts_with("doomed")), "{before:?}");

    doomed.kill();
    let started = Instant::now();
    eventually(60, "the doomed nodes to become NotReady", || {
        let out = jsonpath(&m, &["nodes"], "{range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}");
        out.lines()
            .filter(|l| l.starts_with("doomed"))
            .all(|l| l.ends_with("Unknown"))
            .then_some(())
    });
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "NotReady before the grace period"
    );
    eventually(120, "all 40 pods running on the kept nodes", || {
        let per = pods_per_node(&m, "svc");
        let on_kept: usize = per
            .iter()
            .filter(|(n, _)| n.starts_with("kept"))
            .map(|(_, c)| c)
            .sum();
        (on_kept == 40 && per.keys().all(|n| n.starts_with("kept"))).then_some(())
    });
    let taints = jsonpath(&m, &["node", "doomed-0000"], "{.spec.taints[*].key}");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
}

#[test]
fn deleting_a_namespace_removes_what_is_in_it() {
    let _g = serial();
    if !require_kubectl() {
        return;
    }
    let m = Master::start();
    let _nodes = Hollow::start(&m, 3, "ns");
    ok(m.kubectl_with(
        &kubectl_bin(),
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: team}\n"),
    ));
    ok(m.kubectl_with(
        &kubectl_bin(),
        &["apply", "-n", "team", "-f", "-"],
        Some(&deployment("api", 6, "busybox:1.36")),
    ));
    ok(m.kubectl_with(
        &kubectl_bin(),
        &["apply", "-n", "team", "-f", "-"],
        Some("apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: api}\n  ports: [{port: 80}]\n"),
    ));
    ok(m.kubectl(&[
        "rollout",
        "status",
        "-n",
        "team",
        "deployment/api",
        "--timeout=120s",
    ]));
    eventually(60, "endpoints with 6 addresses", || {
        let ips = jsonpath(
            &m,
            &["endpoints", "api", "-n", "team"],
            "{.subsets[*].addresses[*].ip}",
        );
        (ips.split_whitespace().count() == 6).then_some(())
    });
    assert_eq!(
        ok(m.kubectl(&["delete", "namespace", "team"])).trim(),
        "namespace \"team\" deleted"
    );
    let left = ok(m.kubectl(&[
        "get",
        "pods,replicasets,deployments,services,endpoints,configmaps",
        "-n",
        "team",
        "-o",
        "name",
    ]));
    assert!(left.trim().is_empty(), "{left}");
    let gone = m.kubectl(&["get", "namespace", "team"]);
    assert!(!gone.status.success());
}
