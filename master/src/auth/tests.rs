//! Tests across the module: PKI lifecycle on disk, real TLS handshakes with
//! tokio-rustls, and (when installed) kubectl and Python's ssl as clients.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

fn sans_for(listen: &str, advertise: Option<&str>) -> SanSet {
    SanSet::for_master(
        listen.parse().unwrap(),
        advertise.map(|a| a.parse().unwrap()),
        Some("testhost"),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(pki: &Pki) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca_der().clone()).unwrap();
    Arc::new(roots)
}

/// Verifies the serving certificate for `name` the way a TLS client would.
fn verify_server(pki: &Pki, name: &str) -> Result<(), rustls::Error> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(pki), provider())
        .build()
        .unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    verifier
        .verify_server_cert(pki.server_cert_der(), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn first_start_creates_files_with_modes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pki = Pki::load_or_create(&data, &sans_for("0.0.0.0:6443", None)).unwrap();
    assert_eq!(mode(&data), 0o700);
    let tls = data.join(TLS_DIR);
    for name in ["ca", "server", "admin"] {
        assert_eq!(mode(&tls.join(format!("{name}.key"))), 0o600, "{name}.key");
        assert!(tls.join(format!("{name}.crt")).is_file(), "{name}.crt");
    }
    let ca_pem = String::from_utf8(read(&tls.join("ca.crt"))).unwrap();
    assert_eq!(ca_pem, pki.ca_pem());
    let (_, ca) = x509_parser::parse_x509_certificate(pki.ca_der()).unwrap();
    assert!(ca.is_ca());
    let cn = ca
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap();
    assert_eq!(cn, CA_COMMON_NAME);
    let years = (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp())
        / (365 * 24 * 3600);
    assert!(years >= 9, "CA valid for {years} years");
    assert_eq!(
        certs::subject_identity(&parse_pem(&pki.admin().cert_pem)),
        Some(("admin".to_string(), vec!["system:masters".to_string()]))
    );
}

fn parse_pem(pem: &str) -> CertificateDer<'static> {
    certs::parse_cert_pem(Path::new("x"), pem.as_bytes()).unwrap()
}

#[test]
fn server_cert_verifies_for_loopback_names_not_others() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &sans_for("0.0.0.0:6443", Some("10.9.8.7"))).unwrap();
    for name in [
        "127.0.0.1",
        "::1",
        "localhost",
        "testhost",
        "10.9.8.7",
        "kubernetes.default.svc",
    ] {
        verify_server(&pki, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert!(verify_server(&pki, "10.9.8.6").is_err());
    assert!(verify_server(&pki, "example.com").is_err());
    assert!(verify_server(&pki, "0.0.0.0").is_err());
}

#[test]
fn second_start_reuses_everything() {
    let dir = tempfile::tempdir().unwrap();
    let sans = sans_for("127.0.0.1:6443", None);
    Pki::load_or_create(dir.path(), &sans).unwrap();
    let tls = dir.path().join(TLS_DIR);
    let names = [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "admin.crt",
        "admin.key",
    ];
    let before: Vec<Vec<u8>> = names.iter().map(|n| read(&tls.join(n))).collect();
    let pki = Pki::load_or_create(dir.path(), &sans).unwrap();
    let after: Vec<Vec<u8>> = names.iter().map(|n| read(&tls.join(n))).collect();
    assert_eq!(before, after);
    verify_server(&pki, "127.0.0.1").unwrap();
}

#[test]
fn new_san_reissues_only_the_serving_cert() {
    let dir = tempfile::tempdir().unwrap();
    Pki::load_or_create(dir.path(), &sans_for("0.0.0.0:6443", Some("10.0.0.1"))).unwrap();
    let tls = dir.path().join(TLS_DIR);
    let unchanged = ["ca.crt", "ca.key", "server.key", "admin.crt", "admin.key"];
    let before: Vec<Vec<u8>> = unchanged.iter().map(|n| read(&tls.join(n))).collect();
    let server_before = read(&tls.join("server.crt"));

    let pki = Pki::load_or_create(dir.path(), &sans_for("0.0.0.0:6443", Some("10.0.0.2"))).unwrap();
    let after: Vec<Vec<u8>> = unchanged.iter().map(|n| read(&tls.join(n))).collect();
    assert_eq!(before, after);
    assert_ne!(read(&tls.join("server.crt")), server_before);
    verify_server(&pki, "10.0.0.2").unwrap();
    verify_server(&pki, "10.0.0.1").expect("old names are kept");

    // The re-issued certificate satisfies the same request on the next start.
    let server_now = read(&tls.join("server.crt"));
    Pki::load_or_create(dir.path(), &sans_for("0.0.0.0:6443", Some("10.0.0.2"))).unwrap();
    assert_eq!(read(&tls.join("server.crt")), server_now);
}

#[test]
fn corrupt_files_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let sans = sans_for("127.0.0.1:6443", None);
    Pki::load_or_create(dir.path(), &sans).unwrap();
    let tls = dir.path().join(TLS_DIR);

    let server_crt = tls.join("server.crt");
    std::fs::write(&server_crt, "not a certificate").unwrap();
    let err = Pki::load_or_create(dir.path(), &sans).unwrap_err();
    assert!(
        err.to_string().contains(&server_crt.display().to_string()),
        "{err}"
    );

    std::fs::remove_file(&server_crt).unwrap();
    Pki::load_or_create(dir.path(), &sans).expect("a missing serving cert is re-issued");

    let ca_key = tls.join("ca.key");
    std::fs::write(
        &ca_key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Pki::load_or_create(dir.path(), &sans).unwrap_err();
    assert!(
        err.to_string().contains(&ca_key.display().to_string()),
        "{err}"
    );

    std::fs::remove_file(&ca_key).unwrap();
    let err = Pki::load_or_create(dir.path(), &sans).unwrap_err();
    assert!(matches!(err, AuthError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("ca.key is missing"), "{err}");
}

#[test]
fn serving_cert_from_another_ca_is_reissued() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    let sans = sans_for("127.0.0.1:6443", None);
    Pki::load_or_create(dir.path(), &sans).unwrap();
    Pki::load_or_create(other.path(), &sans).unwrap();
    let tls = dir.path().join(TLS_DIR);
    let other_tls = other.path().join(TLS_DIR);
    for f in ["server.crt", "server.key"] {
        std::fs::copy(other_tls.join(f), tls.join(f)).unwrap();
    }
    let pki = Pki::load_or_create(dir.path(), &sans).unwrap();
    verify_server(&pki, "127.0.0.1").expect("re-issued from this CA");
    assert_eq!(
        read(&tls.join("server.key")),
        read(&other_tls.join("server.key"))
    );
}

#[test]
fn swapped_key_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let sans = sans_for("127.0.0.1:6443", None);
    Pki::load_or_create(dir.path(), &sans).unwrap();
    let tls = dir.path().join(TLS_DIR);
    std::fs::copy(tls.join("admin.key"), tls.join("server.key")).unwrap();
    let err = Pki::load_or_create(dir.path(), &sans).unwrap_err();
    assert!(matches!(err, AuthError::KeyMismatch { .. }), "{err}");
}

#[test]
fn token_auth_sees_tokens_created_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let join = ensure_join_token(dir.path()).unwrap();
    let auth = Authenticator::new(dir.path(), &[])
        .unwrap()
        .with_token_recheck_interval(Duration::ZERO);
    let user = auth
        .authenticate(None, Some(&format!("Bearer {join}")))
        .unwrap();
    assert_eq!(user.name, format!("system:bootstrap:{}", &join[..6]));
    assert_eq!(user.groups, ["system:bootstrappers"]);

    let fresh = create_join_token(dir.path()).unwrap();
    let user = auth
        .authenticate(None, Some(&format!("Bearer {fresh}")))
        .unwrap();
    assert_eq!(user.name, format!("system:bootstrap:{}", &fresh[..6]));
    assert_eq!(
        auth.authenticate(None, Some("Bearer abcdef.0123456789abcdef")),
        None
    );
}

fn client_config(pki: &Pki, cert: Option<&CertAndKey>, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(pki));
    let mut config = match cert {
        Some(ck) => {
            let chain = vec![parse_pem(&ck.cert_pem)];
            let key = PrivateKeyDer::from_pem_slice(ck.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Runs a handshake over a duplex pipe; returns what the server saw
/// (authenticated user, ALPN) or the first error.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<ClientConfig>,
    auth: &Authenticator,
    header: Option<&str>,
) -> Result<(Option<UserInfo>, Option<Vec<u8>>), String> {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let accept = async move {
        let mut tls = TlsAcceptor::from(server)
            .accept(server_io)
            .await
            .map_err(|e| format!("server: {e}"))?;
        // TLS 1.3 client-auth failures surface on the first read.
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        tls.write_all(b"pong")
            .await
            .map_err(|e| format!("server write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("server flush: {e}"))?;
        let (_, conn) = tls.get_ref();
        Ok::<_, String>((
            conn.peer_certificates().map(<[_]>::to_vec),
            conn.alpn_protocol().map(<[u8]>::to_vec),
        ))
    };
    let connect = async move {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = TlsConnector::from(client)
            .connect(name, client_io)
            .await
            .map_err(|e| format!("client: {e}"))?;
        tls.write_all(b"ping")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("client flush: {e}"))?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        Ok::<_, String>(tls)
    };
    let (server_side, client_side) = tokio::join!(accept, connect);
    let (peer_certs, alpn) = server_side?;
    let _client = client_side?;
    Ok((auth.authenticate(peer_certs.as_deref(), header), alpn))
}

fn setup() -> (
    tempfile::TempDir,
    Pki,
    Arc<Authenticator>,
    Arc<rustls::ServerConfig>,
) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &sans_for("127.0.0.1:0", None)).unwrap();
    std::fs::write(dir.path().join(TOKENS_FILE), "tok123,bob,1,\"viewers\"\n").unwrap();
    let auth = Arc::new(Authenticator::new(dir.path(), &[pki.ca_der().clone()]).unwrap());
    let server = pki.server_config(Arc::clone(&auth)).unwrap();
    (dir, pki, auth, server)
}

#[tokio::test]
async fn admin_cert_handshake_authenticates_admin() {
    let (_dir, pki, auth, server) = setup();
    let client = client_config(&pki, Some(pki.admin()), &[b"h2", b"http/1.1"]);
    let (user, alpn) = handshake(server, client, &auth, None).await.unwrap();
    let user = user.expect("admin is authenticated");
    assert_eq!(user.name, "admin");
    assert_eq!(user.groups, ["system:masters"]);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn client_without_cert_connects_and_uses_a_token() {
    let (_dir, pki, auth, server) = setup();
    let client = client_config(&pki, None, &[b"http/1.1"]);
    let (user, alpn) = handshake(Arc::clone(&server), client.clone(), &auth, None)
        .await
        .unwrap();
    assert_eq!(user, None, "no cert, no token: anonymous");
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    let (user, _) = handshake(server, client, &auth, Some("Bearer tok123"))
        .await
        .unwrap();
    assert_eq!(
        user.map(|u| (u.name, u.groups)),
        Some(("bob".into(), vec!["viewers".into()]))
    );
}

#[tokio::test]
async fn node_cert_from_the_ca_is_accepted_foreign_cert_is_rejected() {
    let (_dir, pki, auth, server) = setup();
    let node = pki
        .issue_client_cert("system:node:n1", Some("system:nodes"))
        .unwrap();
    let client = client_config(&pki, Some(&node), &[]);
    let (user, _) = handshake(Arc::clone(&server), client, &auth, None)
        .await
        .unwrap();
    let user = user.unwrap();
    assert_eq!(user.name, "system:node:n1");
    assert_eq!(user.groups, ["system:nodes"]);

    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_create(other_dir.path(), &sans_for("127.0.0.1:0", None)).unwrap();
    let client = client_config(&pki, Some(other.admin()), &[]);
    let err = handshake(server, client, &auth, None)
        .await
        .expect_err("a certificate from another CA must fail the handshake");
    assert!(err.starts_with("server: invalid peer certificate"), "{err}");
}

#[test]
fn prepare_makes_everything_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.0.0.1:6443".parse().unwrap();
    let first = prepare(dir.path(), listen, None).unwrap();
    assert_eq!(first.server_url, "https://127.0.0.1:6443");
    assert_eq!(mode(&first.kubeconfig), 0o600);
    assert_eq!(mode(&dir.path().join(JOIN_TOKEN_FILE)), 0o600);
    let kubeconfig = read(&first.kubeconfig);
    let second = prepare(dir.path(), listen, None).unwrap();
    assert_eq!(second.join_token, first.join_token);
    assert_eq!(read(&second.kubeconfig), kubeconfig);
    let user = second
        .authenticator
        .authenticate(None, Some(&format!("Bearer {}", first.join_token)))
        .unwrap();
    assert_eq!(user.groups, [BOOTSTRAP_GROUP]);

    let moved = prepare(dir.path(), listen, Some("fd00::5".parse().unwrap())).unwrap();
    assert_eq!(moved.server_url, "https://[fd00::5]:6443");
    let text = std::fs::read_to_string(&moved.kubeconfig).unwrap();
    assert!(text.contains("server: https://[fd00::5]:6443"), "{text}");
}

#[test]
fn kubeconfig_parses_back_with_embedded_material() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &sans_for("127.0.0.1:6443", None)).unwrap();
    let path = pki
        .write_admin_kubeconfig("https://127.0.0.1:6443")
        .unwrap();
    assert_eq!(path, dir.path().join(ADMIN_KUBECONFIG));
    let config: Kubeconfig =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let decode = |s: &str| {
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
    };
    assert_eq!(config.current_context, "bosun");
    assert_eq!(
        decode(&config.clusters[0].cluster.certificate_authority_data),
        pki.ca_pem()
    );
    assert_eq!(config.users[0].name, "admin");
    assert_eq!(
        decode(&config.users[0].user.client_certificate_data),
        pki.admin().cert_pem
    );
    assert_eq!(
        decode(&config.users[0].user.client_key_data),
        pki.admin().key_pem
    );
}

#[test]
fn kubectl_reads_the_kubeconfig() {
    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("skipped: /usr/bin/kubectl is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_create(dir.path(), &sans_for("127.0.0.1:6443", None)).unwrap();
    let path = pki.write_admin_kubeconfig("https://[::1]:6443").unwrap();
    let out = std::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(&path)
        .args(["config", "view", "--raw", "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["current-context"], "bosun");
    assert_eq!(
        json["clusters"][0]["cluster"]["server"],
        "https://[::1]:6443"
    );
    assert_eq!(json["users"][0]["name"], "admin");
    assert!(json["users"][0]["user"]["client-key-data"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

/// Serves one HTTP/1.1 request per connection on a loopback listener, answering
/// with the authenticated user's name; returns the port.
async fn serve_whoami(
    server: Arc<rustls::ServerConfig>,
    auth: Arc<Authenticator>,
) -> (u16, tokio::task::JoinHandle<()>) {
    let mut config = (*server).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let auth = Arc::clone(&auth);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                let header = text.lines().find_map(|l| {
                    l.strip_prefix("Authorization: ")
                        .or_else(|| l.strip_prefix("authorization: "))
                });
                let peer = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec);
                let body = auth
                    .authenticate(peer.as_deref(), header)
                    .map_or("anonymous".to_string(), |u| {
                        format!("{} {}", u.name, u.groups.join(","))
                    });
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, task)
}

/// Runs a command to completion off the async workers (the crate has no
/// tokio `process` feature).
async fn run_blocking(command: &mut std::process::Command) -> std::process::Output {
    let mut command = std::mem::replace(command, std::process::Command::new("true"));
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_connects_with_the_admin_kubeconfig() {
    let kubectl = Path::new("/usr/bin/kubectl");
    if !kubectl.exists() {
        eprintln!("skipped: /usr/bin/kubectl is not installed");
        return;
    }
    let (dir, pki, auth, server) = setup();
    let (port, task) = serve_whoami(server, auth).await;
    let path = pki
        .write_admin_kubeconfig(&server_url("127.0.0.1".parse().unwrap(), port))
        .unwrap();
    let out = run_blocking(
        std::process::Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&path)
            .args(["get", "--raw", "/whoami"]),
    )
    .await;
    task.abort();
    drop(dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "admin system:masters"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_ssl_connects_with_cert_and_with_token() {
    let python = "python3";
    let has_ssl = std::process::Command::new(python)
        .args(["-c", "import ssl"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_ssl {
        eprintln!("skipped: python3 with the ssl module is not available");
        return;
    }
    let (dir, _pki, auth, server) = setup();
    let (port, task) = serve_whoami(server, auth).await;
    let tls = dir.path().join(TLS_DIR);
    let script = r#"
import ssl, socket, sys
tls, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=tls + "/ca.crt")
if mode == "cert":
    ctx.load_cert_chain(tls + "/admin.crt", tls + "/admin.key")
ctx.set_alpn_protocols(["h2", "http/1.1"])
extra = "Authorization: Bearer tok123\r\n" if mode == "token" else ""
with socket.create_connection(("127.0.0.1", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(("GET / HTTP/1.1\r\nHost: localhost\r\n" + extra + "\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
print(data.split(b"\r\n\r\n", 1)[1].decode())
"#;
    let mut results = Vec::new();
    for mode in ["cert", "token"] {
        let out = run_blocking(
            std::process::Command::new(python)
                .arg("-c")
                .arg(script)
                .arg(&tls)
                .arg(port.to_string())
                .arg(mode),
        )
        .await;
        results.push((mode, out));
    }
    task.abort();
    for (mode, out) in results {
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let expected = if mode == "cert" {
            "admin system:masters"
        } else {
            "bob viewers"
        };
        assert_eq!(body, expected, "{mode}");
    }
}
