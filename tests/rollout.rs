//! `kubectl rollout` against `bosun master` and its Deployment and ReplicaSet
//! controllers. There are no nodes: the test plays the kubelet by marking pods
//! Running and Ready through the status subresource, and kubectl 1.32's own
//! `rollout status`, `history` and `undo` must print and end as against a real
//! cluster.

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: app, image: "app:1"}
"#;

/// Marks every pending pod of `app=web` Running and Ready, as a kubelet would.
fn mark_pods_ready(m: &Master) {
    let listing = ok(m.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}",
    ]));
    for line in listing.lines() {
        let Some((name, phase)) = line.split_once(' ') else {
            continue;
        };
        if phase == "Running" {
            continue;
        }
        let status =
            r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
        // A pod may be gone by now (scaled down): that is fine.
        let _ = m.kubectl(&[
            "patch",
            "pod",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            status,
        ]);
    }
}

/// Runs `kubectl rollout status deploy/web` while playing the kubelet once it
/// printed its first line; returns its stdout lines and whether it succeeded.
fn rollout_status(m: &Master) -> (Vec<String>, bool) {
    let mut child = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(m.kubeconfig())
        .arg("--cache-dir")
        .arg(m.dir.path().join("kube-cache"))
        .args(["rollout", "status", "deploy/web", "--timeout=20s"])
        .env("HOME", m.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl rollout status");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => lines.push(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if !lines.is_empty() {
            mark_pods_ready(m);
        }
        assert!(Instant::now() < deadline, "rollout status hangs: {lines:?}");
    }
    let status = child.wait().expect("kubectl exit");
    (lines, status.success())
}

#[track_caller]
fn assert_rolled_out(lines: &[String], success: bool) {
    assert!(success, "rollout status failed: {lines:?}");
    let (last, waiting) = lines.split_last().expect("some output");
    assert_eq!(last, "deployment \"web\" successfully rolled out");
    for l in waiting {
        assert!(
            l.starts_with("Waiting for deployment \"web\" rollout to finish: ")
                || l == "Waiting for deployment spec update to be observed...",
            "unexpected line {l:?}"
        );
    }
}

fn revision(m: &Master) -> String {
    ok(m.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        r"jsonpath={.metadata.annotations.deployment\.kubernetes\.io/revision}",
    ]))
}

#[test]
fn kubectl_rollout_status_history_and_undo() {
    if !require_tool(&kubectl_bin(), "kubectl drives the rollout") {
        return;
    }
    let m = Master::start();
    let file = m.dir.path().join("web.yaml");
    std::fs::write(&file, DEPLOY).expect("manifest");
    ok(m.kubectl(&["apply", "-f", file.to_str().expect("path")]));
    let (lines, success) = rollout_status(&m);
    assert_rolled_out(&lines, success);
    assert!(
        lines.len() > 1,
        "kubectl saw the rollout finished before any pod was ready: {lines:?}"
    );
    assert_eq!(revision(&m), "1");

    let out = ok(m.kubectl(&["set", "image", "deploy/web", "app=app:2"]));
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    let (lines, success) = rollout_status(&m);
    assert_rolled_out(&lines, success);
    assert_eq!(revision(&m), "2");
    let history = ok(m.kubectl(&["rollout", "history", "deploy/web"]));
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let out = ok(m.kubectl(&["rollout", "undo", "deploy/web"]));
    assert_eq!(out.trim(), "deployment.apps/web rolled back");
    let (lines, success) = rollout_status(&m);
    assert_rolled_out(&lines, success);
    assert_eq!(revision(&m), "3");
    let image = ok(m.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]));
    assert_eq!(image, "app:1");
    // The undo went back to the first ReplicaSet, not a third one.
    let rss = ok(m.kubectl(&["get", "rs", "-l", "app=web", "-o", "name"]));
    assert_eq!(rss.lines().count(), 2, "{rss}");
    let pods = ok(m.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]));
    assert_eq!(
        pods.split_whitespace().collect::<Vec<_>>(),
        ["app:1", "app:1"]
    );
}
