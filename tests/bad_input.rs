//! Bad input gets a clear Kubernetes `Status` with the upstream code and reason, and
//! loses nothing: unauthenticated requests, bodies that do not parse, invalid
//! objects, oversized bodies, unknown resources and wrong methods.

mod common;
use common::*;

fn raw_status(m: &Master, args: &[&str], body: Option<&str>) -> (bool, String) {
    let o = m.kubectl_with(&kubectl_bin(), args, body);
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn bad_requests_get_upstream_status_errors() {
    let m = Master::start();
    if !require_tool(&kubectl_bin(), "kubectl drives the API") {
        return;
    }

    // Credentials it does not know: 401.
    let o = std::process::Command::new(kubectl_bin())
        .args([
            "--server",
            &m.url(),
            "--insecure-skip-tls-verify",
            "--token",
            "bogus.token",
            "get",
            "namespaces",
        ])
        .env("HOME", m.dir.path())
        .env("KUBECONFIG", m.dir.path().join("none"))
        .output()
        .expect("kubectl");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("You must be logged in to the server"),
        "{}",
        stderr(&o)
    );

    // A body that does not parse: 400 BadRequest.
    let (okay, out) = raw_status(
        &m,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some("{not json"),
    );
    assert!(!okay && out.contains("BadRequest"), "{out}");

    // Wrong type for a field: 400.
    let (okay, out) = raw_status(
        &m,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "-f",
            "-",
        ],
        Some(
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":"nope"}}"#,
        ),
    );
    assert!(!okay && out.contains("BadRequest"), "{out}");

    // Invalid objects: 422 with the field named.
    let (okay, out) = raw_status(
        &m,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  containers: [{name: c, image: busybox}]\n"),
    );
    assert!(
        !okay && out.contains("is invalid") && out.contains("metadata.name"),
        "{out}"
    );
    let (okay, out) = raw_status(
        &m,
        &["create", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: noimage}\nspec:\n  containers: [{name: c}]\n"),
    );
    assert!(
        !okay && out.contains("spec.containers[0].image: Required value"),
        "{out}"
    );

    // A namespace that does not exist: 404.
    let (okay, out) = raw_status(
        &m,
        &["create", "-n", "nowhere", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"),
    );
    assert!(
        !okay && out.contains("namespaces \"nowhere\" not found"),
        "{out}"
    );

    // Over 3 MiB: 413.
    let big = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"big"}},"data":{{"a":"{}"}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 10)
    );
    let (okay, out) = raw_status(
        &m,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/configmaps",
            "-f",
            "-",
        ],
        Some(&big),
    );
    assert!(
        !okay && (out.contains("too large") || out.contains("RequestEntityTooLarge")),
        "{}",
        &out[..out.len().min(300)]
    );

    // Unknown resource: 404; wrong method: 405.
    let (okay, out) = raw_status(&m, &["get", "--raw", "/api/v1/widgets"], None);
    assert!(!okay && out.contains("NotFound"), "{out}");
    let (okay, out) = raw_status(&m, &["delete", "--raw", "/version"], None);
    assert!(!okay && out.contains("MethodNotAllowed"), "{out}");

    // Nothing was lost or half-written, and the server still answers.
    let cms = ok(m.kubectl(&["get", "configmaps", "-o", "name"]));
    assert!(!cms.contains("big"), "{cms}");
    let pods = ok(m.kubectl(&["get", "pods", "-A", "-o", "name"]));
    assert_eq!(pods.trim(), "");
    ok(m.kubectl(&["get", "--raw", "/readyz"]));
}
