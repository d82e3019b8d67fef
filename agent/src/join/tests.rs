//! Unit tests of the pure parts of joining: the HMAC, token ids, serving
//! names, the kubeconfig and the checks on certificates found on disk (with a
//! CA made here by rcgen).

use super::*;
use rcgen::{ExtendedKeyUsagePurpose, IsCa, Issuer};

struct Ca {
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "bosun-ca");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { key, pem }
    }

    fn issue(&self, cn: &str, o: &str, sans: &[&str], days: i64) -> (String, String) {
        let issuer = Issuer::from_ca_cert_pem(&self.pem, &self.key).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.distinguished_name.push(DnType::OrganizationName, o);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let now = x509_parser::time::ASN1Time::now().to_datetime();
        params.not_before = now - Duration::from_secs(3600);
        params.not_after = now + Duration::from_secs((days * 86_400) as u64);
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn creds(ca: &Ca, cn: &str, sans: &[&str], days: i64) -> Credentials {
    let (client_cert_pem, client_key_pem) = ca.issue(cn, NODES_GROUP, &[], days);
    let (serving_cert_pem, serving_key_pem) = ca.issue(cn, NODES_GROUP, sans, days);
    Credentials {
        server: "https://127.0.0.1:6443".into(),
        ca_pem: ca.pem.clone(),
        client_cert_pem,
        client_key_pem,
        serving_cert_pem,
        serving_key_pem,
        kubeconfig: PathBuf::new(),
        joined: false,
    }
}

#[test]
fn hmac_round_trip_and_constant_format() {
    let mac = ca_hmac("abcdef.0123456789abcdef", "PEM");
    assert!(ca_hmac_matches("abcdef.0123456789abcdef", "PEM", &mac));
    assert!(ca_hmac_matches(
        "abcdef.0123456789abcdef",
        "PEM",
        &mac.to_uppercase()
    ));
    assert!(!ca_hmac_matches("abcdef.0123456789abcdeg", "PEM", &mac));
    assert!(!ca_hmac_matches("abcdef.0123456789abcdef", "PEM2", &mac));
    assert!(!ca_hmac_matches("abcdef.0123456789abcdef", "PEM", "zz"));
    // RFC 4231 test case 2: the master computes the same.
    assert_eq!(
        ca_hmac("Jefe", "what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn token_ids_and_bad_token_files() {
    assert_eq!(token_id("abcdef.0123456789abcdef"), Some("abcdef"));
    assert_eq!(token_id("abcdef.0123456789abcde"), None);
    assert_eq!(token_id("ABCDEF.0123456789abcdef"), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "abcdef.0123456789abcdef\n").unwrap();
    assert_eq!(read_token(&path).unwrap(), "abcdef.0123456789abcdef");
    std::fs::write(&path, "nope\n").unwrap();
    let err = read_token(&path).unwrap_err();
    assert!(err.to_string().contains("bosun token create"), "{err}");
    let err = read_token(&dir.path().join("missing")).unwrap_err();
    assert!(
        err.to_string().starts_with("reading the token file "),
        "{err}"
    );
}

#[test]
fn serving_names_are_ips_then_names() {
    let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
    assert_eq!(
        serving_names("n1", Some("Host-A"), &ips),
        ["10.0.0.5", "fd00::5", "n1", "host-a"]
    );
    assert_eq!(serving_names("n1", Some("n1"), &[]), ["n1"]);
    assert_eq!(serving_names("n1", Some("bad_name"), &[]), ["n1"]);
}

#[test]
fn the_kubeconfig_is_what_the_client_reads() {
    let ca = Ca::new();
    let c = creds(&ca, "system:node:n1", &["10.0.0.5"], 365);
    let text = kubeconfig_yaml(&c, "n1");
    let config = api::client::Config::from_kubeconfig_yaml(&text, Path::new("/")).unwrap();
    assert_eq!(config, c.client_config());
    assert!(text.contains("user: system:node:n1"), "{text}");
}

#[test]
fn certificates_on_disk_are_checked() {
    let ca = Ca::new();
    let names = vec!["10.0.0.5".to_string(), "n1".to_string()];
    let good = creds(&ca, "system:node:n1", &["10.0.0.5", "n1"], 365);
    assert_eq!(check_pki(&good, "n1", &names), Ok(()));

    let err = check_pki(&good, "n2", &names).unwrap_err();
    assert!(err.contains("not system:node:n2"), "{err}");

    let more = vec!["10.0.0.6".to_string()];
    let err = check_pki(&good, "n1", &more).unwrap_err();
    assert!(err.contains("lacks [\"10.0.0.6\"]"), "{err}");

    let mut swapped = good.clone();
    swapped.client_key_pem = good.serving_key_pem.clone();
    let err = check_pki(&swapped, "n1", &names).unwrap_err();
    assert_eq!(err, "the client key does not match its certificate");

    let other = Ca::new();
    let mut foreign = good.clone();
    foreign.ca_pem = other.pem.clone();
    let err = check_pki(&foreign, "n1", &names).unwrap_err();
    assert!(err.contains("not issued by the CA"), "{err}");

    let expiring = creds(&ca, "system:node:n1", &["10.0.0.5", "n1"], 10);
    let err = check_pki(&expiring, "n1", &names).unwrap_err();
    assert!(err.contains("renewing"), "{err}");
}

#[test]
fn files_are_written_private_and_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a/pki");
    ensure_private_dir(&sub).unwrap();
    let path = sub.join("node.key");
    write_private(&path, "one").unwrap();
    write_private(&path, "two").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&sub), 0o700);
    assert_eq!(
        std::fs::read_dir(&sub).unwrap().count(),
        1,
        "no temporary file left"
    );
}
