//! TLS for the front ends and the controller-worker links: loading PEM certificates,
//! keys and CA bundles, the rustls server and client configurations made from them
//! (the `ring` provider, TLS 1.2 and 1.3), and handshakes under a deadline over any
//! futures-io stream (glommio's `TcpStream` in production).
//!
//! Every user goes through here: the HTTP front end ([`TlsServer::acceptor`] and
//! [`accept`]), the gRPC front end (the same, with `h2` in ALPN), the worker's link
//! listener and the controller's connector ([`TlsClient`] and [`connect`]).
//! Certificates are read once, at start: a changed file takes effect on restart.

use futures_lite::io::{AsyncRead, AsyncWrite};
pub use futures_rustls::client::TlsStream as ClientTlsStream;
pub use futures_rustls::server::TlsStream as ServerTlsStream;
pub use futures_rustls::{pki_types, rustls, TlsAcceptor, TlsConnector};
use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::crypto::{ring, CryptoProvider};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the kind asked for.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// What the file should hold (`certificate chain`, `private key`, `CA bundle`).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match the
    /// certificate).
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A server name that cannot be checked against a certificate.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// rustls' `ring` provider. rustls deprecates it because it has no post-quantum key
/// exchange (only the aws-lc-rs provider does, and that one needs cmake and a C
/// toolchain to build): classical X25519/P-256 key exchange is what links get.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn pem_error(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// The certificates in a PEM file (at least one).
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(what, path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error("private key", path, e))
}

/// A server's certificate chain and key, loaded and checked.
#[derive(Clone)]
pub struct TlsServer {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer").finish_non_exhaustive()
    }
}

impl TlsServer {
    /// A server identity from a PEM certificate chain (leaf first) and its key,
    /// offering the ALPN protocols in `alpn` (e.g. `[b"h2"]` for gRPC; none for
    /// HTTP/1.1 and the links). Clients are not asked for certificates.
    pub fn from_pem_files(cert: &Path, key: &Path, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let chain = load_certs(cert, "certificate chain")?;
        let key = load_key(key)?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration (for a front end that runs its own handshakes).
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.config)
    }

    /// An acceptor for [`accept`].
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config())
    }
}

/// The CAs a client trusts to identify servers.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client trusting the CA certificates in the PEM file `ca` (and nothing else).
    pub fn from_ca_file(ca: &Path) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in load_certs(ca, "CA bundle")? {
            roots.add(c).map_err(|e| pem_error("CA bundle", ca, e))?;
        }
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }

    /// A connector for [`connect`].
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.config())
    }
}

/// The name a server's certificate must carry: a DNS name or an IP address (as
/// in `host` of `host:port`).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))
}

async fn within<T>(
    timeout: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    futures_lite::future::or(f, async {
        crate::timer::sleep(timeout).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, what))
    })
    .await
}

/// The server side of a TLS handshake on `stream`, failing after `timeout` (a peer
/// that connects and sends nothing, or plain text, is refused here).
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &TlsAcceptor,
    stream: S,
    timeout: Duration,
) -> io::Result<ServerTlsStream<S>> {
    within(
        timeout,
        "TLS handshake not completed in time",
        acceptor.accept(stream),
    )
    .await
}

/// The client side of a TLS handshake on `stream` with the server `name`, failing
/// after `timeout`. An untrusted or mismatched certificate fails with the reason
/// (rustls' error, e.g. "invalid peer certificate: UnknownIssuer").
pub async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
    connector: &TlsConnector,
    name: ServerName<'static>,
    stream: S,
    timeout: Duration,
) -> io::Result<ClientTlsStream<S>> {
    within(
        timeout,
        "TLS handshake not completed in time",
        connector.connect(name, stream),
    )
    .await
}

/// TLS links do not busy-poll: rustls decrypts only inside async reads, so
/// `read_now` answers "cannot" and the frame reader waits instead.
impl<S> crate::ReadNow for ServerTlsStream<S> {}

/// See the server stream's impl.
impl<S> crate::ReadNow for ClientTlsStream<S> {}
