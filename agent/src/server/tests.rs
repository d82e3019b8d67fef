//! Both servers end to end over loopback: a fake [`NodeView`], a fake /proc and
//! /sys, plain HTTP for the read-only port, and TLS with rcgen-made CAs and
//! certificates for the authenticated one.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::*;

const T0: u64 = 1_700_000_000;

struct FakeView {
    pods: Mutex<Vec<Pod>>,
    calls: AtomicU64,
}

impl NodeView for FakeView {
    fn pods(&self) -> Vec<Pod> {
        self.pods.lock().unwrap().clone()
    }

    /// Each call is two seconds after the previous, with one more CPU second.
    fn pod_stats(&self) -> Vec<(PodRef, PodStats)> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        vec![(
            PodRef {
                namespace: "default".into(),
                name: "web".into(),
                uid: "uid-1".into(),
            },
            PodStats {
                containers: vec![ContainerStats {
                    name: "app".into(),
                    timestamp: SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + 2 * n),
                    cpu_usage_ns: n * 1_000_000_000,
                    memory_usage_bytes: 3000,
                    memory_working_set_bytes: 2000,
                }],
            },
        )]
    }

    fn node_name(&self) -> String {
        "node-a".into()
    }
}

fn pod(running: bool) -> Pod {
    let state = if running {
        serde_json::json!({"running": {"startedAt": "2024-05-01T10:00:00Z"}})
    } else {
        serde_json::json!({"terminated": {"exitCode": 0}})
    };
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-1"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
        "status": {
            "phase": "Running",
            "startTime": "2024-05-01T09:59:59Z",
            "containerStatuses": [{
                "name": "app", "ready": true, "restartCount": 0, "image": "busybox",
                "imageID": "", "state": state,
            }],
        },
    }))
    .unwrap()
}

fn write(root: &Path, rel: &str, body: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

fn fake_host(root: &Path) -> Host {
    write(root, "proc/cpuinfo", "processor : 0\nphysical id : 0\ncore id : 0\n\nprocessor : 1\nphysical id : 0\ncore id : 1\n");
    write(
        root,
        "proc/meminfo",
        "MemTotal: 2048 kB\nMemFree: 1024 kB\nInactive(file): 512 kB\n",
    );
    write(
        root,
        "proc/stat",
        "cpu 100 0 100 500 0 0 0 0\nbtime 1700000000\n",
    );
    write(root, "proc/vmstat", "pgfault 5\npgmajfault 1\n");
    write(
        root,
        "proc/self/stat",
        "1 (bosun) S 0 0 0 0 0 0 0 0 0 0 30 20 0 0 0 0 1 0 100 0 0\n",
    );
    write(root, "proc/self/status", "Name: bosun\nVmRSS: 4096 kB\n");
    write(root, "proc/sys/kernel/random/boot_id", "boot-1\n");
    write(root, "etc/machine-id", "machine-1\n");
    Host {
        proc: root.join("proc"),
        sys: root.join("sys"),
        etc: root.join("etc"),
        filesystems: vec!["/".into()],
        statfs: Some(Arc::new(|_: &Path| {
            Some(FsStats {
                capacity_bytes: 1000,
                available_bytes: 400,
                used_bytes: 600,
                inodes: 100,
                inodes_free: 90,
            })
        })),
    }
}

struct Running {
    addr: std::net::SocketAddr,
    ctx: Arc<Context>,
    view: Arc<FakeView>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("server stopped after shutdown")
            .unwrap();
    }
}

async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let view = Arc::new(FakeView {
        pods: Mutex::new(vec![pod(true)]),
        calls: AtomicU64::new(0),
    });
    let ctx = Context::new(view.clone(), fake_host(dir.path()), dir.path().join("logs"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let c = ctx.clone();
    let task = tokio::spawn(async move {
        match tls {
            None => serve_read_only(listener, c, shutdown).await,
            Some(tls) => serve_authenticated(listener, c, tls, shutdown).await,
        }
    });
    Running {
        addr,
        ctx,
        view,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

/// Sends one request over `io`; returns the response with its body unread.
async fn request<I>(
    io: I,
    method: &str,
    path: &str,
) -> Result<http::Response<Incoming>, hyper::Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "agent")
        .body(Empty::<Bytes>::new())
        .unwrap();
    sender.send_request(req).await
}

async fn get_plain(addr: std::net::SocketAddr, method: &str, path: &str) -> (StatusCode, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let resp = request(tcp, method, path).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test]
async fn read_only_port_serves_every_endpoint() {
    let s = start(None).await;
    let (code, body) = get_plain(s.addr, "GET", "/healthz").await;
    assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));

    let (code, body) = get_plain(s.addr, "GET", "/pods").await;
    assert_eq!(code, StatusCode::OK);
    let list = json(&body);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");
    assert_eq!(list["items"][0]["kind"], "Pod");
    assert_eq!(list["items"][0]["status"]["phase"], "Running");

    for path in ["/spec", "/spec/"] {
        let (code, body) = get_plain(s.addr, "GET", path).await;
        assert_eq!(code, StatusCode::OK);
        let spec = json(&body);
        assert_eq!(spec["num_cores"], 2);
        assert_eq!(spec["memory_capacity"], 2048 * 1024);
        assert_eq!(spec["machine_id"], "machine-1");
        assert_eq!(spec["boot_id"], "boot-1");
        assert!(spec["topology"].is_array());
        assert!(spec["filesystems"].is_array());
        assert!(spec["network_devices"].is_array());
    }

    let (code, body) = get_plain(s.addr, "GET", "/stats/summary").await;
    assert_eq!(code, StatusCode::OK);
    let first = json(&body);
    let node = &first["node"];
    assert_eq!(node["nodeName"], "node-a");
    assert_eq!(node["startTime"], "2023-11-14T22:13:20Z");
    assert_eq!(node["cpu"]["usageCoreNanoSeconds"], 2_000_000_000u64);
    assert_eq!(node["memory"]["workingSetBytes"], 512 * 1024);
    assert_eq!(node["memory"]["availableBytes"], 1536 * 1024);
    assert_eq!(node["fs"]["capacityBytes"], 1000);
    assert_eq!(node["runtime"]["imageFs"]["availableBytes"], 400);
    let pod = &first["pods"][0];
    assert_eq!(pod["podRef"]["uid"], "uid-1");
    assert_eq!(pod["startTime"], "2024-05-01T09:59:59Z");
    assert_eq!(pod["containers"][0]["name"], "app");
    assert_eq!(pod["containers"][0]["startTime"], "2024-05-01T10:00:00Z");
    assert_eq!(pod["containers"][0]["memory"]["workingSetBytes"], 2000);
    assert!(pod["containers"][0]["cpu"].get("usageNanoCores").is_none());
    // The second sample is 2 s and 1 CPU second later: half a core.
    let (_, body) = get_plain(s.addr, "GET", "/stats/summary").await;
    let second = json(&body);
    let pod = &second["pods"][0];
    assert_eq!(pod["containers"][0]["cpu"]["usageNanoCores"], 500_000_000);
    assert_eq!(pod["cpu"]["usageNanoCores"], 500_000_000);
    assert_eq!(pod["cpu"]["usageCoreNanoSeconds"], 1_000_000_000);

    let (code, body) = get_plain(s.addr, "GET", "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("\nkubelet_running_pods 1\n"), "{body}");
    assert!(body.contains("kubelet_running_containers{container_state=\"running\"} 1\n"));
    assert!(body.contains("\nprocess_resident_memory_bytes 4194304\n"));
    assert!(body.contains("\nprocess_cpu_seconds_total 0.5\n"));

    let (code, body) = get_plain(s.addr, "GET", "/metrics/resource").await;
    assert_eq!(code, StatusCode::OK);
    assert!(body.contains("# TYPE container_cpu_usage_seconds_total counter\n"));
    assert!(body.contains(
        "container_cpu_usage_seconds_total{container=\"app\",namespace=\"default\",pod=\"web\"} 2 1700000004000\n"
    ), "{body}");
    assert!(body.contains("container_start_time_seconds{container=\"app\",namespace=\"default\",pod=\"web\"} 1714557600 "));
    assert!(body.contains("\nnode_memory_working_set_bytes 524288 "));

    // Nothing changes state here.
    assert_eq!(
        get_plain(s.addr, "POST", "/pods").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get_plain(s.addr, "DELETE", "/healthz").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        get_plain(s.addr, "GET", "/containerLogs/default/web/app")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_plain(s.addr, "POST", "/exec/default/web/app").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_plain(s.addr, "POST", "/run/default/web/app").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get_plain(s.addr, "GET", "/configz").await.0,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

/// A CA and certificates signed by it.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// (cert PEM, key PEM) for `cn` in group `system:masters`, with `sans`.
    fn leaf(&self, cn: &str, sans: &[&str]) -> (String, String) {
        self.leaf_in(cn, Some("system:masters"), sans)
    }

    /// (cert PEM, key PEM) for `cn` in `group`, with `sans`.
    fn leaf_in(&self, cn: &str, group: Option<&str>, sans: &[&str]) -> (String, String) {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(g) = group {
            params.distinguished_name.push(DnType::OrganizationName, g);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn client_config(ca: &Pki, client: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.ca.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn tls_request(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<http::Response<Incoming>, String> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    request(tls, "GET", path).await.map_err(|e| e.to_string())
}

async fn body_text(resp: http::Response<Incoming>) -> String {
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(b.to_vec()).unwrap()
}

fn cri(text: &str) -> String {
    format!("2024-05-01T10:00:00.5Z stdout F {text}\n")
}

#[tokio::test]
async fn authenticated_port_requires_a_cluster_client_cert_and_streams_logs() {
    let cluster = Pki::new("bosun-ca");
    let other = Pki::new("other-ca");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = cluster.leaf("node-a", &["127.0.0.1", "localhost"]);
    let ca_path = dir.path().join("ca.crt");
    std::fs::write(&ca_path, cluster.ca.pem()).unwrap();
    std::fs::write(dir.path().join("serving.crt"), cert).unwrap();
    std::fs::write(dir.path().join("serving.key"), key).unwrap();
    let tls = server_config(
        &ca_path,
        &dir.path().join("serving.crt"),
        &dir.path().join("serving.key"),
    )
    .unwrap();
    let s = start(Some(tls)).await;

    // No client certificate, or one from another CA: refused.
    let anonymous = tls_request(s.addr, client_config(&cluster, None), "/healthz").await;
    assert!(anonymous.is_err(), "served without a client certificate");
    let stranger = client_config(&cluster, Some(other.leaf("bosun:master", &[])));
    let r = tls_request(s.addr, stranger, "/healthz").await;
    assert!(r.is_err(), "served a certificate of another CA");

    // A node's certificate is the cluster's, but nodes may not read each other.
    let node = client_config(
        &cluster,
        Some(cluster.leaf_in("system:node:b", Some("system:nodes"), &[])),
    );
    let r = tls_request(s.addr, node, "/containerLogs/default/web/app")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let good = client_config(&cluster, Some(cluster.leaf("bosun:master", &[])));
    let r = tls_request(s.addr, good.clone(), "/healthz").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_text(r).await, "ok");
    let r = tls_request(s.addr, good.clone(), "/pods").await.unwrap();
    assert_eq!(
        json(&body_text(r).await)["items"][0]["metadata"]["uid"],
        "uid-1"
    );

    // Not found, with the kubelet's kind of message.
    let r = tls_request(s.addr, good.clone(), "/containerLogs/default/nope/app")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(body_text(r).await.contains("\"nope\" does not exist"));
    let r = tls_request(s.addr, good.clone(), "/containerLogs/default/web/sidecar")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(body_text(r)
        .await
        .contains("container \"sidecar\" is not valid for pod \"web\""));
    let r = tls_request(s.addr, good.clone(), "/containerLogs/default/web/app")
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(body_text(r).await.contains("has no log file"));
    let r = tls_request(
        s.addr,
        good.clone(),
        "/containerLogs/default/web/app?tailLines=x",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The log of a running container, followed while it grows.
    let log_dir = s.ctx.log_root.join("default_web_uid-1/app");
    write(&log_dir, "0.log", &cri("zero"));
    write(&log_dir, "1.log", &format!("{}{}", cri("one"), cri("two")));
    let r = tls_request(
        s.addr,
        good.clone(),
        "/containerLogs/default/web/app?previous=true",
    )
    .await
    .unwrap();
    assert_eq!(body_text(r).await, "zero\n");
    let r = tls_request(
        s.addr,
        good.clone(),
        "/containerLogs/default/web/app?tailLines=1&timestamps=true",
    )
    .await
    .unwrap();
    assert_eq!(body_text(r).await, "2024-05-01T10:00:00.5Z two\n");

    let r = tls_request(
        s.addr,
        good.clone(),
        "/containerLogs/default/web/app?follow=true",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.into_body();
    let mut seen = String::new();
    let mut recv_until = async |want: &str, seen: &mut String| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !seen.contains(want) {
            let frame = tokio::time::timeout_at(deadline, body.frame())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {want:?}, got {seen:?}"))
                .expect("body ended early")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                seen.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    };
    recv_until("two\n", &mut seen).await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log_dir.join("1.log"))
        .unwrap();
    f.write_all(cri("three").as_bytes()).unwrap();
    recv_until("three\n", &mut seen).await;
    assert_eq!(seen, "one\ntwo\nthree\n");
    assert_eq!(s.ctx.active_log_streams(), 1);
    // The client goes away: the stream ends on the agent.
    drop(body);
    wait_for(
        || s.ctx.active_log_streams() == 0,
        "the log stream to end after the client left",
    )
    .await;

    // Follow of a container that stops: the body ends once it is reported stopped.
    let r = tls_request(
        s.addr,
        good.clone(),
        "/containerLogs/default/web/app?follow=true",
    )
    .await
    .unwrap();
    *s.view.pods.lock().unwrap() = vec![pod(false)];
    let text = tokio::time::timeout(Duration::from_secs(10), body_text(r))
        .await
        .expect("follow ended when the container stopped");
    assert_eq!(text, "one\ntwo\nthree\n");
    s.stop().await;
}

async fn wait_for(cond: impl Fn() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
