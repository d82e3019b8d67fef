//! `bench/api`: how fast a running `bosun master` takes pod creates, lists and
//! fans out watch events, next to what SQLite itself costs at the same durability.
//!
//! Against the master (its kubeconfig and PID given by `bench/api`): open the
//! watchers, create the pods with concurrent clients (one HTTPS connection each),
//! wait until every watcher has seen every pod, read the master's RSS, time a
//! full LIST. Then, in the scratch directory, insert the same JSON bytes under
//! the same keys into a bare SQLite file (WAL, `synchronous=FULL`), once with one
//! transaction per row and once batched, the limit the master is measured against.
//! Prints `name: value` lines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use api::client::{Client, Method};
use bosun_bench::{cpu_seconds, percentile, rss_mb};
use bytes::Bytes;
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "Benchmark a running bosun master's API against raw SQLite")]
struct Args {
    /// The master's admin kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The master's PID, for its RSS.
    #[arg(long)]
    pid: u32,
    /// A directory for the raw SQLite baseline's database.
    #[arg(long)]
    scratch: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pods: usize,
    /// Concurrent creating clients, each with its own connection.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Watchers of the namespace's pods, each with its own connection.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Watch delay is measured on every n-th pod.
    #[arg(long, default_value_t = 20)]
    sample_every: usize,
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Rows per transaction in the batched SQLite baseline.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Longest time spent on the one-transaction-per-row baseline.
    #[arg(long, default_value_t = 60)]
    raw_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let (creates_per_s, rows) = rt.block_on(api_bench(&args))?;
    raw_sqlite_bench(&args, &rows, creates_per_s)
}

/// Whether a watch event line is an `ADDED`, and the `pod-NNNNN` name in it.
/// A watcher of the benchmark reads a million 3.6 KB events: parsing each as JSON
/// would cost the (shared) CPU more than the master spends sending them, so it
/// looks for the two substrings. Only `metadata.name` of the bench's pods starts
/// with `pod-`; the other names in the spec (`web`, `http`, `config`) do not.
fn event_name(line: &[u8]) -> Option<(bool, &str)> {
    let text = std::str::from_utf8(line).ok()?;
    let added = text.contains(r#""type":"ADDED""#);
    let start = text.find(r#""name":"pod-"#)? + r#""name":""#.len();
    let len = text[start..].find('"')?;
    Some((added, &text[start..start + len]))
}

/// What one watcher saw: arrival times of the sampled pods.
struct Seen {
    added: usize,
    arrivals: HashMap<usize, Instant>,
}

fn pod_name(i: usize) -> String {
    format!("pod-{i:05}")
}

fn pod_index(name: &str) -> Option<usize> {
    name.strip_prefix("pod-")?.parse().ok()
}

/// A small, realistic pod: one container with ports, env, resources, a probe and a
/// config volume; about 1 KB of JSON.
fn pod(namespace: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(i),
            "namespace": namespace,
            "labels": {"app": "web", "tier": "frontend", "shard": (i % 16).to_string(),
                       "pod-template-hash": "7c9d8f6b5d"},
            "annotations": {"bench.bosun.dev/owner": "team-web",
                            "bench.bosun.dev/build": "2026.11.26-1234abcd"}
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.example.com/team/web:1.25.3",
                "args": ["--listen=:8080", "--config=/etc/web/config.yaml"],
                "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "env": [{"name": "MODE", "value": "production"},
                        {"name": "LOG_LEVEL", "value": "info"},
                        {"name": "CACHE_SIZE", "value": "256"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                   "periodSeconds": 5, "failureThreshold": 3},
                "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10},
                "volumeMounts": [{"name": "config", "mountPath": "/etc/web", "readOnly": true}],
                "imagePullPolicy": "IfNotPresent"
            }],
            "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst"
        }
    })
}

fn client(kubeconfig: &Path) -> anyhow::Result<Client> {
    Client::from_kubeconfig(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))
}

/// Waits for `/readyz`, up to 30 s.
async fn wait_ready(c: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.request(Method::GET, "/readyz", None).await {
            Ok((status, _)) if status.is_success() => return Ok(()),
            _ if Instant::now() > deadline => bail!("the master is not ready after 30s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The API part; returns creates/s and the stored rows (key, JSON bytes as the
/// master answered them) for the SQLite baseline.
async fn api_bench(args: &Args) -> anyhow::Result<(f64, Vec<(String, Bytes)>)> {
    let admin = client(&args.kubeconfig)?;
    wait_ready(&admin).await?;
    let ns = &args.namespace;
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    match admin.create("/api/v1/namespaces", &namespace).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(409) => {}
        Err(e) => return Err(e).context("creating the namespace"),
    }
    let pods_path = format!("/api/v1/namespaces/{ns}/pods");
    let list = admin.list(&pods_path).await.context("listing pods")?;
    let start_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_string();

    // Watchers first, each on its own connection.
    let mut watchers = Vec::with_capacity(args.watchers);
    for _ in 0..args.watchers {
        let c = client(&args.kubeconfig)?;
        let mut watch = c
            .watch(&format!("{pods_path}?resourceVersion={start_rv}"))
            .await
            .context("opening a watch")?;
        let (pods, every) = (args.pods, args.sample_every);
        watchers.push(tokio::spawn(async move {
            let _keep = c;
            let mut seen = Seen {
                added: 0,
                arrivals: HashMap::new(),
            };
            while seen.added < pods {
                let line = match watch.next_raw().await {
                    Some(Ok(line)) => line,
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("watch broke")),
                    None => bail!("the watch ended after {} events", seen.added),
                };
                let now = Instant::now();
                let Some((added, name)) = event_name(&line) else {
                    bail!(
                        "a watch event without a pod name: {}",
                        String::from_utf8_lossy(&line)
                    );
                };
                if !added {
                    continue;
                }
                seen.added += 1;
                if let Some(i) = pod_index(name).filter(|i| i % every == 0) {
                    seen.arrivals.insert(i, now);
                }
            }
            Ok(seen)
        }));
    }

    // Creates.
    let next = Arc::new(AtomicUsize::new(0));
    let master_pid = args.pid.to_string();
    let cpu_before = (cpu_seconds(&master_pid)?, cpu_seconds("self")?);
    let started = Instant::now();
    let mut creators = Vec::with_capacity(args.clients);
    let mut body_bytes = 0;
    for _ in 0..args.clients {
        let c = client(&args.kubeconfig)?;
        let (next, ns, path) = (Arc::clone(&next), ns.clone(), pods_path.clone());
        let (pods, every) = (args.pods, args.sample_every);
        body_bytes = serde_json::to_vec(&pod(&ns, 0))?.len();
        creators.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut responses = Vec::new();
            let mut rows = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pods {
                    break;
                }
                let body = Bytes::from(serde_json::to_vec(&pod(&ns, i))?);
                let t0 = Instant::now();
                let (status, stored) = c
                    .request_bytes(Method::POST, &path, Some("application/json"), body)
                    .await?;
                let t1 = Instant::now();
                if status != 201 {
                    bail!(
                        "create {} answered {status}: {}",
                        pod_name(i),
                        String::from_utf8_lossy(&stored)
                    );
                }
                latencies.push(t1 - t0);
                if i % every == 0 {
                    responses.push((i, t1));
                }
                rows.push((format!("/core/pods/{ns}/{}", pod_name(i)), stored));
            }
            Ok::<_, anyhow::Error>((latencies, responses, rows))
        }));
    }
    let mut latencies = Vec::with_capacity(args.pods);
    let mut responses = HashMap::new();
    let mut rows = Vec::with_capacity(args.pods);
    for c in creators {
        let (l, r, s) = c.await??;
        latencies.extend(l);
        responses.extend(r);
        rows.extend(s);
    }
    let elapsed = started.elapsed();
    let master_cpu = cpu_seconds(&master_pid)? - cpu_before.0;
    let bench_cpu = cpu_seconds("self")? - cpu_before.1;
    let rss_after_creates = rss_mb(args.pid)?;
    latencies.sort();

    // Watch delivery.
    let mut delays = Vec::new();
    let mut delivered = 0;
    for w in watchers {
        let seen = tokio::time::timeout(Duration::from_secs(120), w)
            .await
            .context("watchers did not see every pod within 120s of the last create")???;
        delivered += seen.added;
        for (i, arrived) in seen.arrivals {
            if let Some(answered) = responses.get(&i) {
                // Signed: an event may reach a watcher before the creator has
                // read its response.
                let ms = if arrived >= *answered {
                    (arrived - *answered).as_secs_f64()
                } else {
                    -(*answered - arrived).as_secs_f64()
                };
                delays.push(ms * 1000.0);
            }
        }
    }
    delays.sort_by(f64::total_cmp);
    let rss_after_watch = rss_mb(args.pid)?;

    // Full LIST, median of three.
    let mut lists = Vec::new();
    let mut listed = 0;
    for _ in 0..3 {
        let t0 = Instant::now();
        let (status, body) = admin.request(Method::GET, &pods_path, None).await?;
        lists.push(t0.elapsed());
        if !status.is_success() {
            bail!("list answered {status}");
        }
        let v: Value = serde_json::from_slice(&body)?;
        listed = v["items"].as_array().map_or(0, Vec::len);
    }
    lists.sort();

    let stored_avg = rows.iter().map(|(_, b)| b.len()).sum::<usize>() / rows.len().max(1);
    println!("pods: {}", args.pods);
    println!("clients: {}", args.clients);
    println!("watchers: {}", args.watchers);
    println!("pod json bytes sent: {body_bytes}");
    println!("pod json bytes stored: {stored_avg}");
    println!("create seconds: {:.2}", elapsed.as_secs_f64());
    let creates_per_s = args.pods as f64 / elapsed.as_secs_f64();
    println!("creates/s: {creates_per_s:.0}");
    println!("create p50 ms: {}", ms(percentile(&latencies, 0.50)));
    println!("create p99 ms: {}", ms(percentile(&latencies, 0.99)));
    println!("create max ms: {}", ms(percentile(&latencies, 1.0)));
    println!("master cpu s during creates: {master_cpu:.2}");
    println!("bench cpu s during creates: {bench_cpu:.2}");
    println!(
        "watch events delivered: {delivered}/{}",
        args.pods * args.watchers
    );
    println!("watch delay samples: {}", delays.len());
    println!("watch delay p50 ms: {:.2}", percentile(&delays, 0.50));
    println!("watch delay p99 ms: {:.2}", percentile(&delays, 0.99));
    println!("list items: {listed}");
    println!("list all ms (median of 3): {}", ms(percentile(&lists, 0.5)));
    println!("master rss MB after creates: {rss_after_creates:.1}");
    println!("master rss MB after watch delivery: {rss_after_watch:.1}");
    Ok((creates_per_s, rows))
}

const SCHEMA: &str = "
CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,
                 create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL);
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (name, value) VALUES ('revision', 0);
";

fn open_raw(path: &Path) -> anyhow::Result<rusqlite::Connection> {
    let _ = std::fs::remove_file(path);
    let conn =
        rusqlite::Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("sqlite refused WAL mode at {}", path.display());
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Inserts `rows` `per_tx` at a time, each transaction also bumping the revision
/// as the master does; stops after `budget`. Returns rows inserted per second.
fn insert_rate(
    conn: &mut rusqlite::Connection,
    rows: &[(String, Bytes)],
    per_tx: usize,
    budget: Duration,
) -> anyhow::Result<(f64, usize)> {
    let started = Instant::now();
    let mut done = 0;
    let mut revision = 0i64;
    for chunk in rows.chunks(per_tx.max(1)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (key, value) in chunk {
            revision += 1;
            tx.prepare_cached(
                "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(rusqlite::params![key, &value[..], revision])?;
        }
        tx.prepare_cached("UPDATE meta SET value = ?1 WHERE name = 'revision'")?
            .execute([revision])?;
        tx.commit()?;
        done += chunk.len();
        if started.elapsed() > budget {
            break;
        }
    }
    Ok((done as f64 / started.elapsed().as_secs_f64(), done))
}

fn raw_sqlite_bench(
    args: &Args,
    rows: &[(String, Bytes)],
    creates_per_s: f64,
) -> anyhow::Result<()> {
    let budget = Duration::from_secs(args.raw_seconds);
    let path = args.scratch.join("raw-single.db");
    let (single, single_rows) = insert_rate(&mut open_raw(&path)?, rows, 1, budget)?;
    let path_batched = args.scratch.join("raw-batched.db");
    let (batched, _) = insert_rate(&mut open_raw(&path_batched)?, rows, args.batch, budget)?;
    for p in [&path, &path_batched] {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
        }
    }
    println!("raw sqlite rows (single): {single_rows}");
    println!("raw sqlite single-insert/s: {single:.0}");
    println!("raw sqlite batched({})/s: {batched:.0}", args.batch);
    println!("ratio API/limit: {:.2}", creates_per_s / single);
    println!("ratio API/batched: {:.2}", creates_per_s / batched);
    Ok(())
}
