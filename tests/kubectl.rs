//! Unmodified kubectl against `bosun master`: every verb the issue names, with the
//! output kubectl prints against a real cluster. Run for kubectl 1.32 (the one on
//! these machines) and 1.20 (Debian's kubernetes-client, unpacked by .ci/run).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: busybox:1.36
        command: ["httpd", "-f"]
        ports: [{containerPort: 80}]
      - name: side
        image: busybox:1.36
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {role: solo}
spec:
  containers:
  - name: c
    image: busybox
"#;

struct Kubectl<'a> {
    m: &'a Master,
    bin: PathBuf,
}

impl Kubectl<'_> {
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.m.kubectl_with(&self.bin, args, None)
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args))
    }

    #[track_caller]
    fn stdin(&self, args: &[&str], input: &str) -> String {
        ok(self.m.kubectl_with(&self.bin, args, Some(input)))
    }

    #[track_caller]
    fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "expected failure of {args:?}: {}",
            stdout(&o)
        );
        stderr(&o)
    }

    fn jsonpath(&self, what: &[&str], path: &str) -> String {
        let arg = format!("jsonpath={path}");
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        args.extend_from_slice(&["-o", &arg]);
        self.ok(&args)
    }
}

fn tmp_file(m: &Master, name: &str, body: &str) -> String {
    let p = m.dir.path().join(name);
    std::fs::write(&p, body).expect("write manifest");
    p.display().to_string()
}

fn drive(bin: &Path) {
    let m = Master::start();
    let k = Kubectl {
        m: &m,
        bin: bin.to_path_buf(),
    };

    // version and discovery
    let v = k.ok(&["version"]);
    assert!(v.contains("v1.32.0"), "{v}");
    let res = k.ok(&["api-resources"]);
    for row in [
        "pods",
        "po",
        "deployments",
        "deploy",
        "apps/v1",
        "leases",
        "endpointslices",
    ] {
        assert!(res.contains(row), "api-resources lacks {row}: {res}");
    }

    // create -f, get in every format
    let deploy = tmp_file(&m, "deploy.yaml", DEPLOY);
    assert_eq!(
        k.ok(&["create", "-f", &deploy]).trim(),
        "deployment.apps/web created"
    );
    let dup = k.fails(&["create", "-f", &deploy]);
    assert!(
        dup.contains("deployments.apps \"web\" already exists"),
        "{dup}"
    );
    let wide = k.ok(&["get", "deploy", "-o", "wide"]);
    assert!(
        wide.contains("READY") && wide.contains("SELECTOR") && wide.contains("app=web"),
        "{wide}"
    );
    let yaml = k.ok(&["get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("revisionHistoryLimit: 10") && yaml.contains("maxSurge: 25%"),
        "{yaml}"
    );
    assert!(yaml.contains("imagePullPolicy: IfNotPresent"), "{yaml}");
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["get", "deploy", "web", "-o", "json"])).unwrap();
    assert_eq!(json["spec"]["replicas"], 2);
    assert_eq!(json["metadata"]["generation"], 1);

    // apply twice: unchanged, then a change
    let applied = tmp_file(
        &m,
        "applied.yaml",
        &DEPLOY.replace("name: web\n", "name: api\n"),
    );
    assert_eq!(
        k.ok(&["apply", "-f", &applied]).trim(),
        "deployment.apps/api created"
    );
    assert_eq!(
        k.ok(&["apply", "-f", &applied]).trim(),
        "deployment.apps/api unchanged"
    );
    let changed = tmp_file(
        &m,
        "changed.yaml",
        &DEPLOY
            .replace("name: web\n", "name: api\n")
            .replace("replicas: 2", "replicas: 4"),
    );
    assert_eq!(
        k.ok(&["apply", "-f", &changed]).trim(),
        "deployment.apps/api configured"
    );
    assert_eq!(
        k.jsonpath(
            &["deploy", "api"],
            "{.spec.replicas} {.metadata.generation}"
        ),
        "4 2"
    );

    // server-side apply: creates, then updates
    let ssa = tmp_file(
        &m,
        "ssa.yaml",
        &DEPLOY.replace("name: web\n", "name: ssa\n"),
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &ssa]).trim(),
        "deployment.apps/ssa serverside-applied"
    );
    let ssa2 = tmp_file(
        &m,
        "ssa2.yaml",
        &DEPLOY
            .replace("name: web\n", "name: ssa\n")
            .replace("replicas: 2", "replicas: 3"),
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &ssa2]).trim(),
        "deployment.apps/ssa serverside-applied"
    );
    assert_eq!(k.jsonpath(&["deploy", "ssa"], "{.spec.replicas}"), "3");
    // kubectl 1.20 shows managed fields by default and has no flag for it.
    let o = k.run(&[
        "get",
        "deploy",
        "ssa",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let managed = if o.status.success() {
        stdout(&o)
    } else {
        k.ok(&["get", "deploy", "ssa", "-o", "json"])
    };
    assert!(
        managed.contains("\"manager\": \"kubectl\"")
            && managed.contains("\"operation\": \"Apply\""),
        "{managed}"
    );

    // replace
    let replaced = DEPLOY.replace(
        "image: busybox:1.36\n        command",
        "image: busybox:1.37\n        command",
    );
    assert_eq!(
        k.stdin(&["replace", "-f", "-"], &replaced).trim(),
        "deployment.apps/web replaced"
    );
    assert_eq!(
        k.jsonpath(
            &["deploy", "web"],
            "{.spec.template.spec.containers[0].image}"
        ),
        "busybox:1.37"
    );

    // patches of every type
    assert_eq!(
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"paused":true}}"#
        ])
        .trim(),
        "deployment.apps/web patched"
    );
    assert_eq!(
        k.ok(&[
            "patch",
            "deploy",
            "web",
            "--type",
            "json",
            "-p",
            r#"[{"op":"replace","path":"/spec/replicas","value":5}]"#
        ])
        .trim(),
        "deployment.apps/web patched"
    );
    assert_eq!(k.ok(&["patch", "deploy", "web", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"side","env":[{"name":"A","value":"1"}]}]}}}}"#]).trim(), "deployment.apps/web patched");
    assert_eq!(
        k.jsonpath(&["deploy", "web"], "{.spec.paused} {.spec.replicas} {.spec.template.spec.containers[1].env[0].value} {.spec.template.spec.containers[0].name}"),
        "true 5 1 app"
    );
    let bad = k.fails(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/spec/nope"}]"#,
    ]);
    assert!(bad.contains("/spec/nope"), "{bad}");

    // label, annotate, set image (only the named container), scale
    assert_eq!(
        k.ok(&["label", "deploy", "web", "tier=front"]).trim(),
        "deployment.apps/web labeled"
    );
    assert_eq!(
        k.ok(&["annotate", "deploy", "web", "note=hello"]).trim(),
        "deployment.apps/web annotated"
    );
    assert_eq!(
        k.ok(&["set", "image", "deploy/web", "app=busybox:1.38"])
            .trim(),
        "deployment.apps/web image updated"
    );
    assert_eq!(
        k.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[*].image} {.metadata.labels.tier} {.metadata.annotations.note}"),
        "busybox:1.38 busybox:1.36 front hello"
    );
    assert_eq!(
        k.ok(&["scale", "deploy", "web", "--replicas=7"]).trim(),
        "deployment.apps/web scaled"
    );
    assert_eq!(k.jsonpath(&["deploy", "web"], "{.spec.replicas}"), "7");

    // selectors
    let pod = tmp_file(&m, "pod.yaml", POD);
    assert_eq!(k.ok(&["create", "-f", &pod]).trim(), "pod/solo created");
    let pods = k.ok(&["get", "pods"]);
    assert!(
        pods.contains("READY") && pods.contains("STATUS") && pods.contains("Pending"),
        "{pods}"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "role=solo", "-o", "name"])
            .trim(),
        "pod/solo"
    );
    assert_eq!(
        k.ok(&["get", "pods", "-l", "role in (other)", "-o", "name"])
            .trim(),
        ""
    );
    assert_eq!(
        k.ok(&["get", "deploy", "-l", "tier=front", "-o", "name"])
            .trim(),
        "deployment.apps/web"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "--field-selector",
            "metadata.name=solo",
            "-o",
            "name"
        ])
        .trim(),
        "pod/solo"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "pods",
            "--field-selector",
            "status.phase=Running",
            "-o",
            "name"
        ])
        .trim(),
        ""
    );
    let badsel = k.fails(&["get", "pods", "--field-selector", "spec.bogus=1"]);
    assert!(badsel.contains("field label not supported"), "{badsel}");

    // describe
    let d = k.ok(&["describe", "deploy", "web"]);
    assert!(
        d.contains("Name:") && d.contains("web") && d.contains("RollingUpdateStrategy:"),
        "{d}"
    );
    let d = k.ok(&["describe", "pod", "solo"]);
    assert!(d.contains("Status:") && d.contains("Pending"), "{d}");

    // get -w sees a new object
    let mut watch = Command::new(&k.bin)
        .arg("--kubeconfig")
        .arg(m.kubeconfig())
        .args(["get", "configmaps", "-w", "-o", "name"])
        .env("HOME", m.dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get -w");
    let (tx, rx) = mpsc::channel();
    let out = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Created after the watch is running: seen as a new line.
    eventually(20, "the watch to start", || {
        k.stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: b}\n",
        );
        Some(())
    });
    let seen = eventually(20, "configmap/watched on the watch", || {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| l.contains("configmap/watched"))
    });
    assert!(seen.contains("watched"));
    let _ = watch.kill();
    let _ = watch.wait();

    // errors as kubectl prints them
    let nf = k.fails(&["get", "pod", "nope"]);
    assert!(
        nf.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{nf}"
    );

    // delete waits and returns
    assert_eq!(
        k.ok(&["delete", "deploy", "web"]).trim(),
        "deployment.apps \"web\" deleted"
    );
    assert_eq!(
        k.ok(&["delete", "pod", "solo"]).trim(),
        "pod \"solo\" deleted"
    );
    k.stdin(
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n",
    );
    k.stdin(
        &["create", "-n", "scratch", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inside}\ndata: {x: z}\n",
    );
    assert_eq!(
        k.ok(&["delete", "namespace", "scratch"]).trim(),
        "namespace \"scratch\" deleted"
    );
    let gone = k.fails(&["get", "namespace", "scratch"]);
    assert!(gone.contains("not found"), "{gone}");
    let gone = k.fails(&["get", "configmap", "inside", "-n", "scratch"]);
    assert!(gone.contains("not found"), "{gone}");
}

#[test]
fn kubectl_1_32_drives_the_master() {
    let bin = kubectl_bin();
    if require_tool(&bin, "kubectl 1.32 is on these machines") {
        drive(&bin);
    }
}

#[test]
fn kubectl_1_20_drives_the_master() {
    let bin = kubectl_120_bin();
    if require_tool(&bin, ".ci/run unpacks Debian's kubernetes-client there") {
        drive(&bin);
    }
}
