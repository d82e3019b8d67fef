//! TLS for the client: a rustls configuration (ring, TLS 1.2 and 1.3, ALPN `h2`
//! then `http/1.1`) trusting only the cluster CA, and a connector for hyper-util's
//! pooled client that dials TCP, runs the handshake and tells the pool whether
//! the server chose HTTP/2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::{ClientError, Credentials};

/// Builds the rustls client configuration for `ca_pem` and, for certificate
/// credentials, the client certificate.
pub(super) fn client_config(
    ca_pem: &str,
    credentials: &Credentials,
) -> Result<Arc<ClientConfig>, ClientError> {
    let mut roots = RootCertStore::empty();
    let cas = certs(ca_pem, "certificate authority")?;
    if cas.is_empty() {
        return Err(ClientError::Pem {
            what: "certificate authority",
            source: io::Error::new(io::ErrorKind::InvalidData, "no certificate in PEM"),
        });
    }
    for ca in cas {
        roots
            .add(ca)
            .map_err(|source| ClientError::Tls { source })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| ClientError::Tls { source })?
        .with_root_certificates(roots);
    let mut config = match credentials {
        Credentials::ClientCert { cert_pem, key_pem } => {
            let chain = certs(cert_pem, "client certificate")?;
            let key = rustls_pemfile::private_key(&mut cert_reader(key_pem))
                .map_err(|source| ClientError::Pem {
                    what: "client key",
                    source,
                })?
                .ok_or_else(|| ClientError::Pem {
                    what: "client key",
                    source: io::Error::new(io::ErrorKind::InvalidData, "no private key in PEM"),
                })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|source| ClientError::Tls { source })?
        }
        Credentials::Token(_) => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn cert_reader(pem: &str) -> io::BufReader<&[u8]> {
    io::BufReader::new(pem.as_bytes())
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    rustls_pemfile::certs(&mut cert_reader(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ClientError::Pem { what, source })
}

/// Dials `https://` URIs for hyper-util's client: TCP (no Nagle), then TLS with
/// the server name taken from the URI host (a DNS name or an IP address).
#[derive(Clone)]
pub(super) struct HttpsConnector {
    tcp: HttpConnector,
    tls: TlsConnector,
}

impl HttpsConnector {
    pub(super) fn new(config: Arc<ClientConfig>) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        HttpsConnector {
            tcp,
            tls: TlsConnector::from(config),
        }
    }
}

/// A TLS connection that reports the negotiated protocol to the pool.
pub(super) struct HttpsStream(TokioIo<TlsStream<TcpStream>>);

impl Connection for HttpsStream {
    fn connected(&self) -> Connected {
        let (tcp, session) = self.0.inner().get_ref();
        let connected = tcp.connected();
        if session.alpn_protocol() == Some(b"h2") {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for HttpsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for HttpsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for HttpsConnector {
    type Response = HttpsStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpsStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            if uri.scheme_str() != Some("https") {
                return Err(format!("refusing to connect to {uri} without TLS").into());
            }
            let host = uri
                .host()
                .ok_or_else(|| format!("no host in {uri}"))?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let name = ServerName::try_from(host)?;
            let stream = tcp.call(uri).await?.into_inner();
            let tls_stream = tls.connect(name, stream).await?;
            Ok(HttpsStream(TokioIo::new(tls_stream)))
        })
    }
}
