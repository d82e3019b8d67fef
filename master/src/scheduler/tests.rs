//! In-process tests of the scheduler against a real API server on a temporary
//! SQLite store: nodes are written with their status by the test, pods are
//! created through `Kube`, and the test checks what a user would see — where
//! pods are bound, their PodScheduled condition and their events.

use super::*;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

struct Cluster {
    _dir: tempfile::TempDir,
    kube: Kube,
    informers: Arc<Informers>,
}

async fn cluster() -> Cluster {
    let (kube, dir) = crate::testkit::test_kube().await;
    let informers = Informers::start(&kube);
    Cluster {
        _dir: dir,
        kube,
        informers,
    }
}

/// Polls `check` until it yields a value or `timeout` passes.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn nodes_res() -> &'static api::resources::Resource {
    crud_resource("", "nodes")
}

fn pods_res() -> &'static api::resources::Resource {
    crud_resource("", "pods")
}

async fn add_node(kube: &Kube, name: &str, cpu: &str, extra: Value) {
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
    });
    if let Some(labels) = extra.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            node["metadata"]["labels"][k] = v.clone();
        }
    }
    if let Some(taints) = extra.get("taints") {
        node["spec"]["taints"] = taints.clone();
    }
    kube.create(nodes_res(), None, node).await.unwrap();
    let ready = extra.get("ready").and_then(Value::as_str).unwrap_or("True");
    let resources =
        json!({"cpu": cpu, "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "test"}],
    }});
    kube.patch(
        nodes_res(),
        None,
        name,
        PatchType::Merge,
        &status,
        Some("status"),
    )
    .await
    .unwrap();
}

fn pod(name: &str, cpu: &str, owner: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
            "uid": format!("uid-{owner}"), "controller": true,
        }]},
        "spec": {"containers": [{"name": "c", "image": "registry.invalid/app:1",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
    })
}

async fn create_pod(kube: &Kube, p: Value) {
    kube.create(pods_res(), Some("default"), p).await.unwrap();
}

async fn node_of(kube: &Kube, name: &str) -> Option<String> {
    let p = kube.get(pods_res(), Some("default"), name).await.unwrap()?;
    p.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .map(str::to_string)
}

async fn wait_bound(kube: &Kube, names: &[String]) -> HashMap<String, String> {
    eventually(Duration::from_secs(30), "pods bound", || async {
        let mut out = HashMap::new();
        for n in names {
            out.insert(n.clone(), node_of(kube, n).await?);
        }
        Some(out)
    })
    .await
}

async fn synced(c: &Cluster) -> Arc<Stats> {
    c.informers.wait_synced().await;
    start_with(&c.kube, &c.informers, Config::default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_bound_and_spread_across_nodes() {
    let c = cluster().await;
    for n in ["n1", "n2", "n3"] {
        add_node(&c.kube, n, "4", json!({})).await;
    }
    let stats = synced(&c).await;
    let names: Vec<String> = (0..9).map(|i| format!("web-{i}")).collect();
    for n in &names {
        create_pod(&c.kube, pod(n, "100m", "web")).await;
    }
    let placed = wait_bound(&c.kube, &names).await;
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for node in placed.values() {
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "{per_node:?}");
    let (min, max) = (
        per_node.values().min().unwrap(),
        per_node.values().max().unwrap(),
    );
    assert!(max - min <= 1, "{per_node:?}");
    // The binding set PodScheduled=True, and a Scheduled event says where.
    let p = c
        .kube
        .get(pods_res(), Some("default"), "web-0")
        .await
        .unwrap()
        .unwrap();
    let conds = p.pointer("/status/conditions").unwrap().to_string();
    assert!(conds.contains("PodScheduled"), "{conds}");
    let node = placed["web-0"].clone();
    eventually(Duration::from_secs(10), "Scheduled event", || async {
        let (events, _) = c
            .kube
            .list(crud_resource("", "events"), Some("default"))
            .await
            .unwrap();
        events
            .iter()
            .find(|e| {
                e["reason"] == "Scheduled"
                    && e["involvedObject"]["name"] == "web-0"
                    && e["message"] == format!("Successfully assigned default/web-0 to {node}")
            })
            .map(|_| ())
    })
    .await;
    assert_eq!(stats.scheduled.load(Ordering::Relaxed), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_too_big_for_every_node_waits_for_one_that_fits() {
    let c = cluster().await;
    add_node(&c.kube, "small-1", "2", json!({})).await;
    add_node(&c.kube, "small-2", "2", json!({})).await;
    synced(&c).await;
    create_pod(&c.kube, pod("big", "8", "big")).await;
    let expected = "0/2 nodes are available: 2 Insufficient cpu.";
    eventually(Duration::from_secs(10), "PodScheduled=False", || async {
        let p = c
            .kube
            .get(pods_res(), Some("default"), "big")
            .await
            .unwrap()?;
        let conds = p.pointer("/status/conditions")?.as_array()?.clone();
        conds
            .iter()
            .find(|c| {
                c["type"] == "PodScheduled"
                    && c["status"] == "False"
                    && c["reason"] == "Unschedulable"
                    && c["message"] == expected
            })
            .map(|_| ())
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "FailedScheduling event",
        || async {
            let (events, _) = c
                .kube
                .list(crud_resource("", "events"), Some("default"))
                .await
                .unwrap();
            events
                .iter()
                .find(|e| {
                    e["reason"] == "FailedScheduling"
                        && e["type"] == "Warning"
                        && e["involvedObject"]["name"] == "big"
                        && e["message"] == expected
                })
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(node_of(&c.kube, "big").await, None);
    // A big enough node arrives: the pod is scheduled there, without waiting
    // for the periodic retry.
    add_node(&c.kube, "large", "16", json!({})).await;
    let placed = wait_bound(&c.kube, &["big".to_string()]).await;
    assert_eq!(placed["big"], "large");
    let p = c
        .kube
        .get(pods_res(), Some("default"), "big")
        .await
        .unwrap()
        .unwrap();
    let conds = p.pointer("/status/conditions").unwrap().as_array().unwrap();
    let sched = conds.iter().find(|c| c["type"] == "PodScheduled").unwrap();
    assert_eq!(sched["status"], "True");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selectors_taints_and_readiness_are_respected() {
    let c = cluster().await;
    add_node(&c.kube, "ssd", "4", json!({"labels": {"disk": "ssd"}})).await;
    add_node(
        &c.kube,
        "dedicated",
        "4",
        json!({"taints": [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]}),
    )
    .await;
    add_node(&c.kube, "plain", "4", json!({})).await;
    add_node(&c.kube, "down", "4", json!({"ready": "False"})).await;
    synced(&c).await;

    let mut on_ssd = pod("wants-ssd", "100m", "a");
    on_ssd["spec"]["nodeSelector"] = json!({"disk": "ssd"});
    create_pod(&c.kube, on_ssd).await;
    let mut db = pod("db", "100m", "b");
    db["spec"]["tolerations"] =
        json!([{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]);
    db["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["dedicated"]}]}]}}});
    create_pod(&c.kube, db).await;
    let plain: Vec<String> = (0..8).map(|i| format!("plain-{i}")).collect();
    for n in &plain {
        create_pod(&c.kube, pod(n, "100m", "c")).await;
    }
    let mut all = plain.clone();
    all.extend(["wants-ssd".to_string(), "db".to_string()]);
    let placed = wait_bound(&c.kube, &all).await;
    assert_eq!(placed["wants-ssd"], "ssd");
    assert_eq!(placed["db"], "dedicated");
    for n in &plain {
        assert!(
            placed[n] == "ssd" || placed[n] == "plain",
            "{n} on {}",
            placed[n]
        );
    }

    // A pod that fits only the tainted node says so.
    let mut stuck = pod("stuck", "100m", "d");
    stuck["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "dedicated"});
    create_pod(&c.kube, stuck).await;
    let expected = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
                    1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
                    2 node(s) didn't match Pod's node affinity/selector.";
    eventually(Duration::from_secs(10), "PodScheduled=False", || async {
        let p = c
            .kube
            .get(pods_res(), Some("default"), "stuck")
            .await
            .unwrap()?;
        (p.pointer("/status/conditions")?
            .to_string()
            .contains(expected))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_pods_over_a_hundred_nodes() {
    let c = cluster().await;
    for i in 0..100 {
        add_node(&c.kube, &format!("node-{i:03}"), "32", json!({})).await;
    }
    // Pods exist before the scheduler starts: this measures scheduling and
    // binding, not pod creation.
    let total = 2000;
    futures_util::stream::iter(0..total)
        .map(|i| {
            let kube = c.kube.clone();
            async move {
                let owner = format!("rs-{}", i % 4);
                create_pod(&kube, pod(&format!("p-{i:04}"), "100m", &owner)).await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    c.informers.wait_synced().await;
    eventually(
        Duration::from_secs(30),
        "informer has every pod",
        || async { (c.informers.pods.len() == total).then_some(()) },
    )
    .await;
    let started = Instant::now();
    let stats = start_with(&c.kube, &c.informers, Config::default());
    let informers = c.informers.clone();
    eventually(Duration::from_secs(120), "every pod bound", || async {
        let bound = informers
            .pods
            .list()
            .iter()
            .filter(|p| is_bound(p).is_some())
            .count();
        (bound == total).then_some(())
    })
    .await;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "scheduled {total} pods over 100 nodes in {secs:.2} s: {:.0} pods/s (events dropped: {})",
        total as f64 / secs,
        stats.events_dropped.load(Ordering::Relaxed)
    );
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in informers.pods.list() {
        *per_node
            .entry(is_bound(&p).unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert_eq!(per_node.len(), 100);
    let (min, max) = (
        per_node.values().min().unwrap(),
        per_node.values().max().unwrap(),
    );
    println!("pods per node: min {min}, max {max}");
}

/// A scheduler that is not running, to drive its handlers by hand.
fn idle_scheduler(kube: &Kube) -> (Scheduler, mpsc::UnboundedReceiver<Bound>) {
    let config = Config::default();
    let stats = Arc::new(Stats::default());
    let (bind_tx, bind_rx) = mpsc::unbounded_channel();
    let s = Scheduler {
        kube: kube.clone(),
        events: EventSink::start(kube, &config, stats.clone()),
        config,
        stats,
        queue: SchedulingQueue::new(),
        cache: Cache::new(),
        cursor: Cursor {
            next_start: 0,
            pick: Picker(rand::rngs::StdRng::seed_from_u64(1)),
        },
        in_flight: 0,
        bind_tx,
    };
    (s, bind_rx)
}

fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).unwrap())
}

#[tokio::test]
async fn a_failed_binding_forgets_the_assumed_pod_and_retries_after_backoff() {
    let c = cluster().await;
    let (mut s, _rx) = idle_scheduler(&c.kube);
    let node = cache::tests::node("n1", "4", "8Gi", "110");
    assert!(s.on_node(Change::Added(Arc::new(node))));
    let mut p = pod("p", "1", "rs");
    p["metadata"]["uid"] = json!("uid-p");
    let p: Arc<Pod> = typed(p);
    let now = Instant::now();
    s.on_pod(Change::Added(p.clone()), now);
    let popped = s.queue.pop(now).unwrap();
    let info = Arc::new(PodInfo::from_pod(&popped.pod));
    s.cache.assume(info, "n1");
    s.in_flight = 1;
    // While the binding is in flight, updates of the unbound pod do not queue it.
    s.on_pod(
        Change::Updated {
            old: p.clone(),
            new: p.clone(),
        },
        now,
    );
    assert!(s.queue.pop(now).is_none());
    assert_eq!(s.cache.node("n1").unwrap().usage.requested.milli_cpu, 1000);
    s.on_bound(
        Bound {
            uid: "uid-p".into(),
            result: Err(ApiError::internal("store unavailable")),
        },
        now,
    );
    assert_eq!(s.in_flight, 0);
    assert_eq!(s.cache.node("n1").unwrap().usage.pods, 0);
    assert!(s.queue.pop(now).is_none(), "retried only after its backoff");
    let later = now + queue::INITIAL_BACKOFF;
    s.queue.flush(later);
    assert_eq!(uid_of(&s.queue.pop(later).unwrap().pod), "uid-p");
}

#[tokio::test]
async fn bound_pods_confirm_and_terminated_or_deleted_pods_free_their_node() {
    let c = cluster().await;
    let (mut s, _rx) = idle_scheduler(&c.kube);
    s.on_node(Change::Added(Arc::new(cache::tests::node(
        "n1", "4", "8Gi", "110",
    ))));
    let mut v = pod("p", "1", "rs");
    v["metadata"]["uid"] = json!("uid-p");
    v["spec"]["nodeName"] = json!("n1");
    let bound: Arc<Pod> = typed(v.clone());
    let now = Instant::now();
    assert!(!s.on_pod(Change::Added(bound.clone()), now));
    assert!(s.queue.is_empty());
    assert_eq!(s.cache.node("n1").unwrap().usage.pods, 1);
    v["status"] = json!({"phase": "Succeeded"});
    let done: Arc<Pod> = typed(v);
    assert!(s.on_pod(
        Change::Updated {
            old: bound,
            new: done.clone()
        },
        now
    ));
    assert_eq!(s.cache.node("n1").unwrap().usage.pods, 0);
    assert!(!s.on_pod(Change::Deleted(done), now));
    // A pod for another scheduler is not ours.
    let mut other = pod("q", "1", "rs");
    other["metadata"]["uid"] = json!("uid-q");
    other["spec"]["schedulerName"] = json!("my-scheduler");
    s.on_pod(Change::Added(typed(other)), now);
    assert!(s.queue.is_empty());
}
