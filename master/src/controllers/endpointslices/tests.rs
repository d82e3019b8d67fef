//! The EndpointSlice controller against a real API server on a temporary store:
//! pods with IPs and Ready conditions become endpoints of slices owned by their
//! Service, packed at most 100 a slice, with conditions that follow readiness;
//! the slices go with the Service.

use super::*;
use crate::controllers::endpoints::tests::{create_pod, create_service, set_status};
use crate::controllers::gc::tests::{eventually, informers, test_kube};
use serde_json::json;

async fn slices(kube: &Kube) -> Vec<EndpointSlice> {
    let res = crud_resource("discovery.k8s.io", "endpointslices");
    let (items, _) = kube.list(res, Some("default")).await.unwrap();
    items
        .into_iter()
        .map(|v| serde_json::from_value::<EndpointSlice>(v).unwrap())
        .filter(|s| {
            s.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(compute::SERVICE_NAME))
                .map(String::as_str)
                == Some("web")
        })
        .collect()
}

/// (address, ready) of every endpoint, sorted.
fn endpoints(slices: &[EndpointSlice]) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = slices
        .iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .map(|e| {
            (
                e.addresses[0].clone(),
                e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn slices_follow_pods_and_go_with_the_service() {
    let (kube, _dir) = test_kube().await;
    create_service(&kube, "web", json!({"app": "web"})).await;
    let n = 120;
    for i in 0..n {
        let name = format!("p{i:03}");
        create_pod(&kube, &name, "web", 8080).await;
        set_status(&kube, &name, &format!("10.244.1.{}", i + 2), true).await;
    }
    create_pod(&kube, "other", "db", 8080).await;
    set_status(&kube, "other", "10.244.2.2", true).await;
    let inf = informers(&kube).await;
    start(&kube, &inf, &Options::default());

    let want: Vec<(String, bool)> = {
        let mut v: Vec<(String, bool)> = (0..n)
            .map(|i| (format!("10.244.1.{}", i + 2), true))
            .collect();
        v.sort();
        v
    };
    let got = eventually("the slices of web", || async {
        let s = slices(&kube).await;
        (endpoints(&s) == want).then_some(s)
    })
    .await;
    assert_eq!(got.len(), 2, "120 endpoints in two slices");
    let svc = kube
        .get(crud_resource("", "services"), Some("default"), "web")
        .await
        .unwrap()
        .unwrap();
    for s in &got {
        assert!(s.endpoints.as_ref().unwrap().len() <= compute::MAX_ENDPOINTS);
        assert_eq!(s.address_type, "IPv4");
        let labels = s.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[compute::MANAGED_BY], compute::CONTROLLER);
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "Service");
        assert_eq!(Some(owner.uid.as_str()), svc["metadata"]["uid"].as_str());
        let port = &s.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.protocol.as_deref()),
            (Some("web"), Some(8080), Some("TCP"))
        );
        let e = &s.endpoints.as_ref().unwrap()[0];
        assert_eq!(e.node_name.as_deref(), Some("n1"));
        assert_eq!(e.target_ref.as_ref().unwrap().kind.as_deref(), Some("Pod"));
    }

    // A pod turning not-ready: its endpoint says so, in place.
    set_status(&kube, "p005", "10.244.1.7", false).await;
    let names = |s: &[EndpointSlice]| {
        let mut v: Vec<String> = s.iter().filter_map(|s| s.metadata.name.clone()).collect();
        v.sort();
        v
    };
    let after = eventually("p005 to be not ready", || async {
        let s = slices(&kube).await;
        endpoints(&s)
            .contains(&("10.244.1.7".to_string(), false))
            .then_some(s)
    })
    .await;
    assert_eq!(names(&after), names(&got), "updated in place");

    kube.delete(
        crud_resource("", "services"),
        Some("default"),
        "web",
        Deletion::default(),
    )
    .await
    .unwrap();
    eventually("the slices to go with the service", || async {
        slices(&kube).await.is_empty().then_some(())
    })
    .await;
}
