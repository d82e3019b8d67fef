//! Garbage collection and endpoints through the real binary and unmodified
//! kubectl: `kubectl delete --cascade=foreground|background|orphan` of an owner
//! with dependents, and a Service whose pods (status set as an agent would) show
//! up in its Endpoints and EndpointSlices.

mod common;
use common::*;

fn uid(m: &Master, what: &str) -> String {
    ok(m.kubectl(&["get", what, "-o", "jsonpath={.metadata.uid}"]))
}

/// An owner ConfigMap and two dependents that reference it (one blocking).
fn family(m: &Master, owner: &str) {
    m.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {owner}}}\n"
    ));
    let u = uid(m, &format!("configmap/{owner}"));
    for (dep, block) in [("a", true), ("b", false)] {
        m.apply(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {owner}-{dep}\n  ownerReferences:\n  - {{apiVersion: v1, kind: ConfigMap, name: {owner}, uid: {u}, blockOwnerDeletion: {block}}}\n"
            ),
        );
    }
}

fn exists(m: &Master, name: &str) -> bool {
    m.kubectl(&["get", "configmap", name, "-o", "name"])
        .status
        .success()
}

#[test]
fn kubectl_cascading_deletes() {
    if !require_tool(&kubectl_bin(), "kubectl drives the API") {
        return;
    }
    let m = Master::start();

    // Foreground: kubectl waits until the owner is gone, which is after its dependents.
    family(&m, "fg");
    ok(m.kubectl(&[
        "delete",
        "configmap",
        "fg",
        "--cascade=foreground",
        "--timeout=60s",
    ]));
    assert!(!exists(&m, "fg"));
    assert!(
        !exists(&m, "fg-a"),
        "the blocking dependent went before its owner"
    );
    eventually(30, "fg-b to be collected", || {
        (!exists(&m, "fg-b")).then_some(())
    });

    // Background: the owner at once, the dependents afterwards.
    family(&m, "bg");
    ok(m.kubectl(&["delete", "configmap", "bg"]));
    eventually(30, "bg's dependents to be collected", || {
        (!exists(&m, "bg-a") && !exists(&m, "bg-b")).then_some(())
    });

    // Orphan: the dependents stay, without the reference.
    family(&m, "or");
    ok(m.kubectl(&[
        "delete",
        "configmap",
        "or",
        "--cascade=orphan",
        "--timeout=60s",
    ]));
    assert!(!exists(&m, "or"));
    for dep in ["or-a", "or-b"] {
        let refs = ok(m.kubectl(&[
            "get",
            "configmap",
            dep,
            "-o",
            "jsonpath={.metadata.ownerReferences}",
        ]));
        assert_eq!(
            refs.trim(),
            "",
            "{dep} keeps no reference to its deleted owner"
        );
    }
}

#[test]
fn service_endpoints_and_slices_list_ready_pods() {
    if !require_tool(&kubectl_bin(), "kubectl drives the API") {
        return;
    }
    let m = Master::start();
    m.apply(
        r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: web}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, labels: {app: web}}
spec:
  nodeName: n1
  containers: [{name: c, image: nginx, ports: [{name: web, containerPort: 8080}]}]
"#,
    );
    ok(m.kubectl(&[
        "patch", "pod", "web-1", "--subresource=status", "--type=merge", "-p",
        r#"{"status":{"phase":"Running","podIP":"10.244.7.2","podIPs":[{"ip":"10.244.7.2"}],"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ]));
    eventually(30, "the endpoints of web", || {
        let out = stdout(&m.kubectl(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ]));
        (out.trim() == "10.244.7.2:8080").then_some(())
    });
    eventually(30, "the endpointslice of web", || {
        let out = stdout(&m.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=web",
            "-o", "jsonpath={.items[0].endpoints[0].addresses[0]} {.items[0].endpoints[0].conditions.ready}"]));
        (out.trim() == "10.244.7.2 true").then_some(())
    });
    ok(m.kubectl(&["delete", "service", "web"]));
    eventually(30, "the slices to go with the service", || {
        let out = ok(m.kubectl(&["get", "endpointslices", "-o", "name"]));
        (!out.contains("web-")).then_some(())
    });
}
