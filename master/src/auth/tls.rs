//! The API server's TLS configuration: the serving certificate, ALPN `h2` and
//! `http/1.1`, and optional client certificates verified against the CAs the
//! [`Authenticator`] trusts, so both certificate and bearer-token clients connect.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{AuthError, Authenticator, Pki};

/// ALPN protocols offered, most preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl Pki {
    /// A rustls server configuration for the API server (ring provider, TLS 1.2
    /// and 1.3). Clients may present a certificate; if they do, it must chain to
    /// one of `authenticator`'s client CAs or the handshake fails.
    pub fn server_config(
        &self,
        authenticator: Arc<Authenticator>,
    ) -> Result<Arc<ServerConfig>, AuthError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(
            authenticator.client_roots(),
            Arc::clone(&provider),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|source| AuthError::ClientVerifier { source })?;
        let chain: Vec<CertificateDer<'static>> = vec![self.server_cert_der().clone()];
        let key = PrivateKeyDer::Pkcs8(self.server_key_der());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| AuthError::Tls { source })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|source| AuthError::Tls { source })?;
        config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}
