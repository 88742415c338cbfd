//! TLS certificate chains and the private keys that sign for them.
//!
//! Three interchangeable [`KeyProvider`]s: a PEM key file, a key sealed by the TPM under a PCR
//! policy (fixed PCR values, or any values a policy key signs), and a key that never leaves the
//! TPM. The TLS listener only sees the trait.

mod admin;
mod error;
mod file;
mod pcr_policy;
mod resident;
mod sealed;

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::sign::{CertifiedKey, SigningKey};
use vigil_files::FileKind;

pub use admin::{
    CERT_FILE, CSR_FILE, INFO_FILE, KEY_FILE, KeyInfo, RESIDENT_FILE, SEALED_FILE,
    check_pcr_policy, init, init_with, provider, provider_with_policy, seal, show,
};
pub use error::KeyError;
pub use file::FileKeyProvider;
pub use pcr_policy::{PcrValue, PolicyKey, SignedPcrPolicy};
pub use resident::{SignerStats, TpmResidentKeyProvider};
pub use sealed::{DEFAULT_PCRS, SealPolicy, TpmSealedKeyProvider};

/// Where the TLS private key lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyMode {
    /// A PEM key file on disk (development, or boxes without a TPM).
    File,
    /// A PEM key sealed by the TPM under a PCR policy; unsealed into locked memory at load.
    TpmSealed,
    /// A non-exportable key inside the TPM; every handshake signature is a TPM command.
    TpmResident,
}

impl KeyMode {
    /// True when signing blocks the calling thread on the TPM (tens of ms on a discrete TPM):
    /// the listener must then drive handshakes off its async worker threads (see
    /// [`TpmResidentKeyProvider`]).
    pub fn signs_blocking(self) -> bool {
        self == KeyMode::TpmResident
    }
}

/// A source of the certificate chain and private key that the TLS listener serves.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// Which kind of key this provider serves.
    fn mode(&self) -> KeyMode;
    /// Loads (or reloads, for rotation) the chain and a signing key for it.
    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError>;
}

/// Parses every `CERTIFICATE` block of a PEM file (leaf first).
pub(crate) fn load_cert_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, KeyError> {
    let pem = vigil_files::read(path, FileKind::Certificate)?;
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| KeyError::BadPem {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        chain.push(cert);
    }
    if chain.is_empty() {
        return Err(KeyError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

/// Pairs a chain with a signing key after checking that the key belongs to the leaf.
pub(crate) fn certify(
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<CertifiedKey>, KeyError> {
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(KeyError::KeyMismatch {
                cert_path: cert_path.to_path_buf(),
                key_path: key_path.to_path_buf(),
            })
        }
        // Every key this crate builds can report its public key, so "unknown" means a bug in
        // a signing key implementation; refuse rather than serve an unchecked pair.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Err(KeyError::UnsupportedKey {
                path: key_path.to_path_buf(),
                detail: "the signing key cannot report its public key".to_owned(),
            })
        }
        Err(e) => Err(KeyError::BadCertificate {
            path: cert_path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}
