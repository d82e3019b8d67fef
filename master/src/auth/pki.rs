//! The cluster PKI kept under `<data-dir>/tls/`: a CA, the API server's serving
//! certificate and the admin client certificate. [`Pki::load_or_create`] makes
//! what is missing on first start, reuses everything afterwards, and re-issues
//! only the serving certificate when it lacks a requested name or nears its end.
//! The TLS server configuration built from it lives in `tls.rs`.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use super::certs::{self, CertInfo};
use super::files::{self, PRIVATE, PUBLIC};
use super::kubeconfig::{self, ADMIN_KUBECONFIG};
use super::{AuthError, SanSet};

/// Directory under the data dir holding the PKI files.
pub const TLS_DIR: &str = "tls";
/// User name of the admin client certificate.
pub const ADMIN_USER: &str = "admin";
/// Group of the admin client certificate: Kubernetes' superuser group.
pub const ADMIN_GROUP: &str = "system:masters";
/// User name of the certificate the master shows to agents (logs, exec).
pub const AGENT_CLIENT_USER: &str = "bosun:master";

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// The loaded PKI of one master.
pub struct Pki {
    data_dir: PathBuf,
    ca_der: CertificateDer<'static>,
    ca_key: KeyPair,
    server_der: CertificateDer<'static>,
    server_key: KeyPair,
    server_sans: SanSet,
    admin: CertAndKey,
    agent_client: CertAndKey,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("data_dir", &self.data_dir)
            .field("server_sans", &self.server_sans.to_string())
            .finish_non_exhaustive()
    }
}

/// The paths of one certificate and its key.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    fn new(tls_dir: &Path, name: &str) -> Self {
        Pair {
            cert: tls_dir.join(format!("{name}.crt")),
            key: tls_dir.join(format!("{name}.key")),
        }
    }
}

/// A leaf certificate after loading: its DER, its key and what it says.
struct Leaf {
    der: CertificateDer<'static>,
    key: KeyPair,
    info: CertInfo,
}

impl Pki {
    /// Loads the PKI under `data_dir/tls`, creating what is missing (the data dir
    /// itself with mode 0700). `sans` are the names the serving certificate must
    /// carry; an existing serving certificate lacking any of them is re-issued from
    /// the same CA and key, keeping its old names too.
    pub fn load_or_create(data_dir: &Path, sans: &SanSet) -> Result<Pki, AuthError> {
        files::ensure_private_dir(data_dir)?;
        let tls_dir = data_dir.join(TLS_DIR);
        files::ensure_private_dir(&tls_dir)?;

        let ca_pair = Pair::new(&tls_dir, "ca");
        let (ca_der, ca_key, fresh_ca) = load_or_create_ca(&ca_pair)?;
        if certs::inspect(&ca_pair.cert, &ca_der)?.expires_within(certs::RENEW_BEFORE) {
            tracing::warn!(path = %ca_pair.cert.display(), "the cluster CA expires soon; it is not renewed automatically");
        }
        let issuer = certs::ca_issuer(&ca_der, &ca_key, &ca_pair.cert)?;

        let server_pair = Pair::new(&tls_dir, "server");
        let server = load_or_issue_leaf(
            &server_pair,
            fresh_ca,
            &ca_der,
            |info| !sans.is_subset(&info.sans),
            |old, key| {
                let names = old.map_or_else(|| sans.clone(), |info| info.sans.union(sans));
                certs::issue_server(&names, key, &issuer)
            },
            "serving",
        )?;

        let admin_pair = Pair::new(&tls_dir, "admin");
        let admin = load_or_issue_leaf(
            &admin_pair,
            fresh_ca,
            &ca_der,
            |info| !is_admin_identity(info),
            |_, key| certs::issue_client(ADMIN_USER, Some(ADMIN_GROUP), key, &issuer),
            "admin client",
        )?;

        let agent_pair = Pair::new(&tls_dir, "agent-client");
        let agent_client = load_or_issue_leaf(
            &agent_pair,
            fresh_ca,
            &ca_der,
            |info| info.identity != Some((AGENT_CLIENT_USER.into(), vec![ADMIN_GROUP.into()])),
            |_, key| certs::issue_client(AGENT_CLIENT_USER, Some(ADMIN_GROUP), key, &issuer),
            "agent client",
        )?;

        Ok(Pki {
            data_dir: data_dir.to_path_buf(),
            agent_client: CertAndKey {
                cert_pem: certs::cert_pem(&agent_client.der),
                key_pem: agent_client.key.serialize_pem(),
            },
            server_sans: server.info.sans.clone(),
            admin: CertAndKey {
                cert_pem: certs::cert_pem(&admin.der),
                key_pem: admin.key.serialize_pem(),
            },
            ca_der,
            ca_key,
            server_der: server.der,
            server_key: server.key,
        })
    }

    /// The data directory this PKI lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// The CA certificate (PEM), what clients put in their trust store.
    pub fn ca_pem(&self) -> String {
        certs::cert_pem(&self.ca_der)
    }

    /// The serving certificate (DER).
    pub fn server_cert_der(&self) -> &CertificateDer<'static> {
        &self.server_der
    }

    /// The serving certificate's private key (PKCS#8 DER).
    pub fn server_key_der(&self) -> PrivatePkcs8KeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.server_key.serialize_der())
    }

    /// The names the serving certificate carries.
    pub fn server_sans(&self) -> &SanSet {
        &self.server_sans
    }

    /// The admin client certificate and key (CN `admin`, O `system:masters`).
    pub fn admin(&self) -> &CertAndKey {
        &self.admin
    }

    /// The client certificate and key the master shows to agents' :10250 (CN
    /// `bosun:master`, O `system:masters`), kept as `tls/agent-client.{crt,key}`.
    pub fn agent_client(&self) -> &CertAndKey {
        &self.agent_client
    }

    /// The CA's private key, for [`super::NodeAuthority`] (a copy: rcgen key
    /// pairs cannot be cloned).
    pub(crate) fn ca_key_copy(&self) -> Result<KeyPair, AuthError> {
        let ca_path = self.data_dir.join(TLS_DIR).join("ca.key");
        certs::parse_key_pem(&ca_path, &self.ca_key.serialize_pem())
    }

    /// Issues a new client certificate (fresh key) for `user` in `group`, signed
    /// by the cluster CA; e.g. `system:node:<name>` in `system:nodes` for an agent.
    /// Nothing is written to disk.
    pub fn issue_client_cert(
        &self,
        user: &str,
        group: Option<&str>,
    ) -> Result<CertAndKey, AuthError> {
        let ca_path = self.data_dir.join(TLS_DIR).join("ca.crt");
        let issuer: Issuer<'_, &KeyPair> = certs::ca_issuer(&self.ca_der, &self.ca_key, &ca_path)?;
        let key = certs::new_key("client key")?;
        let der = certs::issue_client(user, group, &key, &issuer)?;
        Ok(CertAndKey {
            cert_pem: certs::cert_pem(&der),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes `<data-dir>/admin.kubeconfig` (mode 0600) for `server_url` (see
    /// [`kubeconfig::server_url`]) unless it already holds exactly that content.
    /// Returns its path.
    pub fn write_admin_kubeconfig(&self, server_url: &str) -> Result<PathBuf, AuthError> {
        let path = self.data_dir.join(ADMIN_KUBECONFIG);
        kubeconfig::write_kubeconfig(
            &path,
            server_url,
            &self.ca_pem(),
            &self.admin.cert_pem,
            &self.admin.key_pem,
            ADMIN_USER,
        )?;
        Ok(path)
    }
}

fn is_admin_identity(info: &CertInfo) -> bool {
    info.identity == Some((ADMIN_USER.to_string(), vec![ADMIN_GROUP.to_string()]))
}

/// Loads the CA pair, or creates it if neither file exists. The bool says "new".
fn load_or_create_ca(pair: &Pair) -> Result<(CertificateDer<'static>, KeyPair, bool), AuthError> {
    let cert = files::read_optional(&pair.cert)?;
    let key = files::read_optional_text(&pair.key)?;
    match (cert, key) {
        (None, None) => {
            let key = certs::new_key("CA key")?;
            let der = certs::issue_ca(&key)?;
            files::write_atomic(&pair.key, key.serialize_pem().as_bytes(), PRIVATE)?;
            files::write_atomic(&pair.cert, certs::cert_pem(&der).as_bytes(), PUBLIC)?;
            tracing::info!(path = %pair.cert.display(), "created the cluster CA");
            Ok((der, key, true))
        }
        (Some(_), None) => Err(AuthError::Missing {
            path: pair.key.clone(),
            needed_by: pair.cert.clone(),
        }),
        (None, Some(_)) => Err(AuthError::Missing {
            path: pair.cert.clone(),
            needed_by: pair.key.clone(),
        }),
        (Some(cert_pem), Some(key_pem)) => {
            let der = certs::parse_cert_pem(&pair.cert, &cert_pem)?;
            let key = certs::parse_key_pem(&pair.key, &key_pem)?;
            if !certs::inspect(&pair.cert, &der)?.matches_key(&key) {
                return Err(AuthError::KeyMismatch {
                    cert: pair.cert.clone(),
                    key: pair.key.clone(),
                });
            }
            files::tighten_mode(&pair.key)?;
            Ok((der, key, false))
        }
    }
}

/// Loads a leaf certificate and key, issuing a new certificate when it is
/// missing, not from this CA, `stale` says so, or it nears its end. The key is
/// kept when present; a new one is made only if the key file is missing or the
/// CA is new. `issue` gets the old certificate's info when there is one.
fn load_or_issue_leaf(
    pair: &Pair,
    fresh_ca: bool,
    ca: &CertificateDer<'_>,
    stale: impl Fn(&CertInfo) -> bool,
    issue: impl Fn(Option<&CertInfo>, &KeyPair) -> Result<CertificateDer<'static>, AuthError>,
    what: &'static str,
) -> Result<Leaf, AuthError> {
    let (cert_pem, key_pem) = if fresh_ca {
        // Leftovers signed by an earlier CA are of no use.
        (None, None)
    } else {
        (
            files::read_optional(&pair.cert)?,
            files::read_optional_text(&pair.key)?,
        )
    };
    let old = match (&cert_pem, &key_pem) {
        (Some(cert_pem), Some(_)) => {
            let der = certs::parse_cert_pem(&pair.cert, cert_pem)?;
            let info = certs::inspect(&pair.cert, &der)?;
            Some((der, info))
        }
        _ => None,
    };
    let (key, key_is_new) = match key_pem {
        Some(pem) => (certs::parse_key_pem(&pair.key, &pem)?, false),
        None => (certs::new_key("private key")?, true),
    };
    if let Some((der, info)) = old {
        if !info.matches_key(&key) {
            return Err(AuthError::KeyMismatch {
                cert: pair.cert.clone(),
                key: pair.key.clone(),
            });
        }
        files::tighten_mode(&pair.key)?;
        let reason = if !certs::issued_by(&der, ca) {
            Some("not issued by the cluster CA")
        } else if stale(&info) {
            Some("outdated")
        } else if info.expires_within(certs::RENEW_BEFORE) {
            Some("expiring")
        } else {
            None
        };
        let Some(reason) = reason else {
            return Ok(Leaf { der, key, info });
        };
        tracing::info!(path = %pair.cert.display(), reason, "re-issuing the {what} certificate");
        let der = issue(Some(&info), &key)?;
        files::write_atomic(&pair.cert, certs::cert_pem(&der).as_bytes(), PUBLIC)?;
        let info = certs::inspect(&pair.cert, &der)?;
        return Ok(Leaf { der, key, info });
    }
    if key_is_new {
        files::write_atomic(&pair.key, key.serialize_pem().as_bytes(), PRIVATE)?;
    }
    let der = issue(None, &key)?;
    files::write_atomic(&pair.cert, certs::cert_pem(&der).as_bytes(), PUBLIC)?;
    tracing::info!(path = %pair.cert.display(), "issued the {what} certificate");
    let info = certs::inspect(&pair.cert, &der)?;
    Ok(Leaf { der, key, info })
}
