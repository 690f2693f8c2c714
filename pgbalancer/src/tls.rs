//! TLS for clients, as PgBouncer's `client_tls_*`: with a certificate and key, pgbalancer answers
//! a client's SSLRequest itself and terminates its TLS, so it reads every StartupMessage and
//! CancelRequest, encrypted or not, and routes cancels exactly. Without one (`off`), a client's
//! encryption request goes to the server as before and the session is relayed opaque.
//!
//! The certificate and key are read once at start; their contents are never logged or shown,
//! only their paths.
//!
//! TLS to the servers (`--server-tls`, as PgBouncer's `server_tls_sslmode`) is separate: with
//! `prefer` or `require` every connection to a server, sessions and health checks alike, starts
//! with an SSLRequest and goes on inside TLS. The server's certificate is not verified (libpq's
//! `sslmode=require`): it protects against eavesdropping, not against an impostor on the path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

/// What pgbalancer does with clients' TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Not terminated: an SSLRequest goes to the server, which answers it (the default without a
    /// certificate).
    #[default]
    Off,
    /// Terminated when the client asks for it; plain clients are served too (the default with a
    /// certificate).
    Prefer,
    /// Terminated, and a plain StartupMessage is refused with SQLSTATE 28000. A plain
    /// CancelRequest is still routed (libpq before 17 sends cancels unencrypted).
    Require,
}

/// Clients' TLS terminated here: the mode and the loaded certificate.
#[derive(Clone)]
pub struct ClientTls {
    pub mode: TlsMode,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub acceptor: TlsAcceptor,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Paths only: never the key.
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientTls {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode && self.cert == other.cert && self.key == other.key
    }
}

impl Eq for ClientTls {}

impl ClientTls {
    /// Loads `cert` (PEM, the chain leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1) for
    /// `mode`. Errors name the file and what is wrong with it, never its contents.
    pub fn load(mode: TlsMode, cert: &Path, key: &Path) -> Result<Self, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| format!("{}: {}", cert.display(), pem_error(&e)))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {}", cert.display(), pem_error(&e)))?;
        if chain.is_empty() {
            return Err(format!(
                "{}: no certificate in it (expected PEM \"BEGIN CERTIFICATE\")",
                cert.display()
            ));
        }
        let private = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("{}: {}", key.display(), pem_error(&e)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| {
                format!(
                    "{} and {} do not make a usable certificate: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
        Ok(Self {
            mode,
            cert: cert.to_owned(),
            key: key.to_owned(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// What pgbalancer does about TLS to the servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerTlsMode {
    /// Plain TCP.
    #[default]
    Off,
    /// TLS where the server agrees to it, plain where it answers `N`.
    Prefer,
    /// TLS, or the server is not used (a failed connect, a failed check).
    Require,
}

/// TLS to the servers: the mode and a client config that accepts any certificate.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: ServerTlsMode,
    connector: tokio_rustls::TlsConnector,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ServerTls {
    fn eq(&self, other: &Self) -> bool {
        self.mode == other.mode
    }
}

impl Eq for ServerTls {}

/// A connection to a server, plain or inside TLS.
pub enum ServerStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ServerTls {
    /// `None` for `off`.
    pub fn new(mode: ServerTlsMode) -> Option<Self> {
        if mode == ServerTlsMode::Off {
            return None;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Some(Self {
            mode,
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    /// Asks the server on `tcp` for TLS (an SSLRequest) and makes the handshake. A server that
    /// answers `N` stays plain with `prefer` and is an error with `require`.
    pub async fn start(&self, mut tcp: TcpStream) -> io::Result<ServerStream> {
        tcp.write_all(&crate::protocol::FirstPacket::Ssl.encode())
            .await?;
        match tcp.read_u8().await? {
            b'S' => {}
            b'N' if self.mode == ServerTlsMode::Prefer => return Ok(ServerStream::Plain(tcp)),
            b'N' => {
                return Err(io::Error::other(
                    "the server refused TLS (server-tls require; is ssl on?)",
                ))
            }
            other => {
                return Err(io::Error::other(format!(
                    "not a Postgres answer to an SSLRequest: byte {other}"
                )))
            }
        }
        // Any name: the certificate is not checked against it.
        let name = rustls_pki_types::ServerName::try_from("postgres").expect("a valid name");
        let stream = self.connector.connect(name, tcp).await?;
        Ok(ServerStream::Tls(Box::new(stream)))
    }
}

/// Accepts any server certificate (libpq's `sslmode=require`), still checking that the server
/// holds its key (the handshake's signatures).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            ServerStream::Plain($s) => $e,
            ServerStream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl ServerStream {
    pub fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(_))
    }
}

/// A PEM error in words, without any of the file's bytes.
fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "nothing of the expected kind in it (expected PEM)".to_owned(),
        _ => "not valid PEM".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let e = ClientTls::load(
            TlsMode::Prefer,
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
        )
        .unwrap_err();
        assert!(e.starts_with("/nonexistent/cert.pem: "), "{e}");
    }

    #[test]
    fn a_file_without_a_certificate_is_refused_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "secret-looking text, not PEM\n").unwrap();
        let e = ClientTls::load(TlsMode::Prefer, &cert, &cert).unwrap_err();
        assert!(e.contains("no certificate"), "{e}");
        assert!(!e.contains("secret-looking"), "{e}");
    }
}
