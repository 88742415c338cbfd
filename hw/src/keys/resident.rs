//! Keys that never leave the TPM: every TLS handshake signature is a TPM2_Sign.
//!
//! # Blocking
//! rustls calls [`Signer::sign`] synchronously inside the handshake, on whatever thread drives
//! the connection. Here that call sends the digest to the one thread that owns the TPM
//! connection and waits for the answer: ~0.4 ms on swtpm, 40-70 ms on a discrete TPM. The
//! listener must therefore not drive tpm-resident handshakes on async runtime worker threads
//! without telling the runtime: wrap the handshake in `tokio::task::block_in_place`, or run
//! handshakes on a dedicated thread pool ([`KeyMode::signs_blocking`] says when).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::pki_types::{SubjectPublicKeyInfoDer, alg_id};
use rustls::sign::{CertifiedKey, Signer, SigningKey, public_key_to_spki};
use rustls::{SignatureAlgorithm, SignatureScheme};

use super::{KeyError, KeyMode, KeyProvider, certify, load_cert_chain};
use crate::tpm::blob::{BlobKind, KeyBlob};
use crate::tpm::resident::{ResidentKey, TpmSigner, point_from_public};

pub use crate::tpm::resident::SignerStats;

/// Serves a certificate chain whose key lives in the TPM.
#[derive(Debug)]
pub struct TpmResidentKeyProvider {
    cert_chain_pem: PathBuf,
    blob: PathBuf,
    signer: Arc<TpmSigner>,
    /// The key of the last load, reused while the blob is unchanged.
    last: Mutex<Option<Arc<ResidentKey>>>,
}

impl TpmResidentKeyProvider {
    /// A provider for the chain in `cert_chain_pem` and the key blob `blob` (written by
    /// [`crate::keys::init`]), signing through `tcti`. Starts the signing thread; it connects
    /// to the TPM at the first signature.
    pub fn new(
        cert_chain_pem: impl Into<PathBuf>,
        blob: impl Into<PathBuf>,
        tcti: &str,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            cert_chain_pem: cert_chain_pem.into(),
            blob: blob.into(),
            signer: Arc::new(TpmSigner::start(tcti)?),
            last: Mutex::new(None),
        })
    }

    /// Signature counters, for metrics.
    pub fn stats(&self) -> SignerStats {
        self.signer.stats()
    }
}

impl KeyProvider for TpmResidentKeyProvider {
    fn mode(&self) -> KeyMode {
        KeyMode::TpmResident
    }

    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError> {
        let chain = load_cert_chain(&self.cert_chain_pem)?;
        let key = Arc::new(read_resident(&self.blob)?);
        let key = {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            match &*last {
                Some(prev) if **prev == *key => Arc::clone(prev),
                _ => {
                    *last = Some(Arc::clone(&key));
                    key
                }
            }
        };
        let signing = TpmSigningKey::new(Arc::clone(&self.signer), key);
        // Proves the TPM holds the key before the listener starts serving it, and checks
        // that it matches the certificate.
        signing.sign_probe(&self.blob)?;
        certify(chain, Arc::new(signing), &self.cert_chain_pem, &self.blob)
    }
}

/// Reads a resident key blob.
pub(crate) fn read_resident(path: &Path) -> Result<ResidentKey, KeyError> {
    let blob = KeyBlob::read(path, BlobKind::Resident)?;
    let public = blob.field(path, "public", &blob.public)?;
    let point = point_from_public(&public).ok_or_else(|| KeyError::BadBlob {
        path: path.to_path_buf(),
        detail: "public area is not an ECC P-256 key".into(),
    })?;
    Ok(ResidentKey {
        private: blob.field(path, "private", &blob.private)?,
        public,
        point,
    })
}

/// A rustls signing key backed by the TPM (ECDSA P-256 with SHA-256 only).
#[derive(Debug, Clone)]
pub(crate) struct TpmSigningKey {
    signer: Arc<TpmSigner>,
    key: Arc<ResidentKey>,
    spki: SubjectPublicKeyInfoDer<'static>,
}

impl TpmSigningKey {
    pub(crate) fn new(signer: Arc<TpmSigner>, key: Arc<ResidentKey>) -> Self {
        let spki = public_key_to_spki(&alg_id::ECDSA_P256, &key.point);
        Self { signer, key, spki }
    }

    /// Hashes `message` in software and signs the digest in the TPM; DER signature.
    pub(crate) fn sign_message(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let mut d = [0u8; 32];
        d.copy_from_slice(digest.as_ref());
        self.signer.sign_digest(&self.key, d)
    }

    /// Signs a fixed message and verifies it against the public key in the blob.
    fn sign_probe(&self, blob: &Path) -> Result<(), KeyError> {
        const PROBE: &[u8] = b"vigil resident key probe";
        let sig = self.sign_message(PROBE)?;
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.key.point,
        );
        public.verify(PROBE, &sig).map_err(|_| KeyError::BadBlob {
            path: blob.to_path_buf(),
            detail: "the TPM's signature does not verify with the blob's public key".into(),
        })
    }

    pub(crate) fn point(&self) -> &[u8] {
        &self.key.point
    }
}

impl SigningKey for TpmSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(self.spki.clone())
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for TpmSigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        self.sign_message(message)
            .map_err(|e| rustls::Error::General(e.to_string()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// Lets rcgen sign a CSR or a self-signed certificate with the TPM key.
impl rcgen::RemoteKeyPair for TpmSigningKey {
    fn public_key(&self) -> &[u8] {
        self.point()
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.sign_message(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}
