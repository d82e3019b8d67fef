//! The error type of the `auth` module: every variant names the file, the
//! certificate or the setting it is about, so a user knows what to fix.

use std::path::PathBuf;

/// What can go wrong while preparing PKI material, tokens, kubeconfigs or TLS.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A directory could not be created or secured.
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file exists but could not be read.
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (or renamed into place, or given its mode).
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file another file depends on is missing (e.g. `ca.crt` without `ca.key`).
    #[error("{path} is missing but {needed_by} exists; restore it or remove both to start over")]
    Missing { path: PathBuf, needed_by: PathBuf },
    /// A certificate file is not one PEM certificate we can parse.
    #[error("{path} is not a valid PEM certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    /// A private key file is not a PEM private key we can use.
    #[error("{path} is not a valid PEM private key")]
    BadKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    /// A certificate and the key stored beside it do not belong together.
    #[error("certificate {cert} does not match private key {key}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// Generating a key or signing a certificate failed.
    #[error("cannot generate the {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A subject alternative name is neither an IP address nor a valid DNS name.
    #[error("invalid subject alternative name {name:?}: {reason}")]
    BadSan { name: String, reason: String },
    /// A line of the token file (kube-apiserver `--token-auth-file` format) is malformed.
    #[error("{path} line {line}: {reason}")]
    TokenFile {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    /// The join-token file does not hold a token of the form `abcdef.0123456789abcdef`.
    #[error("{path} does not hold a join token of the form <6 chars>.<16 chars> (a-z, 0-9)")]
    BadJoinToken { path: PathBuf },
    /// The TLS server configuration could not be built.
    #[error("cannot build the TLS server configuration")]
    Tls {
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built.
    #[error("cannot build the client certificate verifier")]
    ClientVerifier {
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// The kubeconfig could not be serialised.
    #[error("cannot serialise the kubeconfig for {path}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: serde_yaml_ng::Error,
    },
}
