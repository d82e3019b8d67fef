//! kubectl's imperative generators against `bosun master`: `create namespace`,
//! `configmap`, `secret generic`, `deployment`, `service clusterip` and
//! `serviceaccount` print what they print against a real cluster and store the
//! objects they describe. kubectl 1.32 sends these bodies as Kubernetes protobuf
//! (`application/vnd.kubernetes.protobuf`); kubectl 1.20 sends JSON. Both must work.

mod common;
use common::*;
use serde_json::Value;
use std::path::Path;

/// Runs `bin` with `args`, asserting success; returns stdout.
#[track_caller]
fn run(m: &Master, bin: &Path, args: &[&str]) -> String {
    ok(m.kubectl_with(bin, args, None))
}

#[track_caller]
fn get_json(m: &Master, bin: &Path, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend_from_slice(&["-n", "n1", "-o", "json"]);
    let out = run(m, bin, &args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what:?} -o json: {e}: {out}"))
}

fn generators(bin: &Path) {
    let m = Master::start();
    let created = [
        (vec!["create", "namespace", "n1"], "namespace/n1 created"),
        (
            vec!["create", "configmap", "c", "--from-literal=a=b", "-n", "n1"],
            "configmap/c created",
        ),
        (
            vec![
                "create",
                "secret",
                "generic",
                "s",
                "--from-literal=p=q",
                "-n",
                "n1",
            ],
            "secret/s created",
        ),
        (
            vec![
                "create",
                "deployment",
                "d",
                "--image=busybox:1.36",
                "--replicas=2",
                "-n",
                "n1",
            ],
            "deployment.apps/d created",
        ),
        (
            vec![
                "create",
                "service",
                "clusterip",
                "svc",
                "--tcp=80:8080",
                "-n",
                "n1",
            ],
            "service/svc created",
        ),
        (
            vec!["create", "serviceaccount", "sa", "-n", "n1"],
            "serviceaccount/sa created",
        ),
    ];
    for (args, line) in &created {
        assert_eq!(run(&m, bin, args).trim(), *line, "kubectl {args:?}");
    }

    let ns = run(
        &m,
        bin,
        &["get", "namespace", "n1", "-o", "jsonpath={.status.phase}"],
    );
    assert_eq!(ns, "Active");

    let cm = get_json(&m, bin, &["configmap", "c"]);
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}), "{cm}");
    assert_eq!(cm["metadata"]["namespace"], "n1", "{cm}");

    let secret = get_json(&m, bin, &["secret", "s"]);
    assert_eq!(secret["data"]["p"], "cQ==", "base64 of q: {secret}");
    assert_eq!(secret["type"], "Opaque", "{secret}");

    let deploy = get_json(&m, bin, &["deployment", "d"]);
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 2, "{deploy}");
    assert_eq!(spec["selector"]["matchLabels"]["app"], "d", "{deploy}");
    assert_eq!(
        spec["template"]["metadata"]["labels"]["app"], "d",
        "{deploy}"
    );
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "busybox", "{deploy}");
    assert_eq!(container["image"], "busybox:1.36", "{deploy}");
    // The server's defaults apply as they would to a JSON body.
    assert_eq!(spec["strategy"]["type"], "RollingUpdate", "{deploy}");
    assert_eq!(
        spec["template"]["spec"]["restartPolicy"], "Always",
        "{deploy}"
    );

    let svc = get_json(&m, bin, &["service", "svc"]);
    let port = &svc["spec"]["ports"][0];
    assert_eq!(port["name"], "80-8080", "{svc}");
    assert_eq!(port["port"], 80, "{svc}");
    assert_eq!(port["targetPort"], 8080, "{svc}");
    assert_eq!(port["protocol"], "TCP", "{svc}");
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc}");
    assert_eq!(svc["spec"]["selector"]["app"], "svc", "{svc}");
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
    assert!(ip.starts_with("10."), "a cluster IP is allocated: {svc}");

    let sa = get_json(&m, bin, &["serviceaccount", "sa"]);
    assert_eq!(sa["metadata"]["name"], "sa", "{sa}");

    // Creating again is refused as upstream refuses it, whatever the encoding.
    let again = m.kubectl_with(bin, &["create", "configmap", "c", "-n", "n1"], None);
    assert!(!again.status.success(), "a second create must fail");
    let err = stderr(&again);
    assert!(err.contains("configmaps \"c\" already exists"), "{err}");
}

#[test]
fn kubectl_1_32_generators() {
    let bin = kubectl_bin();
    if require_tool(&bin, "kubectl 1.32 is on these machines") {
        generators(&bin);
    }
}

#[test]
fn kubectl_1_20_generators() {
    let bin = kubectl_120_bin();
    if require_tool(&bin, ".ci/run unpacks Debian's kubernetes-client there") {
        generators(&bin);
    }
}
