//! TLS for the listeners (`stomp+ssl://`, OpenWire's `ssl://`), with rustls.
//!
//! The broker's certificate chain and key come from PEM files; with a client
//! CA file, clients are asked for certificates signed by it (mutual TLS),
//! and with `require_client_cert` a client without one is refused in the
//! handshake. SIGHUP reads the files again: connections made after it use
//! the new certificate, those before keep theirs. A file that does not load
//! leaves the one in force.
//!
//! The handshake runs in the connection's own task, within the protocol's
//! connect timeout, so a client that opens a socket and says nothing holds
//! one task for that long and nothing else.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why the TLS files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("TLS {what} {path}: {reason}")]
    File {
        /// Which file it is.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate, key or CA.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Where the PEM files are (see the module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The broker's certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that sign client certificates: set, clients are asked
    /// for one.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate (needs `client_ca`).
    pub require_client_cert: bool,
}

/// The listeners' TLS, reloadable.
pub struct Tls {
    files: TlsFiles,
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    /// Loads the files.
    ///
    /// # Errors
    /// If a file cannot be read or rustls refuses what it holds.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        let acceptor = acceptor(&files)?;
        Ok(Tls {
            files,
            acceptor: RwLock::new(acceptor),
        })
    }

    /// The acceptor for a new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().clone()
    }

    /// Reads the files again (SIGHUP); on an error the old ones stay.
    ///
    /// # Errors
    /// As [`Tls::load`].
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = acceptor(&self.files)?;
        *self.acceptor.write() = acceptor;
        Ok(())
    }
}

/// rustls over *ring*: it builds with the C compiler alone, where aws-lc-rs
/// (rustls's default, which adds post-quantum key exchange, hence ring's
/// provider being marked deprecated) needs more of the build machine. The
/// classical suites it offers are TLS 1.3 and 1.2's recommended ones.
#[allow(deprecated)]
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None if files.require_client_cert => {
            return Err(TlsError::Config(
                "require_client_cert needs a client_ca_file to check certificates against".into(),
            ))
        }
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "client CA file")? {
                roots
                    .add(cert)
                    .map_err(|e| file_error("client CA file", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if files.require_client_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?,
            )
        }
    };
    let chain = certificates(&files.cert, "certificate file")?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error("key file", &files.key, e))?;
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(file_error(what, path, "no certificate in it"));
    }
    Ok(certs)
}

fn file_error(what: &'static str, path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    }
}
