//! Keys sealed by the TPM under a PCR policy.
//!
//! The TPM seals at most 128 bytes, less than most private keys, so the key is enveloped: a
//! random 256-bit key-encryption key (KEK) is sealed in the TPM and the private key is stored
//! AES-256-GCM-encrypted under it in the blob file. Unsealing needs this TPM, its owner seed
//! and the PCR values of seal time; the plaintext only ever exists in locked, zeroed memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer};
use rustls::sign::{CertifiedKey, SigningKey};

use super::{KeyError, KeyMode, KeyProvider, certify, load_cert_chain};
use crate::tpm::blob::{BlobKind, KeyBlob, hex};
use crate::tpm::conn::Tpm;
use crate::tpm::locked::LockedBuffer;
use crate::tpm::seal::{Sealed, seal, unseal};

/// Additional authenticated data binding the ciphertext to its purpose and format version.
const AAD: &[u8] = b"vigil sealed tls key v1";

/// The default PCR policy: PCR 7, the Secure Boot state (on/off, the keys that verify the boot
/// chain). It changes when Secure Boot is disabled or its key databases change, not on every
/// kernel or firmware update, so a routine update does not lock the box out of its key.
pub const DEFAULT_PCRS: &[u8] = &[7];

/// Serves a certificate chain with a private key unsealed from the TPM on every [`load`].
///
/// [`load`]: KeyProvider::load
#[derive(Debug, Clone)]
pub struct TpmSealedKeyProvider {
    cert_chain_pem: PathBuf,
    blob: PathBuf,
    tcti: String,
}

impl TpmSealedKeyProvider {
    /// A provider reading the chain from `cert_chain_pem` and the sealed key from `blob`
    /// (written by [`crate::keys::seal`] or [`crate::keys::init`]), unsealing through `tcti`.
    pub fn new(
        cert_chain_pem: impl Into<PathBuf>,
        blob: impl Into<PathBuf>,
        tcti: impl Into<String>,
    ) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            blob: blob.into(),
            tcti: tcti.into(),
        }
    }
}

impl KeyProvider for TpmSealedKeyProvider {
    fn mode(&self) -> KeyMode {
        KeyMode::TpmSealed
    }

    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError> {
        let chain = load_cert_chain(&self.cert_chain_pem)?;
        let key = unseal_signing_key(&self.blob, &self.tcti)?;
        certify(chain, key, &self.cert_chain_pem, &self.blob)
    }
}

/// Format tags of the enveloped DER.
const TAG_PKCS8: u8 = 1;
const TAG_SEC1: u8 = 2;
const TAG_PKCS1: u8 = 3;

/// Seals the private key in `pem` to the current values of `pcrs` and returns the blob (not
/// yet written) and the key's SPKI.
pub(crate) fn seal_pem(
    pem: &[u8],
    pem_path: &Path,
    tcti: &str,
    pcrs: &[u8],
) -> Result<(KeyBlob, Vec<u8>), KeyError> {
    use rustls::pki_types::pem::PemObject;
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| KeyError::NoPrivateKey {
        path: pem_path.to_path_buf(),
    })?;
    // Refuse keys that could never sign, before binding them to the TPM.
    let signing = super::file::signing_key_from_pem(pem, pem_path)?;
    let spki = signing
        .public_key()
        .ok_or_else(|| KeyError::UnsupportedKey {
            path: pem_path.to_path_buf(),
            detail: "cannot derive its public key".into(),
        })?
        .as_ref()
        .to_vec();
    let (tag, bytes) = match &der {
        PrivateKeyDer::Pkcs8(k) => (TAG_PKCS8, k.secret_pkcs8_der()),
        PrivateKeyDer::Sec1(k) => (TAG_SEC1, k.secret_sec1_der()),
        PrivateKeyDer::Pkcs1(k) => (TAG_PKCS1, k.secret_pkcs1_der()),
        _ => {
            return Err(KeyError::UnsupportedKey {
                path: pem_path.to_path_buf(),
                detail: "unknown private key encoding".into(),
            });
        }
    };
    let mut plain = Vec::with_capacity(bytes.len() + 1 + AES_256_GCM.tag_len());
    plain.push(tag);
    plain.extend_from_slice(bytes);
    let mut buf = LockedBuffer::copy_of(&plain)?;
    zeroize::Zeroize::zeroize(&mut plain);

    let rng = SystemRandom::new();
    let mut kek = [0u8; 32];
    let mut nonce = [0u8; 12];
    rng.fill(&mut kek)
        .and_then(|()| rng.fill(&mut nonce))
        .map_err(|_| KeyError::Invalid {
            detail: "the system random number generator failed".into(),
        })?;
    let kek = {
        let locked = LockedBuffer::copy_of(&kek)?;
        zeroize::Zeroize::zeroize(&mut kek);
        locked
    };
    let cipher = aead_key(kek.as_slice())?;
    let tag_bytes = cipher
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AAD),
            buf.as_mut_slice(),
        )
        .map_err(|_| KeyError::Invalid {
            detail: "encrypting the key failed".into(),
        })?;
    let mut ciphertext = buf.as_slice().to_vec();
    ciphertext.extend_from_slice(tag_bytes.as_ref());

    let mut tpm = Tpm::connect(tcti)?;
    let sealed = seal(&mut tpm, kek.as_slice(), pcrs)?;
    let spki_hash = ring::digest::digest(&ring::digest::SHA256, &spki);
    let mut blob = KeyBlob::new(
        BlobKind::Sealed,
        &sealed.public,
        &sealed.private,
        spki_hash.as_ref(),
    );
    blob.pcrs = sealed
        .pcr_values
        .iter()
        .map(|(p, v)| (*p, hex(v)))
        .collect();
    blob.nonce = hex(&nonce);
    blob.ciphertext = hex(&ciphertext);
    Ok((blob, spki))
}

fn aead_key(kek: &[u8]) -> Result<LessSafeKey, KeyError> {
    UnboundKey::new(&AES_256_GCM, kek)
        .map(LessSafeKey::new)
        .map_err(|_| KeyError::Invalid {
            detail: "the unsealed key-encryption key has the wrong length".into(),
        })
}

/// Unseals the key in `blob_path` and builds a rustls signing key from it.
pub(crate) fn unseal_signing_key(
    blob_path: &Path,
    tcti: &str,
) -> Result<Arc<dyn SigningKey>, KeyError> {
    let blob = KeyBlob::read(blob_path, BlobKind::Sealed)?;
    let bad = |detail: &str| KeyError::BadBlob {
        path: blob_path.to_path_buf(),
        detail: detail.to_owned(),
    };
    let mut pcr_values = std::collections::BTreeMap::new();
    for (p, v) in &blob.pcrs {
        pcr_values.insert(*p, blob.field(blob_path, "pcrs", v)?);
    }
    let sealed = Sealed {
        public: blob.field(blob_path, "public", &blob.public)?,
        private: blob.field(blob_path, "private", &blob.private)?,
        pcr_values,
    };
    let nonce: [u8; 12] = blob
        .field(blob_path, "nonce", &blob.nonce)?
        .try_into()
        .map_err(|_| bad("nonce is not 12 bytes"))?;
    let ciphertext = blob.field(blob_path, "ciphertext", &blob.ciphertext)?;

    let kek = {
        let mut tpm = Tpm::connect(tcti)?;
        unseal(&mut tpm, &sealed, blob_path)?
        // The connection closes here: swtpm serves one client and others may be waiting.
    };
    let mut buf = LockedBuffer::copy_of(&ciphertext)?;
    let plain_len = aead_key(kek.as_slice())?
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(AAD),
            buf.as_mut_slice(),
        )
        .map_err(|_| bad("the encrypted key does not decrypt under the sealed secret"))?
        .len();
    buf.truncate(plain_len);
    let (tag, der) = buf
        .as_slice()
        .split_first()
        .ok_or_else(|| bad("empty key"))?;
    // Borrowed DER: the only plaintext copy stays in the locked buffer.
    let der = match *tag {
        TAG_PKCS8 => PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
        TAG_SEC1 => PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
        TAG_PKCS1 => PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
        _ => return Err(bad("unknown key encoding tag")),
    };
    rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| KeyError::UnsupportedKey {
        path: blob_path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Reads a PEM file for sealing.
pub(crate) fn read_pem(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    let pem = vigil_files::read(path, vigil_files::FileKind::PrivateKey)?;
    Ok(zeroize::Zeroizing::new(pem))
}
