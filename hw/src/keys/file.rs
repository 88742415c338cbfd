//! Keys kept in PEM files on disk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::{self, PemObject};
use rustls::sign::{CertifiedKey, SigningKey};

use super::{KeyError, KeyMode, KeyProvider, certify, load_cert_chain};

/// Serves a certificate chain and a private key read from PEM files on every [`load`].
///
/// [`load`]: KeyProvider::load
#[derive(Debug, Clone)]
pub struct FileKeyProvider {
    cert_chain_pem: PathBuf,
    key_pem: PathBuf,
}

impl FileKeyProvider {
    /// A provider reading the chain (leaf first) and the key from these PEM files.
    pub fn new(cert_chain_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
        }
    }
}

impl KeyProvider for FileKeyProvider {
    fn mode(&self) -> KeyMode {
        KeyMode::File
    }

    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError> {
        let chain = load_cert_chain(&self.cert_chain_pem)?;
        let pem = vigil_files::read(&self.key_pem, vigil_files::FileKind::PrivateKey)?;
        let key = signing_key_from_pem(&pem, &self.key_pem)?;
        certify(chain, key, &self.cert_chain_pem, &self.key_pem)
    }
}

/// Parses the first PKCS#8, SEC1 or PKCS#1 private key in `pem` into a rustls signing key.
/// `path` only names the source in errors (it may be a sealed blob).
pub(crate) fn signing_key_from_pem(
    pem: &[u8],
    path: &Path,
) -> Result<Arc<dyn SigningKey>, KeyError> {
    let der = match PrivateKeyDer::from_pem_slice(pem) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => {
            return Err(KeyError::NoPrivateKey {
                path: path.to_path_buf(),
            });
        }
        Err(e) => {
            return Err(KeyError::BadPem {
                path: path.to_path_buf(),
                detail: e.to_string(),
            });
        }
    };
    rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| KeyError::UnsupportedKey {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}
