//! The log proxy against a small fake agent: a TLS server with a serving
//! certificate from the cluster CA that requires a client certificate, answers
//! `/containerLogs/...` with a body it writes in steps, and reports what it was
//! asked, by whom, and when the master hung up.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::sync::{mpsc, Notify};

use super::*;
use crate::apiserver::route::{self, Route};
use crate::apiserver::Kube;
use crate::auth::{Authenticator, NodeAuthority, Pki, SanSet};

fn q(s: &str) -> Query {
    Query::parse(Some(s))
}

#[test]
fn containers_are_picked_as_upstream_does() {
    let one = json!({"spec": {"containers": [{"name": "a"}]}});
    assert_eq!(pick_container(&one, "p", None).unwrap(), "a");
    assert_eq!(pick_container(&one, "p", Some("a")).unwrap(), "a");
    let e = pick_container(&one, "p", Some("b")).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "container b is not valid for pod p")
    );

    let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                               "initContainers": [{"name": "i"}]}});
    let e = pick_container(&two, "p", None).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
    );
    assert_eq!(pick_container(&two, "p", Some("i")).unwrap(), "i");
    let mut annotated = two.clone();
    annotated["metadata"] =
        json!({"annotations": {"kubectl.kubernetes.io/default-container": "b"}});
    assert_eq!(pick_container(&annotated, "p", None).unwrap(), "b");
}

#[test]
fn the_agent_address_is_the_internal_ip_and_kubelet_port() {
    let node = json!({"status": {
        "addresses": [{"type": "Hostname", "address": "n1"},
                      {"type": "InternalIP", "address": "10.0.0.7"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 11250}}}});
    assert_eq!(
        agent_address(&node, "n1").unwrap().to_string(),
        "10.0.0.7:11250"
    );
    let bare = json!({"status": {"addresses": [{"type": "InternalIP", "address": "fd00::1"}]}});
    assert_eq!(
        agent_address(&bare, "n1").unwrap().to_string(),
        "[fd00::1]:10250"
    );
    let none = json!({"status": {"addresses": [{"type": "Hostname", "address": "n1"}]}});
    let e = agent_address(&none, "n1").unwrap_err();
    assert!(
        e.message.contains("node n1 has no InternalIP"),
        "{}",
        e.message
    );
}

#[test]
fn the_forwarded_query_is_checked_and_normalised() {
    assert_eq!(forward_query(&q("")).unwrap(), "");
    assert_eq!(
        forward_query(&q(
            "container=c&follow=true&tailLines=5&timestamps=1&pretty=true"
        ))
        .unwrap(),
        "?follow=true&timestamps=true&tailLines=5"
    );
    assert_eq!(
        forward_query(&q("sinceTime=2026-11-26T16:00:00Z&previous=false")).unwrap(),
        "?previous=false&sinceTime=2026-11-26T16%3A00%3A00Z"
    );
    assert_eq!(forward_query(&q("tailLines=-1")).unwrap_err().code, 422);
    assert_eq!(forward_query(&q("limitBytes=0")).unwrap_err().code, 422);
    assert_eq!(forward_query(&q("sinceSeconds=x")).unwrap_err().code, 400);
    assert_eq!(
        forward_query(&q("sinceSeconds=5&sinceTime=2026-11-26T16:00:00Z"))
            .unwrap_err()
            .code,
        422
    );
}

/// What the fake agent saw.
#[derive(Debug)]
enum Seen {
    Request {
        path: String,
        client: Option<String>,
    },
    Hangup,
}

/// A fake agent on 127.0.0.1 with a serving certificate signed by `issuer`.
struct FakeAgent {
    port: u16,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// Lets the agent write its second line.
    more: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends `Seen::Hangup` when the response body is dropped.
struct HangupGuard(mpsc::UnboundedSender<Seen>);

impl Drop for HangupGuard {
    fn drop(&mut self) {
        let _ = self.0.send(Seen::Hangup);
    }
}

async fn fake_agent(issuer: &NodeAuthority, ca: CertificateDer<'static>) -> FakeAgent {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let certs = issuer.sign("n1", &csr, &csr).unwrap();
    let cert = rustls_pemfile::certs(&mut certs.serving_cert.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = mpsc::unbounded_channel();
    let more = Arc::new(Notify::new());
    let notify = more.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let client = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| crate::auth::subject_identity(c.as_ref()))
                .map(|(cn, _)| cn);
            let tx = tx.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let path = req.uri().to_string();
                    let _ = tx.send(Seen::Request {
                        path,
                        client: client.clone(),
                    });
                    let guard = HangupGuard(tx.clone());
                    let notify = notify.clone();
                    let lines = stream::unfold(0, move |step| {
                        let notify = notify.clone();
                        async move {
                            match step {
                                0 => Some((Bytes::from("one\n"), 1)),
                                1 => {
                                    notify.notified().await;
                                    Some((Bytes::from("two\n"), 2))
                                }
                                // `follow`: nothing more, until the master hangs up.
                                _ => std::future::pending().await,
                            }
                        }
                    });
                    let body = StreamBody::new(futures_util::StreamExt::map(lines, move |b| {
                        let _keep = &guard;
                        Ok::<_, Infallible>(Frame::data(b))
                    }));
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header(header::CONTENT_TYPE, "text/plain")
                                .body(body)
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    FakeAgent {
        port,
        seen,
        more,
        task,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    server: Arc<Server>,
    kube: Kube,
    nodes: Arc<NodeAuthority>,
    ca: CertificateDer<'static>,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (_, server) = crate::testkit::server_on(dir.path()).await;
    let mut sans = SanSet::new();
    sans.add("127.0.0.1").unwrap();
    let pki_dir = dir.path().join("pki");
    let pki = Pki::load_or_create(&pki_dir, &sans).unwrap();
    let authn = Arc::new(Authenticator::new(&pki_dir, &[pki.ca_der().clone()]).unwrap());
    let nodes = Arc::new(pki.node_authority(authn).unwrap());
    server.set_node_authority(nodes.clone());
    let kube = Kube::new(server.clone(), "test");
    Setup {
        _dir: dir,
        server,
        kube,
        nodes,
        ca: pki.ca_der().clone(),
    }
}

impl Setup {
    async fn node(&self, name: &str, port: u16) {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        let mut created = self
            .kube
            .create(crud_resource("", "nodes"), None, node)
            .await
            .unwrap();
        created["status"] = json!({
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        });
        self.kube
            .update_status(crud_resource("", "nodes"), created)
            .await
            .unwrap();
    }

    async fn pod(&self, name: &str, node: Option<&str>, containers: &[&str]) {
        let containers: Vec<_> = containers
            .iter()
            .map(|c| json!({"name": c, "image": "busybox"}))
            .collect();
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": containers}});
        if let Some(n) = node {
            pod["spec"]["nodeName"] = json!(n);
        }
        self.kube
            .create(crud_resource("", "pods"), Some("default"), pod)
            .await
            .unwrap();
    }

    async fn logs(&self, pod: &str, query: &str) -> Result<Response<Body>, ApiError> {
        let Route::Resource(t) =
            route::parse(&format!("/api/v1/namespaces/default/pods/{pod}/log"))
        else {
            panic!("not a resource route");
        };
        self.server.pod_log(&t, pod, &q(query)).await
    }
}

async fn next_frame(body: &mut Body) -> Option<Bytes> {
    tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("a frame within 10 s")
        .map(|f| f.unwrap().into_data().unwrap())
}

async fn next_seen(agent: &mut FakeAgent) -> Seen {
    tokio::time::timeout(Duration::from_secs(10), agent.seen.recv())
        .await
        .expect("the fake agent saw something within 10 s")
        .unwrap()
}

#[tokio::test]
async fn follow_streams_line_by_line_and_hangs_up_with_the_client() {
    let s = setup().await;
    let mut agent = fake_agent(&s.nodes, s.ca.clone()).await;
    s.node("n1", agent.port).await;
    s.pod("p", Some("n1"), &["c"]).await;

    let resp = s.logs("p", "follow=true&tailLines=5").await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/plain");
    match next_seen(&mut agent).await {
        Seen::Request { path, client } => {
            assert_eq!(path, "/containerLogs/default/p/c?follow=true&tailLines=5");
            assert_eq!(client.as_deref(), Some("bosun:master"));
        }
        other => panic!("{other:?}"),
    }
    let mut body = resp.into_body();
    assert_eq!(next_frame(&mut body).await.unwrap(), "one\n");
    // The second line does not exist yet: the first came through unbuffered.
    agent.more.notify_one();
    assert_eq!(next_frame(&mut body).await.unwrap(), "two\n");
    drop(body);
    assert!(matches!(next_seen(&mut agent).await, Seen::Hangup));
}

#[tokio::test]
async fn errors_are_statuses_like_upstream() {
    let s = setup().await;
    let e = s.logs("nope", "").await.unwrap_err();
    assert_eq!(e.code, 404);

    s.pod("pending", None, &["c"]).await;
    let e = s.logs("pending", "").await.unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "pod pending does not have a host assigned")
    );

    s.pod("two", Some("n1"), &["a", "b"]).await;
    let e = s.logs("two", "").await.unwrap_err();
    assert_eq!(e.code, 400);
    assert!(e.message.contains("choose one of: [a b]"), "{}", e.message);

    // No Node object for the pod's node.
    s.pod("lost", Some("ghost"), &["c"]).await;
    assert_eq!(s.logs("lost", "").await.unwrap_err().code, 404);

    // A node whose agent does not listen.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    s.node("n1", port).await;
    s.pod("p", Some("n1"), &["c"]).await;
    let e = s.logs("p", "").await.unwrap_err();
    assert_eq!(e.code, 500);
    assert!(
        e.message.starts_with(&format!(
            "Get \"https://127.0.0.1:{port}/containerLogs/default/p/c\": dial tcp"
        )),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn an_agent_with_a_certificate_of_another_ca_is_refused() {
    let s = setup().await;
    let other = setup().await;
    let agent = fake_agent(&other.nodes, s.ca.clone()).await;
    s.node("n1", agent.port).await;
    s.pod("p", Some("n1"), &["c"]).await;
    let e = s.logs("p", "").await.unwrap_err();
    assert_eq!(e.code, 500);
    assert!(e.message.contains("tls"), "{}", e.message);
}
