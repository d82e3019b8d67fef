//! In-process tests of pod GC: a real API server on a temp store.

use crate::controllers::nodelifecycle::testkit::*;
use crate::controllers::{Informers, Options};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_of_deleted_nodes_and_terminated_pods_over_the_threshold_go() {
    let dir = tempfile::tempdir().unwrap();
    let m = master(dir.path()).await;
    let kube = &m.kube;
    let informers = Informers::start(kube);
    informers.wait_synced().await;
    let opts = Options {
        terminated_pod_gc_threshold: 2,
        ..options(Duration::from_secs(2))
    };
    super::start(kube, &informers, &opts);

    create_node(kube, "keep").await;
    create_node(kube, "doomed").await;
    bound_pod(kube, "on-doomed", "doomed", json!([]), 30).await;
    bound_pod(kube, "on-keep", "keep", json!([]), 30).await;
    for name in ["t1", "t2", "t3", "t4"] {
        bound_pod(kube, name, "keep", json!([]), 30).await;
        // Created in this order (ties in creationTimestamp go by name).
        set_phase(kube, name, "Succeeded").await;
    }
    eventually(10, "the two oldest terminated pods deleted", async || {
        let left = [
            get_pod(kube, "t1").await.is_some(),
            get_pod(kube, "t2").await.is_some(),
        ];
        (left == [false, false]).then_some(())
    })
    .await;
    assert!(get_pod(kube, "t3").await.is_some());
    assert!(get_pod(kube, "t4").await.is_some());

    kube.delete(nodes(), None, "doomed", Default::default())
        .await
        .unwrap();
    eventually(10, "the pod of the deleted node gone", async || {
        get_pod(kube, "on-doomed").await.is_none().then_some(())
    })
    .await;
    assert!(get_pod(kube, "on-keep").await.is_some());
    assert!(get_pod(kube, "t3").await.is_some(), "under the threshold");
    assert!(get_pod(kube, "t4").await.is_some(), "under the threshold");
}
