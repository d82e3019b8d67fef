//! An agent joins a real master: `agent::join::ensure_credentials` with the
//! master's join token gets a node certificate that kubectl and the client can
//! use, a wrong token fails with a line saying so, a second start reuses the
//! credentials without the token, and `agent::node::register` makes a Node that
//! `kubectl get nodes -o wide` shows Ready with its address.

mod common;

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use agent::join::{ensure_credentials, JoinError};
use agent::node::{self, HostPaths, NodeConfig};
use common::{eventually, kubectl_bin, require_tool, Master};

fn loopback() -> Vec<IpAddr> {
    vec!["127.0.0.1".parse().unwrap()]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn kubectl_as(kubeconfig: &Path, home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(home.join("kube-cache"))
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run kubectl")
}

#[test]
fn an_agent_joins_reuses_its_credentials_and_registers_ready() {
    let master = Master::start();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent");
    let token_file = master.data_dir().join("join-token");

    let creds = rt
        .block_on(ensure_credentials(
            &master.url(),
            &token_file,
            None,
            &data,
            "node-a",
            &loopback(),
        ))
        .expect("join");
    assert!(creds.joined);
    for f in [
        "ca.crt",
        "node.crt",
        "node.key",
        "serving.crt",
        "serving.key",
    ] {
        assert_eq!(mode(&data.join("pki").join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&data.join("pki")), 0o700);
    let kubeconfig = data.join("agent.kubeconfig");
    assert_eq!(mode(&kubeconfig), 0o600);

    // The node's own kubeconfig works with the client.
    let client = api::client::Client::from_kubeconfig(&kubeconfig).unwrap();
    let nodes = rt
        .block_on(client.list("/api/v1/nodes"))
        .expect("list nodes as the node");
    assert_eq!(nodes["kind"], "NodeList");

    // A second start reuses what is on disk, without reading the token.
    let again = rt
        .block_on(ensure_credentials(
            &master.url(),
            &dir.path().join("no-such-token"),
            None,
            &data,
            "node-a",
            &loopback(),
        ))
        .expect("reuse");
    assert!(!again.joined);
    assert_eq!(again.client_cert_pem, creds.client_cert_pem);
    assert_eq!(again.serving_cert_pem, creds.serving_cert_pem);

    // Registration, then the heartbeat's Lease.
    let config = NodeConfig {
        name: "node-a".into(),
        node_ips: loopback(),
        port: 10250,
        data_dir: data.clone(),
        paths: HostPaths::default(),
    };
    let registered = rt
        .block_on(node::register(&creds.client().unwrap(), &config))
        .expect("register");
    assert!(!registered.uid.is_empty());
    let heartbeat = rt.spawn(node::run_heartbeat(
        creds.client().unwrap(),
        config.clone(),
        registered,
    ));
    // Registering again (an agent restart) keeps the Node.
    rt.block_on(node::register(&creds.client().unwrap(), &config))
        .expect("register again");

    let admin = api::client::Client::from_kubeconfig(&master.kubeconfig()).unwrap();
    eventually(20, "the node's Lease", || {
        rt.block_on(
            admin.get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-a"),
        )
        .ok()
        .filter(|l| l["spec"]["holderIdentity"] == "node-a")
    });
    let node = rt.block_on(admin.get("/api/v1/nodes/node-a")).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-a"
    );
    assert!(node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap()
        .contains("+bosun"));
    assert_ne!(node["status"]["capacity"]["memory"], "0Ki");

    if require_tool(&kubectl_bin(), "kubectl is how users see nodes") {
        let out = master.kubectl(&["get", "nodes", "-o", "wide", "--no-headers"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("node-a "))
            .unwrap_or_else(|| panic!("no node-a in {text}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "Ready", "{line}");
        assert_eq!(cols[5], "127.0.0.1", "INTERNAL-IP in {line}");
        assert!(line.contains("bosun://"), "CONTAINER-RUNTIME in {line}");

        // kubectl with the node's kubeconfig: authenticated as the node.
        let out = kubectl_as(&kubeconfig, dir.path(), &["get", "nodes"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    heartbeat.abort();
}

#[test]
fn a_wrong_token_fails_clearly() {
    let master = Master::start();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let token = std::fs::read_to_string(master.data_dir().join("join-token")).unwrap();
    let token = token.trim();

    // The right id with the wrong secret: the CA's HMAC does not match.
    let wrong_secret = dir.path().join("wrong-secret");
    std::fs::write(&wrong_secret, format!("{}.0000000000000000\n", &token[..6])).unwrap();
    let err = rt
        .block_on(ensure_credentials(
            &master.url(),
            &wrong_secret,
            None,
            &dir.path().join("a"),
            "node-b",
            &loopback(),
        ))
        .unwrap_err();
    assert!(matches!(err, JoinError::CaMismatch { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "the CA sent by {0} does not match the join token: the token is wrong, or {0} is not a bosun master",
            master.url()
        )
    );
    assert!(!dir.path().join("a/pki/node.crt").exists());

    // An id the master does not know.
    let unknown = dir.path().join("unknown");
    std::fs::write(&unknown, "zzzzzz.0123456789abcdef\n").unwrap();
    let err = rt
        .block_on(ensure_credentials(
            &master.url(),
            &unknown,
            None,
            &dir.path().join("b"),
            "node-b",
            &loopback(),
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("knows no join token with id \"zzzzzz\""),
        "{err}"
    );

    // The CA file given explicitly, and an invalid node name refused by the master.
    let err = rt
        .block_on(ensure_credentials(
            &master.url(),
            &master.data_dir().join("join-token"),
            Some(&master.data_dir().join("tls/ca.crt")),
            &dir.path().join("c"),
            "Bad_Name",
            &loopback(),
        ))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("refused to join node Bad_Name: invalid node name"),
        "{err}"
    );
}

#[test]
fn only_join_tokens_may_join() {
    let master = Master::start();
    let rt = runtime();
    let admin = api::client::Client::from_kubeconfig(&master.kubeconfig()).unwrap();
    let body = serde_json::json!({"nodeName": "x", "clientCsr": "", "servingCsr": ""});
    let (status, bytes) = rt
        .block_on(admin.request(api::client::Method::POST, "/bosun/v1/join", Some(&body)))
        .unwrap();
    assert_eq!(status.as_u16(), 403, "{}", String::from_utf8_lossy(&bytes));
    let status: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["kind"], "Status");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("system:bootstrappers"));

    // cacerts needs no credentials but a known token id.
    let (status, _) = rt
        .block_on(admin.request(
            api::client::Method::GET,
            "/bosun/v1/cacerts?tokenId=zzzzzz",
            None,
        ))
        .unwrap();
    assert_eq!(status.as_u16(), 404);
}

/// A stand-in for the agent's :10250 (the real server is built elsewhere): TLS
/// with the serving certificate the node got at join, client certificates of
/// the cluster CA required; answers one log line and reports each request line.
async fn fake_agent(
    creds: &agent::join::Credentials,
) -> (
    u16,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pem = |text: &str| {
        rustls_pemfile::certs(&mut text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem(&creds.ca_pem) {
        roots.add(ca).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = rustls_pemfile::private_key(&mut creds.serving_key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem(&creds.serving_cert_pem), key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let text = String::from_utf8_lossy(&head);
            let _ = tx.send(text.lines().next().unwrap_or("").to_string());
            let body = "hello from node-l\n";
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(resp.as_bytes()).await;
            let _ = tls.shutdown().await;
        }
    });
    (port, rx, task)
}

#[test]
fn kubectl_logs_reach_the_agent_through_the_master() {
    if !require_tool(&kubectl_bin(), "kubectl logs is what is tested") {
        return;
    }
    let master = Master::start();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("agent");
    let creds = rt
        .block_on(ensure_credentials(
            &master.url(),
            &master.data_dir().join("join-token"),
            None,
            &data,
            "node-l",
            &loopback(),
        ))
        .expect("join");
    let (port, mut seen, task) = rt.block_on(fake_agent(&creds));
    let config = NodeConfig {
        name: "node-l".into(),
        node_ips: loopback(),
        port,
        data_dir: data.clone(),
        paths: HostPaths::default(),
    };
    rt.block_on(node::register(&creds.client().unwrap(), &config))
        .expect("register");
    let pod = "apiVersion: v1
kind: Pod
metadata: {name: p, namespace: default}
spec:
  nodeName: node-l
  containers: [{name: c, image: busybox}]
";
    let out = master.kubectl_with(&kubectl_bin(), &["apply", "-f", "-"], Some(pod));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = master.kubectl(&["logs", "p", "--tail=3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from node-l\n");
    let line = rt
        .block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), seen.recv()).await
        })
        .unwrap()
        .unwrap();
    assert_eq!(line, "GET /containerLogs/default/p/c?tailLines=3 HTTP/1.1");

    // An agent that is gone: the user sees the master's error.
    task.abort();
    let _ = rt.block_on(task);
    let out = master.kubectl(&["logs", "p"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "https://127.0.0.1:{port}/containerLogs/default/p/c"
        )),
        "{err}"
    );
}
