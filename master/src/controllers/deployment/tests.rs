//! In-process tests of the Deployment and ReplicaSet controllers together: a
//! real API server on a temporary SQLite store, both controllers, and a fake
//! kubelet that binds pods to a node, reports them Running and Ready after a
//! short delay, and finishes graceful deletions. Watchers check the rollout
//! guarantees (availability, surge, no overlap for Recreate) on every change.

use crate::apiserver::{crud_resource, Deletion, Kube, PatchType};
use crate::controllers::informer::{Change, Informer};
use crate::controllers::lite::Pod;
use crate::controllers::replicaset::pods::{controller_of, is_active, is_ready};
use crate::controllers::{deployment, replicaset, Informers, Options};
use api::resources::Resource;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const NS: &str = "default";

fn pods() -> &'static Resource {
    crud_resource("", "pods")
}
fn deployments() -> &'static Resource {
    crud_resource("apps", "deployments")
}
fn replicasets() -> &'static Resource {
    crud_resource("apps", "replicasets")
}

struct Cluster {
    kube: Kube,
    pods: Arc<Informer<Pod>>,
    _dir: tempfile::TempDir,
}

/// A server, both controllers, and a kubelet that makes pods ready after `ready_after`.
async fn cluster(ready_after: Duration) -> Cluster {
    let (kube, dir) = crate::testkit::test_kube().await;
    let informers = Informers::start(&kube);
    informers.wait_synced().await;
    let options = Options::default();
    replicaset::start(&kube, &informers, &options);
    deployment::start(&kube, &informers, &options);
    tokio::spawn(kubelet(
        kube.with_manager("kubelet"),
        informers.pods.clone(),
        ready_after,
    ));
    Cluster {
        kube,
        pods: informers.pods.clone(),
        _dir: dir,
    }
}

/// Binds new pods to `node-1`, marks them Running and Ready after `delay` (never
/// when their image says `stuck`), and removes pods being deleted after `delay`.
async fn kubelet(kube: Kube, informer: Arc<Informer<Pod>>, delay: Duration) {
    let mut rx = informer.subscribe();
    while let Some(change) = rx.recv().await {
        let pod = match change {
            Change::Added(p) | Change::Updated { new: p, .. } => p,
            Change::Deleted(_) => continue,
        };
        let kube = kube.clone();
        tokio::spawn(async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let bound = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some();
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if pod.metadata.deletion_timestamp.is_some() {
                tokio::time::sleep(delay).await;
                let opts = Deletion {
                    grace_period: Some(0),
                    uid: Some(uid),
                    ..Default::default()
                };
                let _ = kube.delete(pods(), Some(NS), &name, opts).await;
            } else if !bound {
                let _ = kube.bind(NS, &name, &uid, "node-1").await;
            } else if !running && !image(&pod).contains("stuck") {
                tokio::time::sleep(delay).await;
                let now = jiff::Timestamp::now().to_string();
                let status = json!({"status": {
                    "phase": "Running",
                    "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                }});
                let _ = kube
                    .patch(
                        pods(),
                        Some(NS),
                        &name,
                        PatchType::Merge,
                        &status,
                        Some("status"),
                    )
                    .await;
            }
        });
    }
}

/// Polls `check` until it returns Some, for at most `secs` seconds.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn deployment_json(name: &str, replicas: i32, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    })
}

async fn get(kube: &Kube, res: &'static Resource, name: &str) -> Value {
    kube.get(res, Some(NS), name).await.unwrap().unwrap()
}

/// `kubectl rollout status`'s test: the rollout is done and `replicas` are
/// available.
async fn rolled_out(kube: &Kube, name: &str, replicas: i64) -> Value {
    eventually(15, "the rollout to finish", || async {
        let d = get(kube, deployments(), name).await;
        let s = &d["status"];
        let n = |f: &str| s.get(f).and_then(Value::as_i64).unwrap_or(0);
        let done = s["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
            && n("updatedReplicas") == replicas
            && n("replicas") == replicas
            && n("availableReplicas") == replicas
            && d["spec"]["replicas"].as_i64() == Some(replicas);
        done.then_some(d)
    })
    .await
}

fn condition<'a>(d: &'a Value, type_: &str) -> &'a Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn app_pods(inf: &Informer<Pod>, app: &str) -> Vec<Arc<Pod>> {
    inf.list()
        .into_iter()
        .filter(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                == Some(app)
        })
        .collect()
}

fn image(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

async fn owned_replica_sets(kube: &Kube, app: &str) -> Vec<Value> {
    let (items, _) = kube.list(replicasets(), Some(NS)).await.unwrap();
    items
        .into_iter()
        .filter(|rs| rs["metadata"]["labels"]["app"] == app)
        .collect()
}

async fn events(kube: &Kube, reason: &str) -> Vec<String> {
    let (items, _) = kube
        .list(crud_resource("", "events"), Some(NS))
        .await
        .unwrap();
    items
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .filter_map(|e| e["message"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_becomes_available_and_scales() {
    let c = cluster(Duration::from_millis(10)).await;
    let body = deployment_json("web", 3, "nginx:1", json!({}));
    c.kube.create(deployments(), Some(NS), body).await.unwrap();
    let d = rolled_out(&c.kube, "web", 3).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    let available = condition(&d, "Available");
    assert_eq!(available["status"], "True");
    assert_eq!(available["reason"], "MinimumReplicasAvailable");
    let progressing = eventually(5, "Progressing to settle", || async {
        let d = get(&c.kube, deployments(), "web").await;
        let p = condition(&d, "Progressing").clone();
        (p["reason"] == "NewReplicaSetAvailable").then_some(p)
    })
    .await;
    assert_eq!(progressing["status"], "True");

    let rss = owned_replica_sets(&c.kube, "web").await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    let rs_name = format!("web-{hash}");
    assert_eq!(rs["metadata"]["name"], rs_name.as_str());
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"],
        "3"
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"],
        "4"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    let web = app_pods(&c.pods, "web");
    assert_eq!(web.len(), 3);
    for p in &web {
        assert!(p
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with(&format!("{rs_name}-")));
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
        let owner = controller_of(&p.metadata).unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", rs_name.as_str())
        );
        assert_eq!(owner.block_owner_deletion, Some(true));
    }
    assert!(events(&c.kube, "ScalingReplicaSet")
        .await
        .contains(&format!("Scaled up replica set {rs_name} to 3 from 0")));
    assert_eq!(events(&c.kube, "SuccessfulCreate").await.len(), 3);

    let scale = |n: i64| json!({"spec": {"replicas": n}});
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "web",
            PatchType::Merge,
            &scale(5),
            None,
        )
        .await
        .unwrap();
    rolled_out(&c.kube, "web", 5).await;
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "web",
            PatchType::Merge,
            &scale(2),
            None,
        )
        .await
        .unwrap();
    rolled_out(&c.kube, "web", 2).await;
    eventually(5, "2 active pods", || async {
        let n = app_pods(&c.pods, "web")
            .iter()
            .filter(|p| is_active(p))
            .count();
        (n == 2).then_some(())
    })
    .await;
    assert!(events(&c.kube, "ScalingReplicaSet")
        .await
        .contains(&format!("Scaled down replica set {rs_name} to 2 from 5")));
    assert_eq!(owned_replica_sets(&c.kube, "web").await.len(), 1);
}

/// Records the extremes seen by a watcher of the app's pods: (most active pods,
/// fewest ready active pods, old and new images side by side).
#[derive(Debug, Default, Clone)]
struct Seen {
    max_active: usize,
    min_ready: usize,
    overlap: bool,
}

fn watch_pods(
    inf: Arc<Informer<Pod>>,
    app: &'static str,
    old_image: &'static str,
) -> Arc<Mutex<Seen>> {
    let start = app_pods(&inf, app);
    let seen = Arc::new(Mutex::new(Seen {
        max_active: start.iter().filter(|p| is_active(p)).count(),
        min_ready: usize::MAX,
        overlap: false,
    }));
    let s = seen.clone();
    let mut rx = inf.subscribe();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            let pods = app_pods(&inf, app);
            let active: Vec<_> = pods.iter().filter(|p| is_active(p)).collect();
            let ready = active.iter().filter(|p| is_ready(p)).count();
            let has_old = pods.iter().any(|p| image(p) == old_image);
            let has_new = pods.iter().any(|p| image(p) != old_image);
            let mut s = s.lock().unwrap();
            s.max_active = s.max_active.max(active.len());
            s.min_ready = s.min_ready.min(ready);
            s.overlap |= has_old && has_new;
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_keeps_availability_and_surge_and_can_be_undone() {
    let c = cluster(Duration::from_millis(80)).await;
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let body = deployment_json("api", 4, "app:1", strategy);
    c.kube.create(deployments(), Some(NS), body).await.unwrap();
    rolled_out(&c.kube, "api", 4).await;
    eventually(5, "4 ready pods", || async {
        let n = app_pods(&c.pods, "api")
            .iter()
            .filter(|p| is_active(p) && is_ready(p))
            .count();
        (n == 4).then_some(())
    })
    .await;
    let first_rs = owned_replica_sets(&c.kube, "api").await[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();

    let seen = watch_pods(c.pods.clone(), "api", "app:1");
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "app:2"}]}}}});
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "api",
            PatchType::Strategic,
            &patch,
            None,
        )
        .await
        .unwrap();
    let d = rolled_out(&c.kube, "api", 4).await;
    eventually(10, "only new pods", || async {
        let pods = app_pods(&c.pods, "api");
        (pods.len() == 4 && pods.iter().all(|p| image(p) == "app:2" && is_ready(p))).then_some(())
    })
    .await;
    let s = seen.lock().unwrap().clone();
    eprintln!("rolling update watcher saw {s:?}");
    assert!(
        s.max_active <= 5,
        "more than replicas + maxSurge pods: {s:?}"
    );
    assert!(
        s.min_ready >= 3,
        "fewer than replicas - maxUnavailable available: {s:?}"
    );
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let rss = owned_replica_sets(&c.kube, "api").await;
    assert_eq!(rss.len(), 2);
    let old = rss
        .iter()
        .find(|rs| rs["metadata"]["name"] == first_rs.as_str())
        .unwrap();
    assert_eq!(old["spec"]["replicas"], 0);

    // `kubectl rollout undo`: the old template goes back into the Deployment.
    let mut template = old["spec"]["template"].clone();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    c.kube
        .patch(deployments(), Some(NS), "api", PatchType::Json, &undo, None)
        .await
        .unwrap();
    let d = rolled_out(&c.kube, "api", 4).await;
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );
    let rss = owned_replica_sets(&c.kube, "api").await;
    assert_eq!(rss.len(), 2, "undo reuses the old replica set");
    let back = rss
        .iter()
        .find(|rs| rs["metadata"]["name"] == first_rs.as_str())
        .unwrap();
    assert_eq!(back["spec"]["replicas"], 4);
    let a = &back["metadata"]["annotations"];
    assert_eq!(a["deployment.kubernetes.io/revision"], "3");
    assert_eq!(a["deployment.kubernetes.io/revision-history"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_never_runs_old_and_new_pods_together() {
    let c = cluster(Duration::from_millis(50)).await;
    let body = deployment_json("batch", 3, "job:1", json!({"type": "Recreate"}));
    c.kube.create(deployments(), Some(NS), body).await.unwrap();
    rolled_out(&c.kube, "batch", 3).await;
    let seen = watch_pods(c.pods.clone(), "batch", "job:1");
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "job:2"}]}}}});
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "batch",
            PatchType::Strategic,
            &patch,
            None,
        )
        .await
        .unwrap();
    rolled_out(&c.kube, "batch", 3).await;
    let pods = app_pods(&c.pods, "batch");
    assert!(pods.iter().all(|p| image(p) == "job:2"));
    let s = seen.lock().unwrap().clone();
    assert!(!s.overlap, "old and new pods existed together: {s:?}");
}

fn replicaset_json(name: &str, replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "x:1"}]},
            },
        },
    })
}

async fn owned_pod_names(c: &Cluster, rs: &str) -> Vec<String> {
    let mut names: Vec<String> = c
        .pods
        .list()
        .into_iter()
        .filter(|p| is_active(p) && controller_of(&p.metadata).is_some_and(|r| r.name == rs))
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_set_replaces_deleted_pods_adopts_orphans_and_releases_strays() {
    let c = cluster(Duration::from_millis(10)).await;
    c.kube
        .create(replicasets(), Some(NS), replicaset_json("rs", 2))
        .await
        .unwrap();
    let first = eventually(10, "2 ready pods", || async {
        let rs = get(&c.kube, replicasets(), "rs").await;
        let names = owned_pod_names(&c, "rs").await;
        (rs["status"]["readyReplicas"] == 2
            && rs["status"]["availableReplicas"] == 2
            && names.len() == 2)
            .then_some(names)
    })
    .await;
    let rs = get(&c.kube, replicasets(), "rs").await;
    assert_eq!(rs["status"]["replicas"], 2);
    assert_eq!(rs["status"]["fullyLabeledReplicas"], 2);
    assert_eq!(rs["status"]["observedGeneration"], 1);

    // A deleted pod is replaced.
    c.kube
        .delete(pods(), Some(NS), &first[0], Deletion::default())
        .await
        .unwrap();
    let second = eventually(10, "a replacement pod", || async {
        let names = owned_pod_names(&c, "rs").await;
        (names.len() == 2 && !names.contains(&first[0])).then_some(names)
    })
    .await;
    assert!(second.contains(&first[1]));

    // An orphan that matches is adopted, and one pod too many goes.
    let orphan = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "stray", "namespace": NS, "labels": {"app": "rs"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]},
    });
    c.kube.create(pods(), Some(NS), orphan).await.unwrap();
    eventually(10, "the orphan adopted and 2 pods left", || async {
        let stray = c.kube.get(pods(), Some(NS), "stray").await.unwrap();
        let adopted = stray.as_ref().is_none_or(|p| {
            p["metadata"]["ownerReferences"][0]["name"] == "rs"
                && p["metadata"]["ownerReferences"][0]["controller"] == true
        });
        let rs = get(&c.kube, replicasets(), "rs").await;
        (adopted && owned_pod_names(&c, "rs").await.len() == 2 && rs["status"]["replicas"] == 2)
            .then_some(())
    })
    .await;

    // A pod whose labels stop matching is released and replaced.
    let keep = owned_pod_names(&c, "rs").await[0].clone();
    let relabel = json!({"metadata": {"labels": {"app": "elsewhere"}}});
    c.kube
        .patch(pods(), Some(NS), &keep, PatchType::Merge, &relabel, None)
        .await
        .unwrap();
    eventually(10, "the relabeled pod released and replaced", || async {
        let p = get(&c.kube, pods(), &keep).await;
        let released = p["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty());
        let names = owned_pod_names(&c, "rs").await;
        (released && names.len() == 2 && !names.contains(&keep)).then_some(())
    })
    .await;
    assert!(events(&c.kube, "SuccessfulDelete")
        .await
        .iter()
        .any(|m| m.starts_with("Deleted pod: ")));
}

async fn set_image(kube: &Kube, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    kube.patch(
        deployments(),
        Some(NS),
        name,
        PatchType::Strategic,
        &patch,
        None,
    )
    .await
    .unwrap();
}

async fn set_replicas(kube: &Kube, name: &str, n: i64) {
    let patch = json!({"spec": {"replicas": n}});
    kube.patch(
        deployments(),
        Some(NS),
        name,
        PatchType::Merge,
        &patch,
        None,
    )
    .await
    .unwrap();
}

/// Waits until the app's ReplicaSets have these `spec.replicas`, by image.
async fn sizes_become(kube: &Kube, app: &str, want: &[(&str, i64)]) {
    let want: Vec<(String, i64)> = want.iter().map(|(i, n)| (i.to_string(), *n)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut got: Vec<(String, i64)> = owned_replica_sets(kube, app)
            .await
            .iter()
            .map(|rs| {
                let image = rs["spec"]["template"]["spec"]["containers"][0]["image"].as_str();
                (
                    image.unwrap_or("").to_string(),
                    rs["spec"]["replicas"].as_i64().unwrap_or(-1),
                )
            })
            .collect();
        got.sort();
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica sets are {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_mid_rollout_is_proportional_and_a_paused_deployment_only_scales() {
    let c = cluster(Duration::from_millis(10)).await;
    let body = deployment_json("mid", 10, "app:1", json!({}));
    c.kube.create(deployments(), Some(NS), body).await.unwrap();
    rolled_out(&c.kube, "mid", 10).await;
    // The new pods never become ready: the rollout stops at old 8 / new 5
    // (maxSurge 3, maxUnavailable 2).
    set_image(&c.kube, "mid", "stuck:2").await;
    sizes_become(&c.kube, "mid", &[("app:1", 8), ("stuck:2", 5)]).await;
    set_replicas(&c.kube, "mid", 15).await;
    sizes_become(&c.kube, "mid", &[("app:1", 12), ("stuck:2", 7)]).await;
    for rs in owned_replica_sets(&c.kube, "mid").await {
        let a = &rs["metadata"]["annotations"];
        assert_eq!(a["deployment.kubernetes.io/desired-replicas"], "15");
        assert_eq!(a["deployment.kubernetes.io/max-replicas"], "19");
    }

    // Paused: a template change rolls nothing out, scaling still works.
    let pause = json!({"spec": {"paused": true}});
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "mid",
            PatchType::Merge,
            &pause,
            None,
        )
        .await
        .unwrap();
    set_image(&c.kube, "mid", "app:3").await;
    set_replicas(&c.kube, "mid", 5).await;
    let d = eventually(10, "the paused deployment observed", || async {
        let d = get(&c.kube, deployments(), "mid").await;
        (d["status"]["observedGeneration"] == d["metadata"]["generation"]
            && condition(&d, "Progressing")["reason"] == "DeploymentPaused")
            .then_some(d)
    })
    .await;
    assert_eq!(condition(&d, "Progressing")["status"], "Unknown");
    // 5 replicas + maxSurge 2 = 7, shared 12:7 among the two old ones.
    sizes_become(&c.kube, "mid", &[("app:1", 4), ("stuck:2", 3)]).await;

    // Resumed: the rollout to app:3 goes through.
    let resume = json!({"spec": {"paused": false}});
    c.kube
        .patch(
            deployments(),
            Some(NS),
            "mid",
            PatchType::Merge,
            &resume,
            None,
        )
        .await
        .unwrap();
    rolled_out(&c.kube, "mid", 5).await;
    sizes_become(
        &c.kube,
        "mid",
        &[("app:1", 0), ("app:3", 5), ("stuck:2", 0)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    let c = cluster(Duration::from_millis(10)).await;
    let mut body = deployment_json("slow", 2, "stuck:1", json!({}));
    body["spec"]["progressDeadlineSeconds"] = json!(1);
    c.kube.create(deployments(), Some(NS), body).await.unwrap();
    let d = eventually(10, "the progress deadline", || async {
        let d = get(&c.kube, deployments(), "slow").await;
        (condition(&d, "Progressing")["reason"] == "ProgressDeadlineExceeded").then_some(d)
    })
    .await;
    let p = condition(&d, "Progressing");
    assert_eq!(p["status"], "False");
    let rs = &owned_replica_sets(&c.kube, "slow").await[0];
    let msg = format!(
        "ReplicaSet \"{}\" has timed out progressing.",
        rs["metadata"]["name"].as_str().unwrap()
    );
    assert_eq!(p["message"], msg.as_str());
    let a = condition(&d, "Available");
    assert_eq!(
        (a["status"].as_str(), a["reason"].as_str()),
        (Some("False"), Some("MinimumReplicasUnavailable"))
    );
}
