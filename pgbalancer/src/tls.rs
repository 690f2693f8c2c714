//! TLS for clients, as PgBouncer's `client_tls_*`: with a certificate and key, pgbalancer answers
//! a client's SSLRequest itself and terminates its TLS, so it reads every StartupMessage and
//! CancelRequest, encrypted or not, and routes cancels exactly. Without one (`off`), a client's
//! encryption request goes to the server as before and the session is relayed opaque.
//!
//! The certificate and key are read once at start; their contents are never logged or shown,
//! only their paths.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
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
