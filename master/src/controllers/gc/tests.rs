//! The garbage collector against a real API server on a temporary SQLite store:
//! background, foreground and orphan deletion of a ConfigMap owner, dangling and
//! recreated owners, cluster-scoped owners. Also `eventually`, which other
//! controller tests use.

use super::*;
use std::future::Future;
use std::time::Instant;

pub(crate) use crate::testkit::{informers, test_kube};

/// Polls `check` until it returns Some, for up to 10 s.
pub(crate) async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn cms() -> &'static Resource {
    crate::apiserver::crud_resource("", "configmaps")
}

async fn create_cm(kube: &Kube, name: &str, owners: Value, finalizers: Value) -> Value {
    kube.create(
        cms(),
        Some("default"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "ownerReferences": owners, "finalizers": finalizers},
               "data": {"k": "v"}}),
    )
    .await
    .unwrap()
}

fn owner_ref(owner: &Value, block: bool) -> Value {
    json!({"apiVersion": owner["apiVersion"], "kind": owner["kind"],
           "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
           "blockOwnerDeletion": block})
}

async fn get_cm(kube: &Kube, name: &str) -> Option<Value> {
    kube.get(cms(), Some("default"), name).await.unwrap()
}

async fn gone(kube: &Kube, name: &str) {
    eventually(&format!("configmap {name} to be deleted"), || async {
        get_cm(kube, name).await.is_none().then_some(())
    })
    .await
}

async fn delete(kube: &Kube, name: &str, policy: &'static str) {
    kube.delete(
        cms(),
        Some("default"),
        name,
        Deletion {
            propagation: Some(policy),
            ..Default::default()
        },
    )
    .await
    .unwrap();
}

async fn start_gc() -> (Kube, tempfile::TempDir) {
    let (kube, dir) = test_kube().await;
    let inf = informers(&kube).await;
    start(&kube, &inf, &Options::default());
    (kube, dir)
}

#[tokio::test]
async fn background_deletion_collects_the_dependents_afterwards() {
    let (kube, _dir) = start_gc().await;
    let owner = create_cm(&kube, "owner", json!([]), json!([])).await;
    create_cm(&kube, "dep-1", json!([owner_ref(&owner, true)]), json!([])).await;
    create_cm(&kube, "dep-2", json!([owner_ref(&owner, false)]), json!([])).await;
    create_cm(&kube, "bystander", json!([]), json!([])).await;
    delete(&kube, "owner", "Background").await;
    assert!(
        get_cm(&kube, "owner").await.is_none(),
        "the owner goes at once"
    );
    gone(&kube, "dep-1").await;
    gone(&kube, "dep-2").await;
    assert!(get_cm(&kube, "bystander").await.is_some());
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let (kube, _dir) = start_gc().await;
    let owner = create_cm(&kube, "owner", json!([]), json!([])).await;
    // A blocking dependent that cannot go until the test lets it.
    create_cm(
        &kube,
        "held",
        json!([owner_ref(&owner, true)]),
        json!(["test.bosun.io/hold"]),
    )
    .await;
    create_cm(&kube, "free", json!([owner_ref(&owner, false)]), json!([])).await;
    delete(&kube, "owner", "Foreground").await;
    let marked = get_cm(&kube, "owner")
        .await
        .expect("owner stays while dependents go");
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        marked["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    gone(&kube, "free").await;
    let held = eventually("the held dependent to be deleting", || async {
        get_cm(&kube, "held")
            .await
            .filter(|h| h["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    // The owner waits for its blocking dependent.
    assert!(get_cm(&kube, "owner").await.is_some());
    let mut released = held.clone();
    released["metadata"]["finalizers"] = json!([]);
    kube.update(cms(), released).await.unwrap();
    gone(&kube, "held").await;
    gone(&kube, "owner").await;
}

#[tokio::test]
async fn foreground_propagates_through_levels() {
    let (kube, _dir) = start_gc().await;
    let top = create_cm(&kube, "top", json!([]), json!([])).await;
    let mid = create_cm(&kube, "mid", json!([owner_ref(&top, true)]), json!([])).await;
    create_cm(&kube, "leaf", json!([owner_ref(&mid, true)]), json!([])).await;
    delete(&kube, "top", "Foreground").await;
    gone(&kube, "leaf").await;
    gone(&kube, "mid").await;
    gone(&kube, "top").await;
}

#[tokio::test]
async fn orphan_deletion_releases_the_dependents() {
    let (kube, _dir) = start_gc().await;
    let owner = create_cm(&kube, "owner", json!([]), json!([])).await;
    let other = create_cm(&kube, "other", json!([]), json!([])).await;
    create_cm(&kube, "dep-1", json!([owner_ref(&owner, true)]), json!([])).await;
    create_cm(
        &kube,
        "dep-2",
        json!([owner_ref(&owner, false), owner_ref(&other, false)]),
        json!([]),
    )
    .await;
    delete(&kube, "owner", "Orphan").await;
    gone(&kube, "owner").await;
    let d1 = get_cm(&kube, "dep-1")
        .await
        .expect("orphaned dependent stays");
    assert!(d1["metadata"]["ownerReferences"]
        .as_array()
        .is_none_or(|a| a.is_empty()));
    let d2 = get_cm(&kube, "dep-2")
        .await
        .expect("orphaned dependent stays");
    assert_eq!(
        d2["metadata"]["ownerReferences"],
        json!([owner_ref(&other, false)])
    );
}

#[tokio::test]
async fn dangling_and_recreated_owners_make_garbage() {
    let (kube, _dir) = start_gc().await;
    create_cm(
        &kube,
        "ghost-child",
        json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000001"}]),
        json!([]),
    )
    .await;
    gone(&kube, "ghost-child").await;

    let first = create_cm(&kube, "phoenix", json!([]), json!([])).await;
    delete(&kube, "phoenix", "Background").await;
    create_cm(&kube, "phoenix", json!([]), json!([])).await;
    create_cm(
        &kube,
        "stale-child",
        json!([owner_ref(&first, false)]),
        json!([]),
    )
    .await;
    gone(&kube, "stale-child").await;
    assert!(
        get_cm(&kube, "phoenix").await.is_some(),
        "the new owner stays"
    );
}

#[tokio::test]
async fn a_solid_owner_keeps_a_dependent_and_loses_the_dangling_reference() {
    let (kube, _dir) = start_gc().await;
    let a = create_cm(&kube, "a", json!([]), json!([])).await;
    let b = create_cm(&kube, "b", json!([]), json!([])).await;
    create_cm(
        &kube,
        "shared",
        json!([owner_ref(&a, false), owner_ref(&b, false)]),
        json!([]),
    )
    .await;
    delete(&kube, "a", "Background").await;
    eventually("the dangling reference to be removed", || async {
        let s = get_cm(&kube, "shared")
            .await
            .expect("kept by its solid owner");
        (s["metadata"]["ownerReferences"] == json!([owner_ref(&b, false)])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn cluster_scoped_owners_own_namespaced_dependents() {
    let (kube, _dir) = start_gc().await;
    let nodes = crate::apiserver::crud_resource("", "nodes");
    let node = kube
        .create(
            nodes,
            None,
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}),
        )
        .await
        .unwrap();
    create_cm(
        &kube,
        "per-node",
        json!([owner_ref(&node, false)]),
        json!([]),
    )
    .await;
    kube.delete(nodes, None, "n1", Deletion::default())
        .await
        .unwrap();
    gone(&kube, "per-node").await;
}
