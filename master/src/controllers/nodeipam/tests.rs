//! In-process tests of node IPAM: a real API server on a temp store; concurrent
//! registrations, a restart on the same store, exhaustion.

use super::CLAIM_KIND;
use crate::controllers::nodelifecycle::testkit::*;
use crate::controllers::{Informers, Options};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// Runs `f` on a runtime of its own, dropped afterwards (so every task a
/// "master" spawned ends with it, as a process exit would).
fn on_runtime<T>(f: impl std::future::Future<Output = T>) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let out = rt.block_on(f);
    rt.shutdown_timeout(Duration::from_secs(2));
    out
}

fn cidr_of(node: &serde_json::Value) -> Option<String> {
    let c = node.pointer("/spec/podCIDR")?.as_str()?.to_string();
    assert_eq!(node["spec"]["podCIDRs"], serde_json::json!([c]), "{node}");
    Some(c)
}

/// Registers `names` concurrently and waits until each has a podCIDR.
async fn register(kube: &crate::apiserver::Kube, names: Vec<String>) -> BTreeMap<String, String> {
    let tasks: Vec<_> = names
        .iter()
        .map(|n| {
            let (kube, n) = (kube.clone(), n.clone());
            tokio::spawn(async move { create_node(&kube, &n).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut out = BTreeMap::new();
    for n in names {
        let c = eventually(10, &format!("podCIDR of {n}"), async || {
            cidr_of(&get_node(kube, &n).await?)
        })
        .await;
        out.insert(n, c);
    }
    out
}

async fn all_cidrs(kube: &crate::apiserver::Kube) -> BTreeMap<String, String> {
    let (nodes, _) = kube.list(nodes(), None).await.unwrap();
    nodes
        .iter()
        .filter_map(|n| Some((n["metadata"]["name"].as_str()?.to_string(), cidr_of(n)?)))
        .collect()
}

fn assert_distinct(cidrs: &BTreeMap<String, String>) {
    let set: HashSet<&String> = cidrs.values().collect();
    assert_eq!(set.len(), cidrs.len(), "a /24 given twice: {cidrs:?}");
    for c in cidrs.values() {
        assert!(c.starts_with("10.244.") && c.ends_with(".0/24"), "{c}");
    }
}

async fn start(dir: &Path, options: &Options) -> TestMaster {
    let m = master(dir).await;
    let informers = Informers::start(&m.kube);
    informers.wait_synced().await;
    super::start(&m.kube, &informers, options);
    m
}

#[test]
fn concurrent_nodes_get_distinct_24s_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(Duration::from_secs(40));
    let first = on_runtime(async {
        let m = start(dir.path(), &opts).await;
        let names = (0..12).map(|i| format!("a{i}")).collect();
        let got = register(&m.kube, names).await;
        assert_distinct(&got);
        // A deleted node's /24 is released.
        m.kube
            .delete(nodes(), None, "a0", Default::default())
            .await
            .unwrap();
        let gone = got["a0"].clone();
        eventually(5, "a0's claim released", async || {
            let claims = m.kube.claims(CLAIM_KIND).await.unwrap();
            (!claims.iter().any(|(c, _)| *c == gone)).then_some(())
        })
        .await;
        got
    });
    on_runtime(async {
        let m = master(dir.path()).await;
        // While no master runs: a node goes away, its claim stays behind.
        m.kube
            .delete(nodes(), None, "a1", Default::default())
            .await
            .unwrap();
        drop(m);
        let m = start(dir.path(), &opts).await;
        let names = (0..12).map(|i| format!("b{i}")).collect();
        register(&m.kube, names).await;
        let all = all_cidrs(&m.kube).await;
        assert_eq!(all.len(), 22);
        assert_distinct(&all);
        for i in 2..12 {
            let n = format!("a{i}");
            assert_eq!(all[&n], first[&n], "{n} keeps its podCIDR");
        }
        // One claim per node, and none for the node deleted while down.
        let claims: BTreeMap<String, String> = m
            .kube
            .claims(CLAIM_KIND)
            .await
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(claims.len(), 22, "{claims:?}");
        for (node, cidr) in &all {
            assert_eq!(claims.get(cidr), Some(node));
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_range_says_so_and_a_released_24_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        cluster_cidr: "10.250.0.0/23".into(),
        ..Options::default()
    };
    let m = start(dir.path(), &opts).await;
    let kube = &m.kube;
    let got = register(kube, vec!["x".into(), "y".into()]).await;
    create_node(kube, "z").await;
    let events = crate::apiserver::crud_resource("", "events");
    eventually(5, "a CIDRNotAvailable event", async || {
        let (evs, _) = kube.list(events, None).await.unwrap();
        evs.iter()
            .find(|e| e["reason"] == "CIDRNotAvailable" && e["involvedObject"]["name"] == "z")
            .map(|e| assert_eq!(e["message"], "Node z status is now: CIDRNotAvailable"))
    })
    .await;
    assert!(cidr_of(&get_node(kube, "z").await.unwrap()).is_none());
    kube.delete(nodes(), None, "x", Default::default())
        .await
        .unwrap();
    let z = eventually(10, "z gets x's /24", async || {
        cidr_of(&get_node(kube, "z").await?)
    })
    .await;
    assert_eq!(z, got["x"]);
}
