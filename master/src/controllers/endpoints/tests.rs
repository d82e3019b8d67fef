//! The endpoints controller against a real API server on a temporary store:
//! pods with IPs and Ready conditions (set by the test, as an agent would) show
//! up in the Service's Endpoints, move between ready and not-ready, and the
//! Endpoints go with the Service; selectorless services are left alone.

use super::*;
use crate::controllers::gc::tests::{eventually, informers, test_kube};
use k8s_openapi::api::core::v1::Endpoints;
use serde_json::{json, Value};

pub(crate) async fn create_pod(kube: &Kube, name: &str, app: &str, port: i32) {
    let pods = crud_resource("", "pods");
    kube.create(
        pods,
        Some("default"),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "labels": {"app": app}},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx",
                        "ports": [{"name": "http", "containerPort": port}]}]}}),
    )
    .await
    .unwrap();
}

/// Sets what an agent reports: the pod's IP and its Ready condition.
pub(crate) async fn set_status(kube: &Kube, name: &str, ip: &str, ready: bool) {
    let pods = crud_resource("", "pods");
    let status = if ready { "True" } else { "False" };
    kube.patch(
        pods,
        Some("default"),
        name,
        crate::apiserver::PatchType::Merge,
        &json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                "conditions": [{"type": "Ready", "status": status}]}}),
        Some("status"),
    )
    .await
    .unwrap();
}

pub(crate) async fn create_service(kube: &Kube, name: &str, selector: Value) {
    let services = crud_resource("", "services");
    kube.create(
        services,
        Some("default"),
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "labels": {"tier": "front"}},
               "spec": {"selector": selector,
                        "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}),
    )
    .await
    .unwrap();
}

async fn endpoints(kube: &Kube, name: &str) -> Option<Endpoints> {
    kube.get(crud_resource("", "endpoints"), Some("default"), name)
        .await
        .unwrap()
        .map(|v| serde_json::from_value(v).unwrap())
}

/// (ready ip:port, not-ready ip:port), sorted.
fn addresses(e: &Endpoints) -> (Vec<String>, Vec<String>) {
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for s in e.subsets.iter().flatten() {
        for p in s.ports.iter().flatten() {
            for a in s.addresses.iter().flatten() {
                ready.push(format!("{}:{}", a.ip, p.port));
            }
            for a in s.not_ready_addresses.iter().flatten() {
                not_ready.push(format!("{}:{}", a.ip, p.port));
            }
        }
    }
    ready.sort();
    not_ready.sort();
    (ready, not_ready)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn endpoints_follow_pod_readiness_and_the_service() {
    let (kube, _dir) = test_kube().await;
    create_service(&kube, "web", json!({"app": "web"})).await;
    create_service(&kube, "manual", json!(null)).await;
    let eps = crud_resource("", "endpoints");
    let manual = kube
        .create(
            eps,
            Some("default"),
            json!({"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "manual"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 9}]}]}),
        )
        .await
        .unwrap();
    create_pod(&kube, "a", "web", 8080).await;
    create_pod(&kube, "b", "web", 8081).await;
    create_pod(&kube, "c", "web", 8080).await;
    create_pod(&kube, "other", "db", 8080).await;
    set_status(&kube, "a", "10.244.1.2", true).await;
    set_status(&kube, "b", "10.244.1.3", true).await;
    set_status(&kube, "c", "10.244.1.4", false).await;
    set_status(&kube, "other", "10.244.1.5", true).await;

    let inf = informers(&kube).await;
    start(&kube, &inf, &Options::default());
    let want = (
        strs(&["10.244.1.2:8080", "10.244.1.3:8081"]),
        strs(&["10.244.1.4:8080"]),
    );
    let e = eventually("endpoints of web", || async {
        endpoints(&kube, "web")
            .await
            .filter(|e| addresses(e) == want)
    })
    .await;
    let a = e
        .subsets
        .iter()
        .flatten()
        .flat_map(|s| s.addresses.iter().flatten())
        .find(|a| a.ip == "10.244.1.2")
        .unwrap();
    assert_eq!(a.node_name.as_deref(), Some("n1"));
    let r = a.target_ref.as_ref().unwrap();
    assert_eq!(
        (r.kind.as_deref(), r.name.as_deref(), r.namespace.as_deref()),
        (Some("Pod"), Some("a"), Some("default"))
    );
    assert!(r.uid.is_some());
    assert_eq!(
        e.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("tier"))
            .map(String::as_str),
        Some("front")
    );

    // Nothing changed: a sync writes nothing.
    let t = ServicePods::new(inf.pods.clone());
    tracker::feed(t.clone(), &inf, Queue::new());
    eventually("the tracker to see the pods", || async {
        (t.pods_of("default/web").len() == 3).then_some(())
    })
    .await;
    sync(&kube, &inf, &t, "default/web").await.unwrap();
    let again = endpoints(&kube, "web").await.unwrap();
    assert_eq!(again.metadata.resource_version, e.metadata.resource_version);

    // A pod turning not-ready moves to notReadyAddresses.
    set_status(&kube, "a", "10.244.1.2", false).await;
    let want = (
        strs(&["10.244.1.3:8081"]),
        strs(&["10.244.1.2:8080", "10.244.1.4:8080"]),
    );
    eventually("a to be not ready", || async {
        endpoints(&kube, "web")
            .await
            .filter(|e| addresses(e) == want)
    })
    .await;

    // A deleted pod leaves.
    kube.delete(
        crud_resource("", "pods"),
        Some("default"),
        "c",
        Deletion {
            grace_period: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let want = (strs(&["10.244.1.3:8081"]), strs(&["10.244.1.2:8080"]));
    eventually("c to leave", || async {
        endpoints(&kube, "web")
            .await
            .filter(|e| addresses(e) == want)
    })
    .await;

    // The selectorless service's Endpoints are the user's.
    let m = endpoints(&kube, "manual").await.unwrap();
    assert_eq!(
        m.metadata.resource_version.as_deref(),
        manual["metadata"]["resourceVersion"].as_str()
    );

    kube.delete(
        crud_resource("", "services"),
        Some("default"),
        "web",
        Deletion::default(),
    )
    .await
    .unwrap();
    eventually("the endpoints to go with the service", || async {
        endpoints(&kube, "web").await.is_none().then_some(())
    })
    .await;
}
