//! The agent's credentials: joining the cluster with a join token and keeping
//! what it is given in the data dir.
//!
//! [`ensure_credentials`] reuses `DIR/pki/*` when they are valid for this node
//! (no token needed then). Otherwise it fetches the CA from
//! `GET /bosun/v1/cacerts?tokenId=<id>` — over TLS it cannot verify yet, so it
//! checks the `X-Bosun-Ca-Hmac` header (HMAC-SHA256 of the CA PEM keyed with the
//! join token) before trusting the CA — makes two ECDSA keys and CSRs, and sends
//! the CSRs to `POST /bosun/v1/join` with the token. The keys never leave the
//! agent. It writes `DIR/pki/{ca.crt,node.crt,node.key,serving.crt,serving.key}`
//! and `DIR/agent.kubeconfig`, each 0600 and atomically, in a 0700 dir.
//!
//! The checks on files found on disk, the HMAC and the kubeconfig text are pure
//! functions; the rest is thin I/O around them.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::client::{Client, ClientError, Method};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Directory of the agent's certificates under the data dir.
pub const PKI_DIR: &str = "pki";
/// The agent's kubeconfig under the data dir.
pub const KUBECONFIG_FILE: &str = "agent.kubeconfig";
/// Prefix of a node's user name; the node name follows.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of every node.
pub const NODES_GROUP: &str = "system:nodes";
/// The master's CA endpoint.
pub const CACERTS_PATH: &str = "/bosun/v1/cacerts";
/// The master's join endpoint.
pub const JOIN_PATH: &str = "/bosun/v1/join";
/// The header with the HMAC of the CA.
pub const CA_HMAC_HEADER: &str = "x-bosun-ca-hmac";
/// Certificates this close to their end are renewed by joining again (when the
/// token is at hand).
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long fetching the CA may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// What the agent needs to talk to the master and to serve :10250.
#[derive(Clone)]
pub struct Credentials {
    /// The master's URL, `https://host:port`.
    pub server: String,
    /// The cluster CA, PEM: it signs the master's and every agent's certificates.
    pub ca_pem: String,
    /// The node's client certificate (CN `system:node:<name>`, O `system:nodes`).
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// The node's serving certificate for :10250 and its key.
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    /// Where the kubeconfig was written.
    pub kubeconfig: PathBuf,
    /// Whether the certificates were issued just now (false: reused from disk).
    pub joined: bool,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("kubeconfig", &self.kubeconfig)
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The API client configuration of this node.
    pub fn client_config(&self) -> api::client::Config {
        api::client::Config {
            server: self.server.clone(),
            ca_pem: self.ca_pem.clone(),
            credentials: api::client::Credentials::ClientCert {
                cert_pem: self.client_cert_pem.clone(),
                key_pem: self.client_key_pem.clone(),
            },
        }
    }

    /// An API client acting as this node.
    pub fn client(&self) -> Result<Client, ClientError> {
        Client::from_config(self.client_config())
    }
}

/// Why the agent could not get its credentials.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("reading the {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} does not hold a join token of the form <6 chars>.<16 chars> (a-z, 0-9); get one with `bosun token create` on the master")]
    BadToken { path: PathBuf },
    #[error("invalid --server {url:?}: expected https://host:port")]
    ServerUrl { url: String },
    #[error("fetching the cluster CA from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("the master at {server} knows no join token with id {id:?}: the token is wrong or was deleted; get one with `bosun token create` on the master")]
    UnknownToken { server: String, id: String },
    #[error("the CA sent by {server} does not match the join token: the token is wrong, or {server} is not a bosun master")]
    CaMismatch { server: String },
    #[error("the CA sent by {server} is not a PEM certificate")]
    BadCa { server: String },
    #[error("making the node's {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("joining the cluster at {server}")]
    Join {
        server: String,
        #[source]
        source: Box<ClientError>,
    },
    #[error("the master at {server} refused to join node {node}: {message}")]
    Refused {
        server: String,
        node: String,
        message: String,
    },
    #[error("the join answer of {server} is not usable: {reason}")]
    BadAnswer { server: String, reason: String },
    #[error("creating directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files of the node's PKI under `DIR/pki`.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
}

impl PkiPaths {
    pub fn new(data_dir: &Path) -> PkiPaths {
        let dir = data_dir.join(PKI_DIR);
        PkiPaths {
            ca: dir.join("ca.crt"),
            client_cert: dir.join("node.crt"),
            client_key: dir.join("node.key"),
            serving_cert: dir.join("serving.crt"),
            serving_key: dir.join("serving.key"),
            dir,
        }
    }
}

/// Returns the node's credentials, joining the cluster at `server` with the
/// token in `token_file` only when `data_dir` holds none valid for
/// `node_name` and `node_ips` (see the module doc). `ca_file`, when given, is
/// trusted for the master's certificate in addition to the HMAC check.
pub async fn ensure_credentials(
    server: &str,
    token_file: &Path,
    ca_file: Option<&Path>,
    data_dir: &Path,
    node_name: &str,
    node_ips: &[IpAddr],
) -> Result<Credentials, JoinError> {
    let server = server.trim_end_matches('/').to_string();
    let paths = PkiPaths::new(data_dir);
    let kubeconfig = data_dir.join(KUBECONFIG_FILE);
    let hostname = crate::node::facts::hostname(Path::new(crate::node::facts::PROC_HOSTNAME));
    let names = serving_names(node_name, hostname.as_deref(), node_ips);
    if let Some(mut creds) = load_existing(&paths, node_name, &names, &server) {
        creds.kubeconfig = kubeconfig.clone();
        write_kubeconfig(&kubeconfig, &creds, node_name)?;
        tracing::info!(node = %node_name, dir = %paths.dir.display(), "reusing the node's credentials");
        return Ok(creds);
    }
    let token = read_token(token_file)?;
    let ca_pem = fetch_ca(&server, &token, ca_file).await?;
    let client_key = new_key("client key")?;
    let serving_key = new_key("serving key")?;
    let client_csr = csr(node_name, &[], &client_key, "client certificate request")?;
    let serving_csr = csr(
        node_name,
        &names,
        &serving_key,
        "serving certificate request",
    )?;
    let client = Client::new(
        &server,
        &ca_pem,
        api::client::Credentials::Token(token.clone()),
    )
    .map_err(|source| JoinError::Join {
        server: server.clone(),
        source: Box::new(source),
    })?;
    let body = json!({"nodeName": node_name, "clientCsr": client_csr, "servingCsr": serving_csr});
    let (status, bytes) = client
        .request(Method::POST, JOIN_PATH, Some(&body))
        .await
        .map_err(|source| JoinError::Join {
            server: server.clone(),
            source: Box::new(source),
        })?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = answer
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        return Err(JoinError::Refused {
            server,
            node: node_name.to_string(),
            message,
        });
    }
    let field = |name: &str| -> Result<String, JoinError> {
        answer
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| JoinError::BadAnswer {
                server: server.clone(),
                reason: format!("no {name}"),
            })
    };
    let creds = Credentials {
        server: server.clone(),
        ca_pem: field("ca")?,
        client_cert_pem: field("clientCert")?,
        client_key_pem: client_key.serialize_pem(),
        serving_cert_pem: field("servingCert")?,
        serving_key_pem: serving_key.serialize_pem(),
        kubeconfig: kubeconfig.clone(),
        joined: true,
    };
    if let Err(reason) = check_pki(&creds, node_name, &names) {
        return Err(JoinError::BadAnswer { server, reason });
    }
    ensure_private_dir(data_dir)?;
    ensure_private_dir(&paths.dir)?;
    write_private(&paths.ca, &creds.ca_pem)?;
    write_private(&paths.client_key, &creds.client_key_pem)?;
    write_private(&paths.client_cert, &creds.client_cert_pem)?;
    write_private(&paths.serving_key, &creds.serving_key_pem)?;
    write_private(&paths.serving_cert, &creds.serving_cert_pem)?;
    write_kubeconfig(&kubeconfig, &creds, node_name)?;
    tracing::info!(node = %node_name, server = %server, "joined the cluster");
    Ok(creds)
}

/// The names the serving certificate carries: the node's IPs, the node name
/// and the host name (when it is a different, valid DNS name).
pub fn serving_names(node_name: &str, hostname: Option<&str>, ips: &[IpAddr]) -> Vec<String> {
    let mut names: Vec<String> = ips.iter().map(ToString::to_string).collect();
    for name in [Some(node_name), hostname].into_iter().flatten() {
        let name = name.to_ascii_lowercase();
        if api::validation::is_dns1123_subdomain(&name).is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Hex HMAC-SHA256 of `ca_pem` keyed with `token`, as the master computes it.
pub fn ca_hmac(token: &str, ca_pem: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    hex::encode(ring::hmac::sign(&key, ca_pem.as_bytes()).as_ref())
}

/// Whether `mac_hex` is the HMAC of `ca_pem` with `token` (constant time).
pub fn ca_hmac_matches(token: &str, ca_pem: &str, mac_hex: &str) -> bool {
    let Ok(mac) = hex::decode(mac_hex.trim()) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    ring::hmac::verify(&key, ca_pem.as_bytes(), &mac).is_ok()
}

/// The id of a join token (`abcdef` of `abcdef.0123456789abcdef`), `None` if it
/// is not one.
pub fn token_id(token: &str) -> Option<&str> {
    let (id, secret) = token.split_once('.')?;
    let ok = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    (ok(id, 6) && ok(secret, 16)).then_some(id)
}

fn read_token(path: &Path) -> Result<String, JoinError> {
    let text = std::fs::read_to_string(path).map_err(|source| JoinError::Read {
        what: "token file",
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim().to_string();
    if token_id(&token).is_none() {
        return Err(JoinError::BadToken {
            path: path.to_path_buf(),
        });
    }
    Ok(token)
}

/// The kubeconfig of a node (YAML): the server, the CA and the node's
/// certificate and key, embedded.
pub fn kubeconfig_yaml(creds: &Credentials, node_name: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = format!("{NODE_USER_PREFIX}{node_name}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bosun", "cluster": {
            "server": creds.server,
            "certificate-authority-data": b64(&creds.ca_pem),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(&creds.client_cert_pem),
            "client-key-data": b64(&creds.client_key_pem),
        }}],
        "contexts": [{"name": "bosun", "context": {"cluster": "bosun", "user": user}}],
        "current-context": "bosun",
    });
    serde_yaml_ng::to_string(&doc).unwrap_or_default()
}

/// Checks certificates and keys for node `node_name`: they parse, each key
/// matches its certificate, both certificates are issued by the CA, the client
/// certificate says `system:node:<name>` in `system:nodes`, the serving
/// certificate covers `names`, and neither is within [`RENEW_BEFORE`] of its
/// end. The error says what is wrong.
pub fn check_pki(creds: &Credentials, node_name: &str, names: &[String]) -> Result<(), String> {
    let ca = first_der(&creds.ca_pem).ok_or("the CA is not a PEM certificate")?;
    let (_, ca) = X509Certificate::from_der(&ca).map_err(|e| format!("the CA: {e}"))?;
    let client = Leaf::parse("client", &creds.client_cert_pem, &creds.client_key_pem)?;
    let serving = Leaf::parse("serving", &creds.serving_cert_pem, &creds.serving_key_pem)?;
    for leaf in [&client, &serving] {
        leaf.check_issued_by(&ca)?;
        leaf.check_lifetime()?;
    }
    let (cn, groups) = client.identity();
    let user = format!("{NODE_USER_PREFIX}{node_name}");
    if cn.as_deref() != Some(user.as_str()) || !groups.iter().any(|g| g == NODES_GROUP) {
        return Err(format!(
            "the client certificate is for {cn:?} {groups:?}, not {user} in {NODES_GROUP}"
        ));
    }
    let have = serving.sans();
    let missing: Vec<&String> = names.iter().filter(|n| !have.contains(*n)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "the serving certificate lacks {missing:?} (it has {have:?})"
        ));
    }
    Ok(())
}

/// A certificate with its key, both parsed.
struct Leaf {
    what: &'static str,
    der: Vec<u8>,
}

impl Leaf {
    fn parse(what: &'static str, cert_pem: &str, key_pem: &str) -> Result<Leaf, String> {
        let der = first_der(cert_pem).ok_or(format!("the {what} certificate is not PEM"))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| format!("the {what} key: {e}"))?;
        let leaf = Leaf { what, der };
        let cert = leaf.cert()?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(format!("the {what} key does not match its certificate"));
        }
        Ok(leaf)
    }

    fn cert(&self) -> Result<X509Certificate<'_>, String> {
        X509Certificate::from_der(&self.der)
            .map(|(_, c)| c)
            .map_err(|e| format!("the {} certificate: {e}", self.what))
    }

    fn check_issued_by(&self, ca: &X509Certificate<'_>) -> Result<(), String> {
        let cert = self.cert()?;
        if cert.issuer().as_raw() != ca.subject().as_raw()
            || cert.verify_signature(Some(ca.public_key())).is_err()
        {
            return Err(format!(
                "the {} certificate is not issued by the CA",
                self.what
            ));
        }
        Ok(())
    }

    fn check_lifetime(&self) -> Result<(), String> {
        let cert = self.cert()?;
        let now = x509_parser::time::ASN1Time::now();
        let until = cert.validity().not_after.timestamp() - now.timestamp();
        if !cert.validity().is_valid() || until < RENEW_BEFORE.as_secs() as i64 {
            return Err(format!(
                "the {} certificate ends {} (renewing)",
                self.what,
                cert.validity().not_after
            ));
        }
        Ok(())
    }

    fn identity(&self) -> (Option<String>, Vec<String>) {
        let Ok(cert) = self.cert() else {
            return (None, Vec::new());
        };
        let subject = cert.subject();
        let cn = subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok())
            .map(str::to_string);
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect();
        (cn, groups)
    }

    fn sans(&self) -> Vec<String> {
        use x509_parser::extensions::GeneralName;
        let Ok(cert) = self.cert() else {
            return Vec::new();
        };
        let Ok(Some(ext)) = cert.subject_alternative_name() else {
            return Vec::new();
        };
        ext.value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => <[u8; 4]>::try_from(*b)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*b)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

/// The DER of the first certificate of a PEM text.
fn first_der(pem: &str) -> Option<Vec<u8>> {
    rustls_pemfile::certs(&mut pem.as_bytes())
        .next()?
        .ok()
        .map(|d| d.to_vec())
}

/// The node's credentials from `paths`, if all are there and [`check_pki`]
/// accepts them; the reason for not reusing them is logged.
fn load_existing(
    paths: &PkiPaths,
    node_name: &str,
    names: &[String],
    server: &str,
) -> Option<Credentials> {
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let creds = Credentials {
        server: server.to_string(),
        ca_pem: read(&paths.ca)?,
        client_cert_pem: read(&paths.client_cert)?,
        client_key_pem: read(&paths.client_key)?,
        serving_cert_pem: read(&paths.serving_cert)?,
        serving_key_pem: read(&paths.serving_key)?,
        kubeconfig: PathBuf::new(),
        joined: false,
    };
    match check_pki(&creds, node_name, names) {
        Ok(()) => Some(creds),
        Err(reason) => {
            tracing::info!(dir = %paths.dir.display(), %reason, "not reusing the node's credentials; joining again");
            None
        }
    }
}

fn new_key(what: &'static str) -> Result<KeyPair, JoinError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| JoinError::Generate { what, source })
}

/// A PEM CSR for `key`, subject `system:node:<name>` in `system:nodes`, with
/// `names` (IP addresses and DNS names) as subject alternative names.
fn csr(
    node_name: &str,
    names: &[String],
    key: &KeyPair,
    what: &'static str,
) -> Result<String, JoinError> {
    let err = |source| JoinError::Generate { what, source };
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{NODE_USER_PREFIX}{node_name}"));
    dn.push(DnType::OrganizationName, NODES_GROUP);
    params.distinguished_name = dn;
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into().map_err(err)?),
        };
        params.subject_alt_names.push(san);
    }
    params
        .serialize_request(key)
        .and_then(|c| c.pem())
        .map_err(err)
}

/// Fetches the CA PEM and checks its HMAC with `token`.
async fn fetch_ca(server: &str, token: &str, ca_file: Option<&Path>) -> Result<String, JoinError> {
    let id = token_id(token).unwrap_or_default();
    let path = format!("{CACERTS_PATH}?tokenId={id}");
    let url = format!("{server}{path}");
    let fetch_err = |reason: String| JoinError::Fetch {
        url: url.clone(),
        reason,
    };
    let trusted = match ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p).map_err(|source| JoinError::Read {
                what: "CA file",
                path: p.to_path_buf(),
                source,
            })?,
        ),
        None => None,
    };
    let (status, mac, body) = tokio::time::timeout(
        FETCH_TIMEOUT,
        get_unverified_or_trusted(server, &path, trusted.as_deref()),
    )
    .await
    .map_err(|_| fetch_err(format!("no answer within {FETCH_TIMEOUT:?}")))?
    .map_err(fetch_err)?;
    if status == 404 && body.contains("join token") {
        return Err(JoinError::UnknownToken {
            server: server.to_string(),
            id: id.to_string(),
        });
    }
    if status != 200 {
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or(body);
        return Err(fetch_err(format!("HTTP {status}: {message}")));
    }
    let ca_ok = mac.is_some_and(|m| ca_hmac_matches(token, &body, &m));
    if !ca_ok {
        return Err(JoinError::CaMismatch {
            server: server.to_string(),
        });
    }
    if first_der(&body).is_none() {
        return Err(JoinError::BadCa {
            server: server.to_string(),
        });
    }
    Ok(body)
}

/// `GET path` on `server`: verified against `trusted` when given, else
/// without verifying the server (what it sends is checked by its HMAC).
/// Returns the status, the HMAC header and the body.
async fn get_unverified_or_trusted(
    server: &str,
    path: &str,
    trusted: Option<&str>,
) -> Result<(u16, Option<String>, String), String> {
    let uri: http::Uri = server.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err("the server URL must start with https://".into());
    }
    let host = uri.host().ok_or("no host in the server URL")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(443);
    let config = match trusted {
        Some(ca) => tls::verified(ca)?,
        None => tls::unverified()?,
    };
    let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("dial tcp {host}:{port}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let request = http::Request::get(path)
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let resp = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let mac = resp
            .headers()
            .get(CA_HMAC_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, mac, String::from_utf8_lossy(&body).into_owned()))
    }
    .await;
    conn.abort();
    result
}

/// TLS client configurations for fetching the CA.
mod tls {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Trusting only `ca_pem`.
    pub(super) fn verified(ca_pem: &str) -> Result<Arc<ClientConfig>, String> {
        let mut roots = RootCertStore::empty();
        for der in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
            let der = der.map_err(|e| format!("the CA file: {e}"))?;
            roots.add(der).map_err(|e| format!("the CA file: {e}"))?;
        }
        if roots.is_empty() {
            return Err("the CA file holds no PEM certificate".into());
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// Accepting any server certificate: only for fetching the CA, whose HMAC
    /// is checked afterwards. Handshake signatures are still verified.
    pub(super) fn unverified() -> Result<Arc<ClientConfig>, String> {
        let provider = provider();
        let verifier = Arc::new(AnyServer(provider.clone()));
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    #[derive(Debug)]
    struct AnyServer(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

fn ensure_private_dir(dir: &Path) -> Result<(), JoinError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| JoinError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Writes `text` to `path` atomically (temporary file, fsync, rename), mode 0600.
fn write_private(path: &Path, text: &str) -> Result<(), JoinError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| JoinError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the kubeconfig unless it already holds exactly this.
fn write_kubeconfig(path: &Path, creds: &Credentials, node_name: &str) -> Result<(), JoinError> {
    let text = kubeconfig_yaml(creds, node_name);
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => Ok(()),
        Ok(_) => write_private(path, &text),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                ensure_private_dir(dir)?;
            }
            write_private(path, &text)
        }
        Err(_) => write_private(path, &text),
    }
}

#[cfg(test)]
mod tests;
