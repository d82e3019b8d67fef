//! In-process tests of node lifecycle and taint eviction: a real API server on a
//! temp store, nodes and leases written as an agent would, a 2 s grace period.

use super::health::{NOT_READY, UNREACHABLE};
use super::testkit::*;
use crate::controllers::Informers;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_node_becomes_unknown_its_pods_are_evicted_and_it_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path()).await;
    // Pods without tolerations get unreachable:NoExecute for 0 s by default here.
    m.server.set_default_toleration_seconds(0);
    let kube = &m.kube;
    let informers = Informers::start(kube);
    informers.wait_synced().await;
    super::start(kube, &informers, &options(Duration::from_secs(2)));

    create_node(kube, "n1").await;
    renew_lease(kube, "n1").await;
    post_ready(kube, "n1", "True").await;
    bound_pod(kube, "plain", "n1", json!([]), 1).await;
    let two = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2}]);
    bound_pod(kube, "two", "n1", two, 1).await;
    let forever = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]);
    bound_pod(kube, "forever", "n1", forever, 1).await;
    let plain = get_pod(kube, "plain").await.unwrap();
    assert_eq!(
        plain["spec"]["tolerations"][1]["tolerationSeconds"],
        json!(0),
        "the default toleration uses the option: {plain}"
    );

    // The agent goes silent: after the grace period the node is Unknown and tainted.
    let node = eventually(10, "n1 Unknown and tainted unreachable", async || {
        let n = get_node(kube, "n1").await?;
        taint(&n, UNREACHABLE)?;
        Some(n)
    })
    .await;
    let ready = condition(&node, "Ready").unwrap();
    assert_eq!(ready["status"], "Unknown");
    assert_eq!(ready["reason"], "NodeStatusUnknown");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.");
    for c in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&node, c).unwrap()["status"], "Unknown", "{c}");
    }
    let t = taint(&node, UNREACHABLE).unwrap();
    assert_eq!(t["effect"], "NoExecute");
    assert!(t["timeAdded"].is_string(), "{t}");

    // The pod that does not tolerate it is marked for deletion at once ...
    eventually(3, "plain marked for deletion", async || {
        get_pod(kube, "plain")
            .await?
            .pointer("/metadata/deletionTimestamp")?;
        Some(())
    })
    .await;
    assert!(
        get_pod(kube, "two")
            .await
            .unwrap()
            .pointer("/metadata/deletionTimestamp")
            .is_none(),
        "a pod tolerating 2 s is not evicted at once"
    );
    // ... and, since the node will never finish it, gone after its grace period.
    eventually(5, "plain gone", async || {
        get_pod(kube, "plain").await.is_none().then_some(())
    })
    .await;
    let events = kube
        .list(
            crate::apiserver::crud_resource("", "events"),
            Some("default"),
        )
        .await
        .unwrap()
        .0;
    assert!(
        events.iter().any(|e| e["reason"] == "TaintManagerEviction"
            && e["message"] == "Marking for deletion Pod default/plain"),
        "eviction event: {events:?}"
    );
    // The one tolerating 2 s goes when they run out.
    eventually(8, "two gone", async || {
        get_pod(kube, "two").await.is_none().then_some(())
    })
    .await;
    let forever = get_pod(kube, "forever").await.unwrap();
    assert!(forever.pointer("/metadata/deletionTimestamp").is_none());

    // The agent comes back: the taint goes.
    renew_lease(kube, "n1").await;
    post_ready(kube, "n1", "True").await;
    let node = eventually(10, "n1 untainted", async || {
        let n = get_node(kube, "n1").await?;
        taint(&n, UNREACHABLE).is_none().then_some(n)
    })
    .await;
    assert_eq!(condition(&node, "Ready").unwrap()["status"], "True");
    assert!(get_pod(kube, "forever").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reporting_not_ready_is_tainted_not_ready_until_ready() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path()).await;
    let kube = &m.kube;
    let informers = Informers::start(kube);
    informers.wait_synced().await;
    super::start(kube, &informers, &options(Duration::from_secs(2)));

    create_node(kube, "n2").await;
    // A live agent: renews its lease all along.
    let agent = {
        let kube = kube.clone();
        tokio::spawn(async move {
            loop {
                renew_lease(&kube, "n2").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    post_ready(kube, "n2", "False").await;
    let node = eventually(5, "n2 tainted not-ready", async || {
        let n = get_node(kube, "n2").await?;
        taint(&n, NOT_READY)?;
        Some(n)
    })
    .await;
    assert!(taint(&node, UNREACHABLE).is_none());
    assert_eq!(taint(&node, NOT_READY).unwrap()["effect"], "NoExecute");
    post_ready(kube, "n2", "True").await;
    eventually(5, "n2 untainted", async || {
        let n = get_node(kube, "n2").await?;
        (n.pointer("/spec/taints")
            .and_then(|t| t.as_array())
            .is_none_or(|t| t.is_empty()))
        .then_some(())
    })
    .await;
    // Renewing the lease alone keeps it healthy past the grace period.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let node = get_node(kube, "n2").await.unwrap();
    assert_eq!(condition(&node, "Ready").unwrap()["status"], "True");
    agent.abort();
}
