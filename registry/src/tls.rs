//! TLS for the listener (rustls, PEM files, HTTP/2 and HTTP/1.1 by ALPN), optionally with client
//! certificates (mutual TLS: a verified certificate's common name is the user). The files are
//! re-read on SIGHUP and when they change; each new connection uses the newest configuration,
//! open connections keep theirs, and files that do not load keep the previous configuration
//! (the reason is logged).

use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;
use crate::watch::{Stamps, stamps};

/// The current TLS configuration and what its files looked like.
#[derive(Debug)]
pub struct TlsState {
    files: Tls,
    current: RwLock<(Arc<ServerConfig>, Stamps)>,
}

fn load(files: &Tls) -> Result<ServerConfig, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("read {}: {e}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", files.cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| format!("{}: {e}", files.key.display()))?;
    // AES-128-GCM first (the server's order, not the client's): the fastest suite with AES-NI,
    // which bulk transfers (blobs) notice.
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites.sort_by_key(|suite| match suite.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        _ => 2,
    });
    let provider = Arc::new(provider);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("read {}: {e}", ca.display()))? {
                roots
                    .add(cert.map_err(|e| format!("{}: {e}", ca.display()))?)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            // Clients without a certificate may still sign in with a password or a token.
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{} and {}: {e}", files.cert.display(), files.key.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(config)
}

impl TlsState {
    /// Loads the files; unusable ones are a configuration error.
    pub fn open(files: &Tls) -> Result<Self, String> {
        let config = load(files)?;
        let state = TlsState {
            files: files.clone(),
            current: RwLock::new((Arc::new(config), Vec::new())),
        };
        state.current.write().expect("tls lock").1 = state.stamps();
        Ok(state)
    }

    fn stamps(&self) -> Stamps {
        let mut paths = vec![self.files.cert.as_path(), self.files.key.as_path()];
        paths.extend(self.files.client_ca.as_deref());
        stamps(paths)
    }

    /// The configuration new connections use.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("tls lock").0.clone()
    }

    /// Re-reads the files (`force`: even if they look unchanged, as on SIGHUP); keeps the
    /// current configuration if they do not load. Returns whether it changed.
    pub fn reload(&self, force: bool) -> bool {
        let stamps = self.stamps();
        if !force && self.current.read().expect("tls lock").1 == stamps {
            return false;
        }
        match load(&self.files) {
            Ok(config) => {
                *self.current.write().expect("tls lock") = (Arc::new(config), stamps);
                tracing::info!("reloaded the TLS certificate");
                true
            }
            Err(e) => {
                // Remember the stamps so a broken file is reported once, not every poll.
                self.current.write().expect("tls lock").1 = stamps;
                tracing::error!(error = %e, "the TLS files do not load; keeping the previous certificate");
                false
            }
        }
    }
}

/// The common name of a client certificate (already verified by the handshake).
pub fn certificate_user(certificate: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_owned())
}
