//! TLS of the authenticated port: the agent's serving certificate, and client
//! certificates required and verified against the cluster CA (rustls
//! `WebPkiClientVerifier`); a client without one fails the handshake.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::ServerError;

fn read(path: &Path) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|source| ServerError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certs(
    pem: &[u8],
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, ServerError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
        .filter_map(|c| c.ok())
        .collect();
    if certs.is_empty() {
        return Err(ServerError::NoPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A rustls server configuration from PEM files: the cluster CA (`ca`), the
/// serving certificate chain (`cert`) and its key (`key`, PKCS#8, SEC1 or RSA).
pub fn server_config(ca: &Path, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, ServerError> {
    let ca_pem = read(ca)?;
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let mut roots = RootCertStore::empty();
    for c in certs(&ca_pem, ca, "CA certificate")? {
        roots.add(c).map_err(|source| ServerError::Tls { source })?;
    }
    let chain = certs(&cert_pem, cert, "certificate")?;
    let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or_else(|| ServerError::NoPem {
            what: "private key",
            path: key.to_path_buf(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|source| ServerError::Verifier { source })?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ServerError::Tls { source })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key_der)
        .map_err(|source| ServerError::Tls { source })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The group whose members may use the authenticated port: the master's
/// client certificate (and the cluster admin's) carry it; nodes' do not, so
/// one node cannot read another node's logs.
pub const ALLOWED_GROUP: &str = "system:masters";

/// Whether the client that presented `chain` (leaf first) may use the port.
pub fn client_allowed(chain: Option<&[CertificateDer<'_>]>) -> bool {
    let Some(leaf) = chain.and_then(|c| c.first()) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return false;
    };
    let allowed = cert
        .subject()
        .iter_organization()
        .any(|o| o.as_str().is_ok_and(|o| o == ALLOWED_GROUP));
    allowed
}
