//! Who is making a request: a client certificate verified by the TLS layer
//! (user = CN, groups = O) or a bearer token from the token file. Authorization
//! (what that user may do) is not decided here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::certs;
use super::tokens::{TokenFile, TOKENS_FILE};
use super::AuthError;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// Authenticates requests by client certificate or bearer token.
#[derive(Debug)]
pub struct Authenticator {
    client_roots: Arc<RootCertStore>,
    tokens: TokenFile,
}

impl Authenticator {
    /// An authenticator trusting client certificates issued by `client_ca` and the
    /// bearer tokens of `<data-dir>/tokens.csv` (re-read when it changes).
    pub fn new(data_dir: &Path, client_ca: &[CertificateDer<'static>]) -> Result<Self, AuthError> {
        let mut roots = RootCertStore::empty();
        let ca_path = data_dir.join(super::pki::TLS_DIR).join("ca.crt");
        for der in client_ca {
            roots
                .add(der.clone())
                .map_err(|e| AuthError::BadCertificate {
                    path: ca_path.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Authenticator {
            client_roots: Arc::new(roots),
            tokens: TokenFile::load(data_dir.join(TOKENS_FILE))?,
        })
    }

    /// Sets how often the token file's metadata is checked (default one second).
    pub fn with_token_recheck_interval(mut self, interval: Duration) -> Self {
        self.tokens = self.tokens.with_recheck_interval(interval);
        self
    }

    /// The CAs whose client certificates are accepted; the TLS layer verifies
    /// presented certificates against these.
    pub fn client_roots(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.client_roots)
    }

    /// The user behind a request. `peer_certs` must be the peer certificates of a
    /// TLS connection whose server configuration came from
    /// [`Pki::server_config`](super::Pki::server_config) with this authenticator:
    /// rustls has verified them against [`Self::client_roots`], so they are not
    /// verified again here. A client certificate wins over a bearer token, as in
    /// kube-apiserver. `authorization` is the `Authorization` header value.
    pub fn authenticate(
        &self,
        peer_certs: Option<&[CertificateDer<'static>]>,
        authorization: Option<&str>,
    ) -> Option<UserInfo> {
        if let Some(leaf) = peer_certs.and_then(|certs| certs.first()) {
            if let Some((name, groups)) = certs::subject_identity(leaf.as_ref()) {
                return Some(UserInfo { name, groups });
            }
        }
        let token = bearer_token(authorization?)?;
        self.tokens.lookup(token)
    }
}

impl Authenticator {
    /// The join token whose id is `id` (the part before the dot), if the token
    /// file has one for user `system:bootstrap:<id>` in `system:bootstrappers`.
    pub fn join_token(&self, id: &str) -> Option<String> {
        self.tokens.join_token(id)
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive); `None` for other schemes or an empty token.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic YWJj"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn token_users_and_unknown_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(TOKENS_FILE),
            "s3cret,alice,1,\"dev,system:masters\"\n",
        )
        .unwrap();
        let auth = Authenticator::new(dir.path(), &[]).unwrap();
        let user = auth.authenticate(None, Some("Bearer s3cret")).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.groups, ["dev", "system:masters"]);
        assert_eq!(auth.authenticate(None, Some("Bearer s3cre")), None);
        assert_eq!(auth.authenticate(None, Some("Bearer s3cret0")), None);
        assert_eq!(auth.authenticate(None, Some("Basic s3cret")), None);
        assert_eq!(auth.authenticate(None, None), None);
        assert_eq!(auth.authenticate(Some(&[]), None), None);
    }

    #[test]
    fn malformed_token_file_fails_startup_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOKENS_FILE), "lonely\n").unwrap();
        let err = Authenticator::new(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("tokens.csv line 1"), "{err}");
    }
}
