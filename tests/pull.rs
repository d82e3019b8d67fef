//! End-to-end: image pulls from a real registry. Debian's `docker-registry`
//! serves on an address of a test host (inside its network namespace); images
//! are built from busybox-static with umoci and pushed with skopeo (Docker
//! schema 2 with gzip layers, OCI with zstd layers, a multi-arch index, a
//! private repository behind htpasswd); a master and `bosun agent` in the same
//! host run pods from them. What the image-pull issue's "Done when" asks: pods
//! run, a corrupted blob is refused, a wrong password gives ErrImagePull with
//! the registry's answer, two pods of one image fetch it once, and a registry
//! killed mid-pull fails the pull cleanly and the retry succeeds.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::host::{busybox_rootfs, can_run_pods, Agent, TestHost};
use common::{bosun_bin, eventually, ok, require_tool, stdout, Master};
use serde_json::{json, Value};

/// Root and the tools, or a printed skip (a failure under CI).
fn can_run(what: &str) -> bool {
    can_run_pods(what)
        && require_tool(
            Path::new("/usr/bin/docker-registry"),
            "the registry (docker-registry)",
        )
        && require_tool(Path::new("/usr/bin/skopeo"), "skopeo pushes the images")
        && require_tool(Path::new("/usr/bin/umoci"), "umoci builds the images")
        && require_tool(
            Path::new("/usr/bin/htpasswd"),
            "htpasswd (apache2-utils) makes bcrypt passwords",
        )
}

/// A `docker-registry` process serving `addr` inside a test host; killed on drop.
struct Registry {
    child: Option<Child>,
    addr: String,
    storage: PathBuf,
    config: PathBuf,
    log: PathBuf,
    netns: PathBuf,
}

impl Registry {
    fn start(host: &TestHost, dir: &Path, port: u16, htpasswd: Option<&Path>) -> Registry {
        let addr = format!("{}:{port}", host.ip);
        let storage = dir.join(format!("registry-{port}"));
        std::fs::create_dir_all(&storage).unwrap();
        let auth = match htpasswd {
            Some(p) => format!(
                "auth: {{htpasswd: {{realm: bosun-test, path: {}}}}}\n",
                p.display()
            ),
            None => String::new(),
        };
        let config = dir.join(format!("registry-{port}.yml"));
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: info, accesslog: {{disabled: false}}}}\n\
                 storage: {{filesystem: {{rootdirectory: {}}}, delete: {{enabled: true}}}}\n\
                 http: {{addr: \"{addr}\"}}\n{auth}",
                storage.display()
            ),
        )
        .unwrap();
        let mut r = Registry {
            child: None,
            addr,
            storage,
            config,
            log: dir.join(format!("registry-{port}.log")),
            netns: host.netns_path(),
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .args(["--", "docker-registry", "serve"])
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let url = format!("http://{}/v2/", self.addr);
        eventually(20, "the registry to answer", || {
            let out = Command::new("nsenter")
                .arg(format!("--net={}", self.netns.display()))
                .args([
                    "--",
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &url,
                ])
                .output()
                .ok()?;
            matches!(stdout(&out).as_str(), "200" | "401").then_some(())
        });
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Completed GETs of blob `digest` in the access log.
    fn blob_gets(&self, digest: &str) -> usize {
        self.log_text()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains(&format!("/blobs/{digest} ")))
            .count()
    }

    /// The file the registry keeps blob `digest` in.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// The Go name of this machine's architecture, and another one.
fn arches() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("arm64", "amd64"),
        _ => ("amd64", "arm64"),
    }
}

/// Adds image `tag` to the OCI layout `layout` (made if missing): a busybox
/// root with `/IMAGE` = `marker` and `extra` bytes of random data in /blob.
fn build(work: &Path, layout: &Path, tag: &str, marker: &str, arch: &str, extra: usize) {
    if !layout.exists() {
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(layout));
    }
    let image = format!("{}:{tag}", layout.display());
    run(Command::new("umoci").args(["new", "--image", &image]));
    let bundle = work.join(format!("bundle-{tag}"));
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    busybox_rootfs(&bundle.join("rootfs"), marker);
    if extra > 0 {
        let mut data = vec![0u8; extra];
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut f, &mut data).unwrap();
        std::fs::write(bundle.join("rootfs/blob"), data).unwrap();
    }
    run(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    run(Command::new("umoci").args([
        "config",
        "--image",
        &image,
        "--config.cmd",
        "/bin/sh",
        "--architecture",
        arch,
    ]));
    std::fs::remove_dir_all(&bundle).unwrap();
}

/// `skopeo copy` from the layout into the registry, inside the test host.
fn push(host: &TestHost, src: &str, dest: &str, extra: &[&str]) {
    run(host
        .command("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .args(extra)
        .arg(src)
        .arg(format!("docker://{dest}")));
}

/// Makes `multi` in the layout: an OCI index of `amd` (this machine's arch)
/// and `other` (another arch).
fn make_index(layout: &Path, this: (&str, &str), other: (&str, &str)) {
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let find = |tag: &str| -> Value {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let entry = |(tag, arch): (&str, &str)| {
        let d = find(tag);
        json!({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
               "platform": {"os": "linux", "architecture": arch}})
    };
    // The other architecture first: picking the first entry would be wrong.
    let multi = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(other), entry(this)]});
    let bytes = serde_json::to_vec(&multi).unwrap();
    let out = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            std::io::Write::write_all(c.stdin.as_mut().unwrap(), &bytes)?;
            c.wait_with_output()
        })
        .unwrap();
    let hex = stdout(&out).split_whitespace().next().unwrap().to_string();
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": format!("sha256:{hex}"), "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// The layer digests of `repo:tag` as the registry serves the manifest.
fn layers(
    host: &TestHost,
    reg: &Registry,
    repo: &str,
    tag: &str,
    creds: Option<&str>,
) -> Vec<String> {
    let mut c = host.command("curl");
    c.args(["-sS", "-H"])
        .arg("Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json");
    if let Some(u) = creds {
        c.args(["-u", u]);
    }
    let body = run(c.arg(format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr)));
    let m: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("manifest: {body}"));
    m["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("manifest without layers: {body}"))
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn pod(name: &str, node: &str, image: &str, policy: Option<&str>, secret: Option<&str>) -> String {
    let policy = policy.map_or(String::new(), |p| format!("    imagePullPolicy: {p}\n"));
    let secret = secret.map_or(String::new(), |s| {
        format!("  imagePullSecrets:\n  - name: {s}\n")
    });
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
         terminationGracePeriodSeconds: 1\n{secret}  containers:\n  - name: c\n    image: {image}\n{policy}    \
         command: [\"/bin/sh\", \"-c\", \"cat /IMAGE; echo; exec sleep 3600\"]\n"
    )
}

/// Waits for pod `name` to run and checks that it runs `marker`'s image.
fn wait_running_with(master: &Master, name: &str, marker: &str) -> Value {
    let p = eventually(90, &format!("pod {name} to run"), || {
        let p = master.pod_json(name)?;
        (p["status"]["phase"] == "Running").then_some(p)
    });
    let logs = eventually(30, &format!("the output of {name}"), || {
        let text = stdout(&master.kubectl(&["logs", name]));
        (!text.is_empty()).then_some(text)
    });
    assert_eq!(logs.trim(), marker, "pod {name} runs the wrong image");
    p
}

/// The waiting state of the pod's first container, once its reason is one of `reasons`.
fn wait_waiting(master: &Master, name: &str, reasons: &[&str]) -> Value {
    eventually(90, &format!("pod {name} to wait with {reasons:?}"), || {
        let p = master.pod_json(name)?;
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        reasons.iter().any(|r| w["reason"] == *r).then_some(w)
    })
}

/// Events about pod `name`, as (reason, message, source component).
fn events_of(master: &Master, name: &str) -> Vec<(String, String, String)> {
    let out = master.kubectl(&["get", "events", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == name && e["involvedObject"]["kind"] == "Pod")
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
                e["source"]["component"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn image_list(agent: &Agent) -> String {
    run(Command::new(bosun_bin())
        .args(["image", "ls", "--data-dir"])
        .arg(agent.data_dir()))
}

#[test]
fn pods_run_from_registry_images_verified_authenticated_and_fetched_once() {
    if !can_run("the image pull e2e test") {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("bosun-pull")
        .tempdir()
        .unwrap();
    let w = work.path();
    let host = TestHost::new();
    let public = Registry::start(&host, w, 5000, None);
    let htpasswd = w.join("htpasswd");
    let hp = run(Command::new("htpasswd").args(["-Bbn", "alice", "s3cret"]));
    std::fs::write(&htpasswd, hp).unwrap();
    let private = Registry::start(&host, w, 5001, Some(&htpasswd));

    // Images.
    let (this_arch, other_arch) = arches();
    let layout = w.join("layout");
    build(w, &layout, "gz", "image-gzip", this_arch, 0);
    build(w, &layout, "zst", "image-zstd", this_arch, 0);
    build(w, &layout, "amd", "image-multi-right-arch", this_arch, 0);
    build(w, &layout, "arm", "image-multi-wrong-arch", other_arch, 0);
    build(w, &layout, "shared", "image-shared", this_arch, 0);
    build(w, &layout, "secret", "image-private", this_arch, 0);
    build(w, &layout, "corrupt", "image-corrupt", this_arch, 0);
    make_index(&layout, ("amd", this_arch), ("arm", other_arch));
    let l = layout.display().to_string();
    let p = &public.addr;
    push(
        &host,
        &format!("oci:{l}:gz"),
        &format!("{p}/app/gzip:1"),
        &["--format", "v2s2"],
    );
    push(
        &host,
        &format!("oci:{l}:zst"),
        &format!("{p}/app/zstd:1"),
        &["--dest-compress-format", "zstd"],
    );
    push(
        &host,
        &format!("oci:{l}:multi"),
        &format!("{p}/app/multi:1"),
        &["--all"],
    );
    push(
        &host,
        &format!("oci:{l}:shared"),
        &format!("{p}/app/shared:latest"),
        &[],
    );
    push(
        &host,
        &format!("oci:{l}:corrupt"),
        &format!("{p}/app/corrupt:1"),
        &[],
    );
    push(
        &host,
        &format!("oci:{l}:secret"),
        &format!("{}/team/private:1", private.addr),
        &["--dest-creds", "alice:s3cret"],
    );
    let zstd_manifest = run(host
        .command("curl")
        .args([
            "-sS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("http://{p}/v2/app/zstd/manifests/1")));
    assert!(zstd_manifest.contains("tar+zstd"), "{zstd_manifest}");
    // Corrupt the corrupt image's layer in the registry's storage.
    let bad_layer = layers(&host, &public, "app/corrupt", "1", None).remove(0);
    let file = public.blob_file(&bad_layer);
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, data).unwrap();

    let master = Master::start_in(&host, &[]);
    let agent = Agent::start_with(
        &master,
        &host,
        "node-a",
        &[
            "--insecure-registry",
            &public.addr,
            "--insecure-registry",
            &private.addr,
        ],
    );
    master.wait_node_ready("node-a");
    let secret = |name: &str, password: &str| {
        ok(master.kubectl(&[
            "create",
            "secret",
            "docker-registry",
            name,
            &format!("--docker-server={}", private.addr),
            "--docker-username=alice",
            &format!("--docker-password={password}"),
        ]));
    };
    secret("good", "s3cret");
    secret("bad", "wrong");

    let shared_layer = layers(&host, &public, "app/shared", "latest", None).remove(0);
    let n = "node-a";
    master.apply(&pod("gzip", n, &format!("{p}/app/gzip:1"), None, None));
    master.apply(&pod(
        "zstd",
        n,
        &format!("{p}/app/zstd:1"),
        Some("Always"),
        None,
    ));
    master.apply(&pod("multi", n, &format!("{p}/app/multi:1"), None, None));
    master.apply(&pod(
        "private",
        n,
        &format!("{}/team/private:1", private.addr),
        None,
        Some("good"),
    ));
    master.apply(&pod(
        "denied",
        n,
        &format!("{}/team/private:1", private.addr),
        Some("Always"),
        Some("bad"),
    ));
    master.apply(&pod("broken", n, &format!("{p}/app/corrupt:1"), None, None));
    // Two pods of one image at once (":latest" means imagePullPolicy Always).
    let shared = format!("{p}/app/shared");
    let two = format!(
        "{}---\n{}",
        pod("shared-a", n, &shared, None, None),
        pod("shared-b", n, &shared, None, None)
    );
    master.apply(&two);

    let gz = wait_running_with(&master, "gzip", "image-gzip");
    let image_id = gz["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default();
    assert!(
        image_id.starts_with(&format!("{p}/app/gzip@sha256:")),
        "imageID {image_id}"
    );
    wait_running_with(&master, "zstd", "image-zstd");
    wait_running_with(&master, "multi", "image-multi-right-arch");
    wait_running_with(&master, "private", "image-private");
    wait_running_with(&master, "shared-a", "image-shared");
    wait_running_with(&master, "shared-b", "image-shared");
    assert_eq!(
        public.blob_gets(&shared_layer),
        1,
        "the shared image's layer was fetched more than once:\n{}",
        public.log_text()
    );

    // Events: Pulling and Pulled with duration and size, from the kubelet.
    let ev = eventually(30, "Pulling and Pulled events of gzip", || {
        let ev = events_of(&master, "gzip");
        let pulled = ev.iter().any(|(r, _, _)| r == "Pulled");
        (pulled && ev.iter().any(|(r, _, _)| r == "Pulling")).then_some(ev)
    });
    let (_, msg, source) = ev.iter().find(|(r, _, _)| r == "Pulled").unwrap();
    assert_eq!(source, "kubelet");
    assert!(
        msg.starts_with(&format!("Successfully pulled image \"{p}/app/gzip:1\" in "))
            && msg.contains("s. Image size: ")
            && msg.ends_with(" bytes."),
        "{msg}"
    );

    // A wrong password: ErrImagePull (then ImagePullBackOff) with the registry's answer.
    let w = wait_waiting(&master, "denied", &["ErrImagePull", "ImagePullBackOff"]);
    let message = w["message"].as_str().unwrap_or_default();
    assert!(message.contains("401 Unauthorized"), "{w}");
    let w = wait_waiting(&master, "denied", &["ImagePullBackOff"]);
    assert!(
        w["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Back-off pulling image"),
        "{w}"
    );
    assert!(events_of(&master, "denied")
        .iter()
        .any(|(r, m, _)| r == "Failed" && m.contains("401")));

    // A corrupted blob is refused and leaves no image behind.
    let w = wait_waiting(&master, "broken", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        w["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not match its digest"),
        "{w}"
    );
    let images = image_list(&agent);
    assert!(!images.contains("app/corrupt"), "{images}");
    assert!(images.contains("app/zstd"), "{images}");
}

#[test]
fn a_registry_killed_mid_pull_fails_cleanly_and_the_retry_succeeds() {
    if !can_run("the image pull e2e test") {
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("bosun-pull")
        .tempdir()
        .unwrap();
    let w = work.path();
    let host = TestHost::new();
    let mut registry = Registry::start(&host, w, 5000, None);
    let layout = w.join("layout");
    // Random data: 24 MB that gzip cannot shrink.
    build(w, &layout, "big", "image-big", arches().0, 24 << 20);
    let image = format!("{}/app/big:1", registry.addr);
    push(&host, &format!("oci:{}:big", layout.display()), &image, &[]);

    let master = Master::start_in(&host, &[]);
    let agent = Agent::start_with(
        &master,
        &host,
        "node-a",
        &["--insecure-registry", &registry.addr],
    );
    master.wait_node_ready("node-a");
    // Slow the host's loopback (where registry traffic goes) to ~5 MB/s so the
    // pull takes seconds; removed before the retry.
    let shape = |verb: &str, qdisc: &[&str]| {
        run(Command::new("ip")
            .args([
                "netns", "exec", &host.name, "tc", "qdisc", verb, "dev", "lo", "root",
            ])
            .args(qdisc));
    };
    shape(
        "add",
        &["tbf", "rate", "40mbit", "burst", "64kb", "latency", "500ms"],
    );

    master.apply(&pod("big", "node-a", &image, None, None));
    // A layer being unpacked shows up in the store's tmp/: then kill the registry.
    let tmp = agent.data_dir().join("content/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let busy = std::fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("layer-"))
            })
            .unwrap_or(false);
        if busy {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pull never started: {}",
            agent.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    registry.kill();

    let w = wait_waiting(&master, "big", &["ErrImagePull", "ImagePullBackOff"]);
    assert!(
        w["message"]
            .as_str()
            .unwrap_or_default()
            .contains("app/big"),
        "{w}"
    );
    let images = image_list(&agent);
    assert!(
        !images.contains("app/big"),
        "a cut-off pull left an image: {images}"
    );
    // No half layer in the store: every layer directory is complete.
    for e in std::fs::read_dir(agent.data_dir().join("content/layers"))
        .unwrap()
        .flatten()
    {
        assert!(
            e.path().join("layer.json").exists(),
            "incomplete layer {:?}",
            e.path()
        );
    }

    shape("del", &[]);
    registry.spawn();
    wait_running_with(&master, "big", "image-big");
    let ev = events_of(&master, "big");
    assert!(ev.iter().any(|(r, _, _)| r == "Failed"), "{ev:?}");
    assert!(ev.iter().any(|(r, _, _)| r == "Pulled"), "{ev:?}");
}
