//! `bench/scheduler`: how fast a running `bosun master` (scheduler and controllers)
//! turns Deployments into Running pods on 1,000 hollow nodes.
//!
//! Given the master's kubeconfig and PID (from `bench/scheduler`, which also starts
//! the hollow nodes), it waits for the nodes to be Ready, opens one watch on all
//! pods, creates the Deployments, and records per pod when it was first seen
//! (created by the ReplicaSet controller), bound (spec.nodeName set) and Running
//! (reported by its hollow node). Prints pods/s scheduled, create→Running p50/p99,
//! and the master's RSS and CPU. Prints `name: value` lines.

use anyhow::{bail, Context as _};
use api::client::Client;
use bosun_bench::{cpu_seconds, percentile, rss_mb};
use clap::Parser;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Benchmark bosun's scheduler and controllers on hollow nodes")]
struct Args {
    /// The master's admin kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The master's PID, for its RSS and CPU.
    #[arg(long)]
    pid: u32,
    /// Hollow nodes that must be Ready before the run.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Pods in all, spread over the Deployments.
    #[arg(long, default_value_t = 30_000)]
    pods: usize,
    #[arg(long, default_value_t = 3)]
    deployments: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(Default, Clone, Copy)]
struct Seen {
    added: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(&args))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let client = Client::from_kubeconfig(&args.kubeconfig).context("reading the kubeconfig")?;
    let pid = args.pid.to_string();
    // Nodes first.
    let started = Instant::now();
    loop {
        let nodes = client
            .list("/api/v1/nodes")
            .await
            .context("listing nodes")?;
        let ready = nodes["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|n| {
                        n.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .is_some_and(|c| {
                                c.iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                            && n.pointer("/spec/podCIDR").is_some()
                    })
                    .count()
            })
            .unwrap_or(0);
        if ready >= args.nodes {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.timeout) {
            bail!("only {ready} of {} nodes Ready with a podCIDR", args.nodes);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("nodes: {}", args.nodes);
    println!(
        "nodes ready after s: {:.1}",
        started.elapsed().as_secs_f64()
    );

    let list = client.list("/api/v1/pods").await?;
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();
    let mut watch = client
        .watch(&format!(
            "/api/v1/pods?watch=1&resourceVersion={rv}&allowWatchBookmarks=false"
        ))
        .await
        .context("watching pods")?;

    let cpu_before = cpu_seconds(&pid)?;
    let per = args.pods / args.deployments.max(1);
    let t0 = Instant::now();
    for i in 0..args.deployments {
        let name = format!("bench-{i}");
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": per,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{
                        "name": "app", "image": "registry.local/app:1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }]},
                },
            },
        });
        client
            .create("/apis/apps/v1/namespaces/default/deployments", &d)
            .await
            .with_context(|| format!("creating {name}"))?;
    }
    let total = per * args.deployments.max(1);
    println!("pods: {total}");

    let mut seen: HashMap<String, Seen> = HashMap::with_capacity(total);
    let mut running = 0usize;
    let deadline = t0 + Duration::from_secs(args.timeout);
    while running < total {
        let ev = tokio::select! {
            ev = watch.next() => ev,
            _ = tokio::time::sleep_until(deadline.into()) => bail!("timed out with {running} of {total} pods Running"),
        };
        let Some(ev) = ev else {
            bail!("the watch ended")
        };
        let ev = ev.context("reading the watch")?;
        let obj = &ev.object;
        let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        let now = Instant::now();
        let s = seen.entry(name.to_string()).or_default();
        if s.added.is_none() {
            s.added = Some(now);
        }
        if s.bound.is_none()
            && obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        {
            s.bound = Some(now);
        }
        if s.running.is_none()
            && obj.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        {
            s.running = Some(now);
            running += 1;
        }
    }
    let elapsed = t0.elapsed();
    let cpu = cpu_seconds(&pid)? - cpu_before;
    let first_added = seen.values().filter_map(|s| s.added).min().unwrap_or(t0);
    let last_bound = seen.values().filter_map(|s| s.bound).max().unwrap_or(t0);
    let bound = seen.values().filter(|s| s.bound.is_some()).count();
    let sched_secs = last_bound
        .duration_since(first_added)
        .as_secs_f64()
        .max(1e-9);
    let mut lat: Vec<Duration> = seen
        .values()
        .filter_map(|s| Some(s.running?.duration_since(s.added?)))
        .collect();
    lat.sort();
    println!("all running after s: {:.2}", elapsed.as_secs_f64());
    println!("pods scheduled: {bound}");
    println!("scheduled pods/s: {:.0}", bound as f64 / sched_secs);
    println!(
        "running pods/s: {:.0}",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "create->running p50 ms: {:.1}",
        percentile(&lat, 0.50).as_secs_f64() * 1000.0
    );
    println!(
        "create->running p99 ms: {:.1}",
        percentile(&lat, 0.99).as_secs_f64() * 1000.0
    );
    println!("master cpu s: {cpu:.1}");
    println!("master rss MB: {:.1}", rss_mb(args.pid)?);
    Ok(())
}
