//! Issuing and inspecting X.509 material with rcgen and x509-parser: the CA, the
//! serving certificate, client certificates, and the checks run on files found on
//! disk (parses, key matches, SANs, expiry). No file I/O here.

use std::path::Path;
use std::time::Duration;

use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

use super::{AuthError, SanSet};

/// How long the CA is valid.
pub(crate) const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
/// How long serving and client certificates are valid.
pub(crate) const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// A leaf certificate closer than this to its end is re-issued on start (as k3s does).
pub(crate) const RENEW_BEFORE: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Common name of the cluster CA.
pub const CA_COMMON_NAME: &str = "bosun-ca";

/// A fresh ECDSA P-256 key.
pub(crate) fn new_key(what: &'static str) -> Result<KeyPair, AuthError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| AuthError::Generate { what, source })
}

fn base_params(common_name: &str, validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let now = ASN1Time::now().to_datetime();
    // An hour of slack for clocks that are a little behind ours.
    params.not_before = now - Duration::from_secs(60 * 60);
    params.not_after = now + validity;
    params.serial_number = Some(random_serial());
    params
}

/// A positive 16-byte random serial, so that re-issued certificates never share a
/// serial with their predecessor (rcgen's default derives it from the key).
fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

/// A self-signed CA certificate for `key`, valid for ten years.
pub(crate) fn issue_ca(key: &KeyPair) -> Result<CertificateDer<'static>, AuthError> {
    let mut params = base_params(CA_COMMON_NAME, CA_VALIDITY);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .self_signed(key)
        .map(|c| c.der().clone())
        .map_err(|source| AuthError::Generate {
            what: "CA certificate",
            source,
        })
}

/// A serving certificate for `sans`, for `key`, signed by the CA.
pub(crate) fn issue_server(
    sans: &SanSet,
    key: &KeyPair,
    ca: &Issuer<'_, &KeyPair>,
) -> Result<CertificateDer<'static>, AuthError> {
    let mut params = base_params("bosun-master", LEAF_VALIDITY);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let mut names: Vec<SanType> = sans.ips().map(SanType::IpAddress).collect();
    for name in sans.dns_names() {
        let ia5 = name
            .to_string()
            .try_into()
            .map_err(|e: rcgen::Error| AuthError::BadSan {
                name: name.to_string(),
                reason: e.to_string(),
            })?;
        names.push(SanType::DnsName(ia5));
    }
    params.subject_alt_names = names;
    params
        .signed_by(key, ca)
        .map(|c| c.der().clone())
        .map_err(|source| AuthError::Generate {
            what: "serving certificate",
            source,
        })
}

/// A client certificate with CN `user` and O `group` for the public key `key`
/// (a key pair, or the key of a CSR), signed by the CA. (rcgen keeps one value
/// per attribute type, so a certificate carries at most one group; Kubernetes'
/// own client certificates need no more.)
pub(crate) fn issue_client(
    user: &str,
    group: Option<&str>,
    key: &impl PublicKeyData,
    ca: &Issuer<'_, &KeyPair>,
) -> Result<CertificateDer<'static>, AuthError> {
    let mut params = base_params(user, LEAF_VALIDITY);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params
        .signed_by(key, ca)
        .map(|c| c.der().clone())
        .map_err(|source| AuthError::Generate {
            what: "client certificate",
            source,
        })
}

/// An agent's serving certificate: CN `common_name`, O `group`, for the public
/// key `key` (of the agent's CSR) and the names `sans`, signed by the CA.
pub(crate) fn issue_node_serving(
    common_name: &str,
    group: &str,
    sans: Vec<SanType>,
    key: &impl PublicKeyData,
    ca: &Issuer<'_, &KeyPair>,
) -> Result<CertificateDer<'static>, AuthError> {
    let mut params = base_params(common_name, LEAF_VALIDITY);
    params
        .distinguished_name
        .push(DnType::OrganizationName, group);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = sans;
    params
        .signed_by(key, ca)
        .map(|c| c.der().clone())
        .map_err(|source| AuthError::Generate {
            what: "node serving certificate",
            source,
        })
}

/// The CA as an issuer, from its certificate and key.
pub(crate) fn ca_issuer<'a>(
    ca_der: &CertificateDer<'_>,
    ca_key: &'a KeyPair,
    ca_path: &Path,
) -> Result<Issuer<'a, &'a KeyPair>, AuthError> {
    Issuer::from_ca_cert_der(ca_der, ca_key).map_err(|e| AuthError::BadCertificate {
        path: ca_path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// PEM text of a DER certificate.
pub(crate) fn cert_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The first certificate of a PEM file; an error naming `path` if there is none.
pub(crate) fn parse_cert_pem(
    path: &Path,
    pem: &[u8],
) -> Result<CertificateDer<'static>, AuthError> {
    let bad = |reason: String| AuthError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let der = match rustls_pemfile::certs(&mut &pem[..]).next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => return Err(bad(e.to_string())),
        None => return Err(bad("no CERTIFICATE block found".to_string())),
    };
    X509Certificate::from_der(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    Ok(der)
}

/// A PEM (PKCS#8) private key; an error naming `path` if it cannot be used.
pub(crate) fn parse_key_pem(path: &Path, pem: &str) -> Result<KeyPair, AuthError> {
    KeyPair::from_pem(pem).map_err(|source| AuthError::BadKey {
        path: path.to_path_buf(),
        source,
    })
}

/// What the loader needs to know about a certificate found on disk.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub sans: SanSet,
    pub not_after: ASN1Time,
    /// Subject common name and organisations, if it has a common name.
    pub identity: Option<(String, Vec<String>)>,
    public_key: Vec<u8>,
}

impl CertInfo {
    /// Whether `key` is the private key of this certificate.
    pub fn matches_key(&self, key: &KeyPair) -> bool {
        self.public_key == key.public_key_raw()
    }

    /// Whether the certificate ends within `window` from now.
    pub fn expires_within(&self, window: Duration) -> bool {
        let limit = ASN1Time::now().to_datetime() + window;
        self.not_after.to_datetime() <= limit
    }
}

/// Inspects a certificate that [`parse_cert_pem`] accepted.
pub(crate) fn inspect(path: &Path, der: &CertificateDer<'_>) -> Result<CertInfo, AuthError> {
    let bad = |reason: String| AuthError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(der.as_ref()).map_err(|e| bad(e.to_string()))?;
    let mut sans = SanSet::new();
    if let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| bad(e.to_string()))?
    {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    // A name we would not issue ourselves only means "not in our set".
                    let _ = sans.add_dns(dns);
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.add_ip(ip);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        sans,
        not_after: cert.validity().not_after,
        identity: identity_of(&cert),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Whether `leaf` names `ca` as its issuer and carries a valid signature by it.
/// (Every bosun CA is called `bosun-ca`, so the name alone proves nothing.)
pub(crate) fn issued_by(leaf: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(leaf.as_ref()),
        X509Certificate::from_der(ca.as_ref()),
    ) else {
        return false;
    };
    leaf.issuer().as_raw() == ca.subject().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// The subject common name and organisations of a DER certificate, or `None` if
/// it does not parse or has no common name.
pub(crate) fn subject_identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    identity_of(&cert)
}

fn identity_of(cert: &X509Certificate<'_>) -> Option<(String, Vec<String>)> {
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    if cn.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    Some((cn, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_identity() {
        let ca_key = new_key("CA key").unwrap();
        let ca_der = issue_ca(&ca_key).unwrap();
        let issuer = ca_issuer(&ca_der, &ca_key, Path::new("ca.crt")).unwrap();
        let key = new_key("client key").unwrap();
        let der = issue_client("jane", Some("dev"), &key, &issuer).unwrap();
        let (cn, groups) = subject_identity(&der).unwrap();
        assert_eq!(cn, "jane");
        assert_eq!(groups, ["dev"]);
        let info = inspect(Path::new("c"), &der).unwrap();
        assert!(info.matches_key(&key));
        assert!(!info.matches_key(&ca_key));
        assert!(issued_by(&der, &ca_der));
        let other_key = new_key("CA key").unwrap();
        let other_ca = issue_ca(&other_key).unwrap();
        assert!(!issued_by(&der, &other_ca), "same CA name, different key");
        assert!(!info.expires_within(Duration::from_secs(300 * 24 * 3600)));
        assert!(info.expires_within(Duration::from_secs(400 * 24 * 3600)));
    }

    #[test]
    fn pem_round_trip_and_errors() {
        let ca_key = new_key("CA key").unwrap();
        let ca_der = issue_ca(&ca_key).unwrap();
        let pem = cert_pem(&ca_der);
        let back = parse_cert_pem(Path::new("/x/ca.crt"), pem.as_bytes()).unwrap();
        assert_eq!(back, ca_der);
        let err = parse_cert_pem(Path::new("/x/ca.crt"), b"garbage").unwrap_err();
        assert!(err.to_string().contains("/x/ca.crt"), "{err}");
        let err = parse_key_pem(Path::new("/x/ca.key"), "garbage").unwrap_err();
        assert!(err.to_string().contains("/x/ca.key"), "{err}");
    }

    #[test]
    fn serials_differ_for_same_key() {
        let ca_key = new_key("CA key").unwrap();
        let ca_der = issue_ca(&ca_key).unwrap();
        let issuer = ca_issuer(&ca_der, &ca_key, Path::new("ca.crt")).unwrap();
        let key = new_key("server key").unwrap();
        let mut sans = SanSet::new();
        sans.add("127.0.0.1").unwrap();
        let a = issue_server(&sans, &key, &issuer).unwrap();
        let b = issue_server(&sans, &key, &issuer).unwrap();
        let serial = |der: &CertificateDer<'_>| {
            X509Certificate::from_der(der.as_ref())
                .unwrap()
                .1
                .raw_serial()
                .to_vec()
        };
        assert_ne!(serial(&a), serial(&b));
    }
}
