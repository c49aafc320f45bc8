//! HTTPS for `serve`: the certificate chain and private key (PEM files, `tls_cert` and
//! `tls_key`) loaded into a rustls configuration (ring provider, as the delivery client and sqlx use),
//! and loaded again on SIGHUP so a renewed certificate is used without a restart.
//!
//! The one idea to know: each new connection takes the configuration current when it is
//! accepted; a reload swaps it for the connections after, and a reload that fails (a file
//! half-written, a key that does not fit) keeps the previous one and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{anyhow, Context};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Where the certificate chain and its key are (part of the resolved config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The TLS side of the API listener: the files, and the configuration loaded from them.
#[derive(Clone)]
pub struct Tls {
    files: Arc<TlsFiles>,
    current: Arc<RwLock<TlsAcceptor>>,
}

impl Tls {
    /// Loads the files; the error is one line naming the file at fault.
    pub fn load(files: TlsFiles) -> anyhow::Result<Tls> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&files)?));
        Ok(Tls {
            files: Arc::new(files),
            current: Arc::new(RwLock::new(acceptor)),
        })
    }

    /// Loads the files again; on success new connections use them, on failure nothing changes.
    pub fn reload(&self) -> anyhow::Result<()> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(&self.files)?));
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = acceptor;
        Ok(())
    }

    /// What a new connection's handshake uses.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn server_config(files: &TlsFiles) -> anyhow::Result<ServerConfig> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow!(
                "tls_key (HOOKD_TLS_KEY) {} does not fit the certificate in {}: {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let what = "tls_cert (HOOKD_TLS_CERT)";
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("{what} {}: not valid PEM: {e}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{what} {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
        path.display()
    );
    Ok(certs)
}

fn read_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let what = "tls_key (HOOKD_TLS_KEY)";
    let bytes = read(what, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => anyhow!(
            "{what} {}: no private key in it (expected PEM: -----BEGIN PRIVATE KEY-----)",
            path.display()
        ),
        e => anyhow!("{what} {}: not valid PEM: {e}", path.display()),
    })
}

fn read(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("{what}: cannot read {}: {e}", path.display()))
}
