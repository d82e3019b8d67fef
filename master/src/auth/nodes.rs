//! What the master's PKI does for agents: proves its CA to a joining agent
//! (an HMAC of the CA PEM keyed with the agent's join token), signs the agent's
//! certificate requests (a client certificate `system:node:<name>` in
//! `system:nodes` and a serving certificate for its :10250), and holds the TLS
//! client configuration the master uses to reach agents (its `bosun:master`
//! certificate, agents' serving certificates verified against the cluster CA).
//! Private keys of agents never come here: they send CSRs. Serving HTTP is not
//! done here (see `apiserver::join`).

use std::sync::Arc;

use rcgen::{CertificateSigningRequestParams, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::certs;
use super::{AuthError, Authenticator, Pki, UserInfo, BOOTSTRAP_GROUP};

/// Prefix of a node's user name; the node name follows.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Group of every node's client certificate.
pub const NODES_GROUP: &str = "system:nodes";

/// Hex HMAC-SHA256 of `ca_pem` keyed with `token`: what `GET /bosun/v1/cacerts`
/// sends in `X-Bosun-Ca-Hmac` so an agent holding the token can trust the CA.
pub fn ca_hmac(token: &str, ca_pem: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    hex::encode(ring::hmac::sign(&key, ca_pem.as_bytes()).as_ref())
}

/// The certificates a join answers with, all PEM.
#[derive(Debug, Clone)]
pub struct NodeCerts {
    pub ca: String,
    pub client_cert: String,
    pub serving_cert: String,
}

/// Why a join request cannot be answered with certificates.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The node name is not a DNS subdomain (RFC 1123).
    #[error("invalid node name {name:?}: {reason}")]
    BadNodeName { name: String, reason: String },
    /// A CSR does not parse, its signature is wrong, or it asks for something
    /// a node may not have.
    #[error("invalid {field}: {reason}")]
    BadCsr { field: &'static str, reason: String },
    /// Signing failed on the master's side.
    #[error("cannot sign the node certificates")]
    Sign(#[source] AuthError),
}

/// The master's dealings with agents (see the module doc). Cheap to share.
pub struct NodeAuthority {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    ca_key: KeyPair,
    authenticator: Arc<Authenticator>,
    agent_client: Arc<ClientConfig>,
}

impl std::fmt::Debug for NodeAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAuthority").finish_non_exhaustive()
    }
}

impl Pki {
    /// The [`NodeAuthority`] of this PKI; join tokens come from `authenticator`.
    pub fn node_authority(
        &self,
        authenticator: Arc<Authenticator>,
    ) -> Result<NodeAuthority, AuthError> {
        let mut roots = RootCertStore::empty();
        let ca_path = self.data_dir().join(super::TLS_DIR).join("ca.crt");
        roots
            .add(self.ca_der().clone())
            .map_err(|e| AuthError::BadCertificate {
                path: ca_path.clone(),
                reason: e.to_string(),
            })?;
        let agent = self.agent_client();
        let cert = certs::parse_cert_pem(&ca_path, agent.cert_pem.as_bytes())?;
        let key_path = self
            .data_dir()
            .join(super::TLS_DIR)
            .join("agent-client.key");
        let key = certs::parse_key_pem(&key_path, &agent.key_pem)?;
        let key = PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| AuthError::Tls { source })?
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![cert], key)
            .map_err(|source| AuthError::Tls { source })?;
        Ok(NodeAuthority {
            ca_pem: self.ca_pem(),
            ca_der: self.ca_der().clone(),
            ca_key: self.ca_key_copy()?,
            authenticator,
            agent_client: Arc::new(config),
        })
    }
}

impl NodeAuthority {
    /// The cluster CA, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// [`ca_hmac`] of the CA with the join token whose id is `token_id`; `None`
    /// when there is no such join token.
    pub fn ca_hmac(&self, token_id: &str) -> Option<String> {
        let token = self.authenticator.join_token(token_id)?;
        Some(ca_hmac(&token, &self.ca_pem))
    }

    /// The join-token user behind an `Authorization` header, if that is what it
    /// carries (a bearer token of a user in `system:bootstrappers`).
    pub fn bootstrapper(&self, authorization: Option<&str>) -> Option<UserInfo> {
        let user = self.authenticator.authenticate(None, authorization)?;
        user.groups
            .iter()
            .any(|g| g == BOOTSTRAP_GROUP)
            .then_some(user)
    }

    /// The TLS client configuration for connections to agents.
    pub fn agent_client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.agent_client)
    }

    /// Signs a joining node's CSRs (PEM): the client certificate gets CN
    /// `system:node:<node_name>` and O `system:nodes` whatever the CSR asked; the
    /// serving certificate gets the same subject and the CSR's names, which must
    /// be DNS names and IP addresses only.
    pub fn sign(
        &self,
        node_name: &str,
        client_csr: &str,
        serving_csr: &str,
    ) -> Result<NodeCerts, JoinError> {
        let errors = api::validation::is_dns1123_subdomain(node_name);
        if !errors.is_empty() {
            return Err(JoinError::BadNodeName {
                name: node_name.to_string(),
                reason: errors.join("; "),
            });
        }
        let client = parse_csr("clientCsr", client_csr)?;
        let serving = parse_csr("servingCsr", serving_csr)?;
        let sans = serving_sans(&serving)?;
        let user = format!("{NODE_USER_PREFIX}{node_name}");
        let ca_path = std::path::Path::new("ca.crt");
        let issuer =
            certs::ca_issuer(&self.ca_der, &self.ca_key, ca_path).map_err(JoinError::Sign)?;
        let client_der = certs::issue_client(&user, Some(NODES_GROUP), &client.public_key, &issuer)
            .map_err(JoinError::Sign)?;
        let serving_der =
            certs::issue_node_serving(&user, NODES_GROUP, sans, &serving.public_key, &issuer)
                .map_err(JoinError::Sign)?;
        Ok(NodeCerts {
            ca: self.ca_pem.clone(),
            client_cert: certs::cert_pem(&client_der),
            serving_cert: certs::cert_pem(&serving_der),
        })
    }
}

/// Parses a PEM CSR and checks its signature.
fn parse_csr(field: &'static str, pem: &str) -> Result<CertificateSigningRequestParams, JoinError> {
    CertificateSigningRequestParams::from_pem(pem).map_err(|e| JoinError::BadCsr {
        field,
        reason: format!("not a PEM certificate signing request with a valid signature ({e})"),
    })
}

/// The names of a serving CSR: at least one, DNS names and IP addresses only.
fn serving_sans(csr: &CertificateSigningRequestParams) -> Result<Vec<SanType>, JoinError> {
    let bad = |reason: String| JoinError::BadCsr {
        field: "servingCsr",
        reason,
    };
    let sans = &csr.params.subject_alt_names;
    if sans.is_empty() {
        return Err(bad(
            "it has no subject alternative names; a serving certificate needs the node's IP addresses and host names".into(),
        ));
    }
    for san in sans {
        match san {
            SanType::IpAddress(_) => {}
            SanType::DnsName(name) => {
                let errors = api::validation::is_dns1123_subdomain(name.as_str());
                if !errors.is_empty() {
                    return Err(bad(format!(
                        "DNS name {:?} is not valid: {}",
                        name.as_str(),
                        errors.join("; ")
                    )));
                }
            }
            other => {
                return Err(bad(format!(
                    "only DNS names and IP addresses may be requested, not {other:?}"
                )))
            }
        }
    }
    if csr.params.is_ca != rcgen::IsCa::NoCa && csr.params.is_ca != rcgen::IsCa::ExplicitNoCa {
        return Err(bad("it asks to be a CA".into()));
    }
    Ok(sans.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn authority() -> (tempfile::TempDir, NodeAuthority) {
        let dir = tempfile::tempdir().unwrap();
        let mut sans = super::super::SanSet::new();
        sans.add("127.0.0.1").unwrap();
        let pki = Pki::load_or_create(dir.path(), &sans).unwrap();
        let token = super::super::ensure_join_token(dir.path()).unwrap();
        assert!(!token.is_empty());
        let authn = Arc::new(Authenticator::new(dir.path(), &[pki.ca_der().clone()]).unwrap());
        let authority = pki.node_authority(authn).unwrap();
        (dir, authority)
    }

    fn csr(sans: &[&str]) -> (KeyPair, String) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let pem = params.serialize_request(&key).unwrap().pem().unwrap();
        (key, pem)
    }

    fn parse(pem: &str) -> Vec<u8> {
        rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn hmac_is_keyed_by_the_token() {
        let a = ca_hmac("abcdef.0123456789abcdef", "CA");
        assert_eq!(a.len(), 64);
        assert_eq!(a, ca_hmac("abcdef.0123456789abcdef", "CA"));
        assert_ne!(a, ca_hmac("abcdef.0123456789abcdeg", "CA"));
        assert_ne!(a, ca_hmac("abcdef.0123456789abcdef", "CA\n"));
        // RFC 4231 test case 2.
        assert_eq!(
            ca_hmac("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn join_token_ids_give_the_hmac() {
        let (dir, authority) = authority();
        let token = std::fs::read_to_string(dir.path().join("join-token")).unwrap();
        let token = token.trim();
        assert_eq!(
            authority.ca_hmac(&token[..6]).as_deref(),
            Some(ca_hmac(token, authority.ca_pem()).as_str())
        );
        assert_eq!(authority.ca_hmac("zzzzzz"), None);
        let user = authority
            .bootstrapper(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(user.name, format!("system:bootstrap:{}", &token[..6]));
        assert!(authority.bootstrapper(Some("Bearer nope")).is_none());
    }

    #[test]
    fn signs_node_certificates_from_csrs() {
        let (_dir, authority) = authority();
        let (client_key, client_csr) = csr(&[]);
        let (serving_key, serving_csr) = csr(&["10.0.0.7", "node-1"]);
        let certs = authority.sign("node-1", &client_csr, &serving_csr).unwrap();
        let client = parse(&certs.client_cert);
        let (cn, groups) = certs::subject_identity(&client).unwrap();
        assert_eq!(cn, "system:node:node-1");
        assert_eq!(groups, ["system:nodes"]);
        let (_, c) = X509Certificate::from_der(&client).unwrap();
        assert_eq!(
            c.public_key().subject_public_key.data.as_ref(),
            client_key.public_key_raw()
        );
        let serving = parse(&certs.serving_cert);
        let info = certs::inspect(
            std::path::Path::new("s"),
            &CertificateDer::from(serving.clone()),
        )
        .unwrap();
        assert!(info.matches_key(&serving_key));
        assert_eq!(info.sans.to_string(), "10.0.0.7,node-1");
        assert!(certs::issued_by(
            &CertificateDer::from(serving),
            &CertificateDer::from(parse(&certs.ca))
        ));
    }

    #[test]
    fn bad_names_and_csrs_are_refused_clearly() {
        let (_dir, authority) = authority();
        let (_, good) = csr(&["10.0.0.7"]);
        let err = authority.sign("Node_1", &good, &good).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid node name \"Node_1\": "),
            "{err}"
        );
        let err = authority.sign("n1", "garbage", &good).unwrap_err();
        assert!(err.to_string().starts_with("invalid clientCsr: "), "{err}");
        let (_, no_sans) = csr(&[]);
        let err = authority.sign("n1", &good, &no_sans).unwrap_err();
        assert!(
            err.to_string().contains("no subject alternative names"),
            "{err}"
        );
        // A CSR whose signature does not match its content.
        let tampered = flip_signed_bit(&good);
        let err = authority.sign("n1", &tampered, &good).unwrap_err();
        assert!(err.to_string().contains("valid signature"), "{err}");
    }

    /// `csr` with one bit of its signed content flipped.
    fn flip_signed_bit(csr: &str) -> String {
        use base64::Engine as _;
        let der = |pem: &str| {
            let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        let mut a = der(csr);
        // The middle of the DER is inside the subject public key.
        let n = a.len() / 2;
        a[n] ^= 0x01;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&a);
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n")
    }
}
