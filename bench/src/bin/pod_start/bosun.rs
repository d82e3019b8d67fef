//! The bosun side: pods through a running `bosun master` to one `bosun agent`
//! (both started by `bench/pod-start` inside the benchmark's host network
//! namespace), timed by the agent itself.
//!
//! The agent logs `seen_to_running_ms=<ms>` when a pod it first saw is reported
//! Running and `teardown_ms=<ms>` when a deleted pod's containers and sandbox are
//! gone; this module creates and deletes the pods (one after another, then as a
//! burst), follows them with one watch, reads the agent's log for those figures
//! and reads the agent's RSS at 0 and at 2×N running pods. Pods have
//! `terminationGracePeriodSeconds: 0`, so a delete kills at once, like the
//! baselines' `delete -f`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use api::client::{Client, Watch};
use bosun_bench::rss_mb;
use serde_json::{json, Value};

use crate::stopped;

pub struct Options {
    pub kubeconfig: PathBuf,
    pub agent_pid: u32,
    pub agent_log: PathBuf,
    pub node: String,
    pub image: String,
    pub pods: usize,
    pub timeout: Duration,
}

/// What the bosun run measured; times in ms.
#[derive(Default, Debug)]
pub struct Figures {
    /// Agent-side seen→Running of the pods created one after another.
    pub seq_setup: Vec<f64>,
    pub seq_teardown: Vec<f64>,
    pub burst_setup: Vec<f64>,
    pub burst_teardown: Vec<f64>,
    /// Client-side create request → Running in the watch, one after another.
    pub seq_client: Vec<f64>,
    /// Creating the burst until all are Running, and deleting it until all are gone.
    pub burst_up_wall: f64,
    pub burst_down_wall: f64,
    pub rss_0: f64,
    pub rss_full: f64,
    pub threads_0: u32,
    pub threads_full: u32,
    pub rss_after: f64,
    /// At full load once the agent has settled (its idle blocking threads,
    /// kept 10 s, are gone).
    pub rss_settled: f64,
    pub threads_settled: u32,
    pub full: usize,
}

/// One agent log line's timing: `pod=<uid>` and `<field>=<ms>`.
pub fn parse_timing(line: &str, field: &str) -> Option<(String, f64)> {
    let line = strip_ansi(line);
    let mut uid = None;
    let mut ms = None;
    for word in line.split_whitespace() {
        if let Some(v) = word.strip_prefix("pod=") {
            uid = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = word
            .strip_prefix(field)
            .and_then(|rest| rest.strip_prefix('='))
        {
            ms = v.parse::<f64>().ok();
        }
    }
    Some((uid?, ms?))
}

/// `text` without ANSI colour sequences (`ESC [ … letter`), which the tracing
/// formatter may write even to a file.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// The agent's timings so far: (uid → seen_to_running_ms, uid → teardown_ms).
fn read_log(
    path: &std::path::Path,
) -> anyhow::Result<(HashMap<String, f64>, HashMap<String, f64>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the agent log {}", path.display()))?;
    let mut up = HashMap::new();
    let mut down = HashMap::new();
    for line in text.lines() {
        if let Some((uid, ms)) = parse_timing(line, "seen_to_running_ms") {
            up.insert(uid, ms);
        }
        if let Some((uid, ms)) = parse_timing(line, "teardown_ms") {
            down.insert(uid, ms);
        }
    }
    Ok((up, down))
}

fn pod(name: &str, node: &str, image: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{
                "name": "sleep", "image": image, "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    })
}

#[derive(Default)]
struct Seen {
    uid: String,
    created: Option<Instant>,
    running: Option<Instant>,
    deleted: bool,
}

/// The pods in the watch, by name.
struct Tracker {
    watch: Watch,
    pods: HashMap<String, Seen>,
}

impl Tracker {
    /// Reads events until `done` holds, or fails at `deadline`.
    async fn until(
        &mut self,
        deadline: Instant,
        what: &str,
        done: impl Fn(&HashMap<String, Seen>) -> bool,
    ) -> anyhow::Result<()> {
        while !done(&self.pods) {
            if stopped() {
                bail!("interrupted");
            }
            let ev = tokio::select! {
                ev = self.watch.next() => ev,
                _ = tokio::time::sleep_until(deadline.into()) => bail!("timed out waiting for {what}"),
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let ev = ev
                .context("the watch ended")?
                .context("reading the watch")?;
            let Some(name) = ev.object.pointer("/metadata/name").and_then(Value::as_str) else {
                continue;
            };
            let now = Instant::now();
            let s = self.pods.entry(name.to_string()).or_default();
            if let Some(uid) = ev.object.pointer("/metadata/uid").and_then(Value::as_str) {
                s.uid = uid.to_string();
            }
            if ev.type_ == "DELETED" {
                s.deleted = true;
            } else if s.running.is_none()
                && ev.object.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            {
                s.running = Some(now);
            }
        }
        Ok(())
    }
}

/// Waits until the agent has logged `field` for every uid of `uids`.
async fn wait_log(
    opts: &Options,
    uids: &[String],
    teardown: bool,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let (up, down) = read_log(&opts.agent_log)?;
        let have = if teardown { &down } else { &up };
        let missing = uids.iter().filter(|u| !have.contains_key(*u)).count();
        if missing == 0 {
            return Ok(());
        }
        if stopped() {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!(
                "the agent logged no {} for {missing} pods",
                if teardown {
                    "teardown_ms"
                } else {
                    "seen_to_running_ms"
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_node(client: &Client, node: &str, deadline: Instant) -> anyhow::Result<()> {
    loop {
        if let Ok(n) = client.get(&format!("/api/v1/nodes/{node}")).await {
            let ready = n
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            if ready {
                return Ok(());
            }
        }
        if stopped() {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("node {node} is not Ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The number of threads of `pid`.
fn threads(pid: u32) -> anyhow::Result<u32> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no Threads in {path}"))
}

const PODS: &str = "/api/v1/namespaces/default/pods";

/// Runs the bosun part; on error or interruption, deletes the pods it made.
pub async fn run(opts: &Options) -> anyhow::Result<Figures> {
    let client = Client::from_kubeconfig(&opts.kubeconfig).context("reading the kubeconfig")?;
    let result = measure(opts, &client).await;
    if result.is_err() {
        // Leave no pods behind for the agent (the script stops it next).
        if let Ok(list) = client
            .list(&format!("{PODS}?labelSelector=app%3Dbench"))
            .await
        {
            for p in list["items"].as_array().into_iter().flatten() {
                if let Some(name) = p.pointer("/metadata/name").and_then(Value::as_str) {
                    let _ = client.delete(&format!("{PODS}/{name}")).await;
                }
            }
        }
    }
    result
}

async fn measure(opts: &Options, client: &Client) -> anyhow::Result<Figures> {
    let n = opts.pods;
    let deadline = Instant::now() + opts.timeout;
    wait_node(client, &opts.node, deadline).await?;
    let mut f = Figures {
        rss_0: rss_mb(opts.agent_pid)?,
        threads_0: threads(opts.agent_pid)?,
        ..Figures::default()
    };
    let list = client.list(PODS).await.context("listing pods")?;
    let rv = list["metadata"]["resourceVersion"].as_str().unwrap_or("0");
    let watch = client
        .watch(&format!("{PODS}?watch=1&resourceVersion={rv}"))
        .await
        .context("watching pods")?;
    let mut t = Tracker {
        watch,
        pods: HashMap::new(),
    };

    // One after another: create, wait until Running.
    let seq: Vec<String> = (0..n).map(|i| format!("bench-seq-{i}")).collect();
    for name in &seq {
        let created = Instant::now();
        let made = client
            .create(PODS, &pod(name, &opts.node, &opts.image))
            .await
            .with_context(|| format!("creating {name}"))?;
        let s = t.pods.entry(name.clone()).or_default();
        s.created = Some(created);
        s.uid = made["metadata"]["uid"].as_str().unwrap_or("").to_string();
        t.until(deadline, &format!("{name} Running"), |p| {
            p.get(name).is_some_and(|s| s.running.is_some())
        })
        .await?;
    }
    // The burst: all at once on top of them.
    let burst: Vec<String> = (0..n).map(|i| format!("bench-burst-{i}")).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for name in &burst {
        let (client, body) = (client.clone(), pod(name, &opts.node, &opts.image));
        tasks.push(tokio::spawn(
            async move { client.create(PODS, &body).await },
        ));
    }
    for (task, name) in tasks.into_iter().zip(&burst) {
        let made = task.await?.with_context(|| format!("creating {name}"))?;
        let s = t.pods.entry(name.clone()).or_default();
        s.uid = made["metadata"]["uid"].as_str().unwrap_or("").to_string();
    }
    t.until(deadline, "the burst Running", |p| {
        burst
            .iter()
            .all(|b| p.get(b).is_some_and(|s| s.running.is_some()))
    })
    .await?;
    f.burst_up_wall = started.elapsed().as_secs_f64() * 1000.0;
    f.full = 2 * n;
    f.rss_full = rss_mb(opts.agent_pid)?;
    f.threads_full = threads(opts.agent_pid)?;
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    f.rss_settled = rss_mb(opts.agent_pid)?;
    f.threads_settled = threads(opts.agent_pid)?;
    let uids = |names: &[String], t: &Tracker| -> Vec<String> {
        names
            .iter()
            .filter_map(|n| t.pods.get(n).map(|s| s.uid.clone()))
            .collect()
    };
    let seq_uids = uids(&seq, &t);
    let burst_uids = uids(&burst, &t);
    wait_log(opts, &seq_uids, false, deadline).await?;
    wait_log(opts, &burst_uids, false, deadline).await?;

    // Deleting one after another: delete, wait until the agent has torn it down.
    for (name, uid) in seq.iter().zip(&seq_uids) {
        client
            .delete(&format!("{PODS}/{name}"))
            .await
            .with_context(|| format!("deleting {name}"))?;
        wait_log(opts, std::slice::from_ref(uid), true, deadline).await?;
    }
    // Deleting the burst all at once.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for name in &burst {
        let client = client.clone();
        let path = format!("{PODS}/{name}");
        tasks.push(tokio::spawn(async move { client.delete(&path).await }));
    }
    for (task, name) in tasks.into_iter().zip(&burst) {
        task.await?.with_context(|| format!("deleting {name}"))?;
    }
    wait_log(opts, &burst_uids, true, deadline).await?;
    f.burst_down_wall = started.elapsed().as_secs_f64() * 1000.0;
    t.until(deadline, "all pods gone", |p| {
        seq.iter()
            .chain(&burst)
            .all(|n| p.get(n).is_some_and(|s| s.deleted))
    })
    .await?;
    f.rss_after = rss_mb(opts.agent_pid)?;

    let (up, down) = read_log(&opts.agent_log)?;
    let pick = |m: &HashMap<String, f64>, uids: &[String]| -> Vec<f64> {
        uids.iter().filter_map(|u| m.get(u).copied()).collect()
    };
    f.seq_setup = pick(&up, &seq_uids);
    f.burst_setup = pick(&up, &burst_uids);
    f.seq_teardown = pick(&down, &seq_uids);
    f.burst_teardown = pick(&down, &burst_uids);
    f.seq_client = seq
        .iter()
        .filter_map(|n| {
            let s = t.pods.get(n)?;
            Some(s.running?.duration_since(s.created?).as_secs_f64() * 1000.0)
        })
        .collect();
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_read_from_plain_and_coloured_lines() {
        let plain = "2026-11-26T18:40:00.123456Z  INFO agent::kubelet::worker: pod running pod=0b1c-22 seen_to_running_ms=12.75";
        assert_eq!(
            parse_timing(plain, "seen_to_running_ms"),
            Some(("0b1c-22".to_string(), 12.75))
        );
        assert_eq!(parse_timing(plain, "teardown_ms"), None);
        let coloured = "\u{1b}[2m2026-11-26T18:40:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2magent::kubelet::worker\u{1b}[0m\u{1b}[2m:\u{1b}[0m pod torn down \u{1b}[3mpod\u{1b}[0m\u{1b}[2m=\u{1b}[0mabc \u{1b}[3mteardown_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m3.5";
        assert_eq!(
            parse_timing(coloured, "teardown_ms"),
            Some(("abc".to_string(), 3.5))
        );
    }

    #[test]
    fn a_line_without_both_fields_is_no_timing() {
        assert_eq!(parse_timing("pod=abc started", "teardown_ms"), None);
        assert_eq!(parse_timing("teardown_ms=3", "teardown_ms"), None);
        assert_eq!(parse_timing("pod=a teardown_ms=x", "teardown_ms"), None);
        // A field whose name merely starts the same is another field.
        assert_eq!(
            parse_timing("pod=a teardown_ms_total=4", "teardown_ms"),
            None
        );
    }

    #[test]
    fn bench_pods_die_at_once_and_use_the_local_image() {
        let p = pod("bench-seq-0", "n1", "bench/busybox:1");
        assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0);
        assert_eq!(p["spec"]["nodeName"], "n1");
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Never");
    }
}
