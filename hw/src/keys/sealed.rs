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

use super::{KeyError, KeyMode, KeyProvider, PolicyKey, SignedPcrPolicy, certify, load_cert_chain};
use crate::tpm::authorize;
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

/// What a sealed key is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealPolicy {
    /// The current values of these PCRs (SHA-256 bank; empty means [`DEFAULT_PCRS`]). Any
    /// change to them, genuine or not, locks the key until it is sealed again.
    Pcrs(Vec<u8>),
    /// Any PCR values that a policy signed by this key names (TPM2_PolicyAuthorize): a new
    /// image ships the policy signed for its own measurements, and the key keeps unsealing.
    Signed(PolicyKey),
}

impl Default for SealPolicy {
    fn default() -> Self {
        SealPolicy::Pcrs(DEFAULT_PCRS.to_vec())
    }
}

/// Serves a certificate chain with a private key unsealed from the TPM on every [`load`].
///
/// [`load`]: KeyProvider::load
#[derive(Debug, Clone)]
pub struct TpmSealedKeyProvider {
    cert_chain_pem: PathBuf,
    blob: PathBuf,
    tcti: String,
    pcr_policy: Option<PathBuf>,
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
            pcr_policy: None,
        }
    }

    /// The signed PCR policy file that unseals a key sealed to a policy key (`keys.pcr_policy`);
    /// keys sealed to fixed PCR values ignore it.
    pub fn with_pcr_policy(mut self, path: Option<PathBuf>) -> Self {
        self.pcr_policy = path;
        self
    }
}

impl KeyProvider for TpmSealedKeyProvider {
    fn mode(&self) -> KeyMode {
        KeyMode::TpmSealed
    }

    fn load(&self) -> Result<Arc<CertifiedKey>, KeyError> {
        let chain = load_cert_chain(&self.cert_chain_pem)?;
        let key = unseal_signing_key(&self.blob, &self.tcti, self.pcr_policy.as_deref())?;
        certify(chain, key, &self.cert_chain_pem, &self.blob)
    }
}

/// Format tags of the enveloped DER.
const TAG_PKCS8: u8 = 1;
const TAG_SEC1: u8 = 2;
const TAG_PKCS1: u8 = 3;

/// Seals the private key in `pem` under `policy` and returns the blob (not yet written) and
/// the key's SPKI.
pub(crate) fn seal_pem(
    pem: &[u8],
    pem_path: &Path,
    tcti: &str,
    policy: &SealPolicy,
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
    let sealed = match policy {
        SealPolicy::Pcrs(pcrs) => {
            let pcrs = if pcrs.is_empty() { DEFAULT_PCRS } else { pcrs };
            seal(&mut tpm, kek.as_slice(), pcrs)?
        }
        SealPolicy::Signed(key) => {
            let (public, private) = authorize::seal(&mut tpm, kek.as_slice(), key)?;
            Sealed {
                public,
                private,
                pcr_values: std::collections::BTreeMap::new(),
            }
        }
    };
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
    if let SealPolicy::Signed(key) = policy {
        blob.set_policy_key(key.spki());
    }
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

/// The signed policy that unseals the blob at `blob_path`, read from `pcr_policy` and checked
/// against the policy key the blob names; `None` for a blob sealed to fixed PCR values. Needs
/// no TPM.
fn signed_policy(
    blob_path: &Path,
    blob: &KeyBlob,
    pcr_policy: Option<&Path>,
) -> Result<Option<(SignedPcrPolicy, PathBuf)>, KeyError> {
    if blob.policy_key.is_empty() {
        return Ok(None);
    }
    let spki = blob.field(blob_path, "policy_key", &blob.policy_key)?;
    let sealed_to = PolicyKey::from_spki(&spki).ok_or_else(|| KeyError::BadBlob {
        path: blob_path.to_path_buf(),
        detail: "policy_key is not an ECC P-256 public key".into(),
    })?;
    let missing = |path: Option<&Path>| KeyError::NoPcrPolicy {
        blob: blob_path.to_path_buf(),
        path: path.map(Path::to_path_buf),
    };
    let path = pcr_policy.ok_or_else(|| missing(None))?;
    let policy = match SignedPcrPolicy::read(path) {
        Ok(policy) => policy,
        Err(KeyError::File {
            source: vigil_files::FileError::Io { error, .. },
        }) if error.kind() == std::io::ErrorKind::NotFound => return Err(missing(Some(path))),
        Err(e) => return Err(e),
    };
    if policy.key() != &sealed_to {
        return Err(KeyError::PcrPolicyKeyMismatch {
            policy: path.to_path_buf(),
            blob: blob_path.to_path_buf(),
            signed_by: policy.key().sha256_hex(),
            sealed_to: sealed_to.sha256_hex(),
        });
    }
    Ok(Some((policy, path.to_path_buf())))
}

/// Checks, without the TPM, that the sealed key at `blob_path` has what it needs to unseal: for
/// a key sealed to a policy key, a valid `pcr_policy` signed by that key.
pub(crate) fn check_pcr_policy(
    blob_path: &Path,
    pcr_policy: Option<&Path>,
) -> Result<(), KeyError> {
    let blob = KeyBlob::read(blob_path, BlobKind::Sealed)?;
    signed_policy(blob_path, &blob, pcr_policy).map(drop)
}

/// Unseals the key in `blob_path` and builds a rustls signing key from it. `pcr_policy` is the
/// signed policy file for a key sealed to a policy key.
pub(crate) fn unseal_signing_key(
    blob_path: &Path,
    tcti: &str,
    pcr_policy: Option<&Path>,
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
    let signed = signed_policy(blob_path, &blob, pcr_policy)?;

    let kek = {
        let mut tpm = Tpm::connect(tcti)?;
        match &signed {
            None => unseal(&mut tpm, &sealed, blob_path)?,
            Some((policy, policy_path)) => {
                let files = authorize::Files {
                    blob: blob_path,
                    policy: policy_path,
                };
                authorize::unseal(&mut tpm, &sealed.public, &sealed.private, policy, files)?
            }
        }
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
