//! Key directory management for `vigilctl keys`: create, inspect, seal.
//!
//! A key directory holds `key.json` (what kind of key, when, its fingerprint), `cert.pem` (the
//! chain the listener serves; self-signed until the operator installs a CA-issued one),
//! `csr.pem` (to get one), and the key itself: `key.pem` (file), `sealed.blob` (tpm-sealed)
//! or `resident.blob` (tpm-resident).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::resident::{TpmResidentKeyProvider, TpmSigningKey};
use super::sealed::{DEFAULT_PCRS, SealPolicy, TpmSealedKeyProvider, read_pem, seal_pem};
use super::{FileKeyProvider, KeyError, KeyMode, KeyProvider};
use crate::tpm::blob::{BlobKind, KeyBlob, hex, now_unix, write_atomic};
use crate::tpm::conn::Tpm;
use crate::tpm::resident::{TpmSigner, create_resident};

/// Metadata file of a key directory.
pub const INFO_FILE: &str = "key.json";
/// Certificate chain (PEM, leaf first).
pub const CERT_FILE: &str = "cert.pem";
/// Certificate signing request (PEM).
pub const CSR_FILE: &str = "csr.pem";
/// Private key in file mode (PEM, PKCS#8).
pub const KEY_FILE: &str = "key.pem";
/// Sealed key blob in tpm-sealed mode.
pub const SEALED_FILE: &str = "sealed.blob";
/// Key blob in tpm-resident mode.
pub const RESIDENT_FILE: &str = "resident.blob";

/// What `vigilctl keys show` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// Where the key lives.
    pub mode: KeyMode,
    /// SHA-256 of the key's SubjectPublicKeyInfo (DER), lowercase hex.
    pub spki_sha256: String,
    /// Unix seconds when the key was created or sealed.
    pub created: u64,
    /// The subject (CN and DNS name) given at `init`, if the key was made by Vigil.
    pub subject: Option<String>,
    /// Policy PCRs (SHA-256 bank) of a key sealed to fixed PCR values; empty otherwise.
    pub pcrs: Vec<u8>,
    /// A key sealed to signed PCR policies: SHA-256 of the SubjectPublicKeyInfo of the policy
    /// key whose signed policies unseal it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_key_sha256: Option<String>,
}

/// Creates a new ECDSA P-256 key of `mode` in `dir` for `subject` (a DNS name), with a CSR and
/// a self-signed certificate so the listener can start before a CA-issued one is installed.
/// Sealed keys use the [`DEFAULT_PCRS`] policy. `tcti` is unused in file mode.
pub fn init(mode: KeyMode, dir: &Path, tcti: &str, subject: &str) -> Result<KeyInfo, KeyError> {
    init_with(mode, dir, tcti, subject, &SealPolicy::default())
}

/// [`init`] with the policy a sealed key is bound to; other modes refuse any but the default.
pub fn init_with(
    mode: KeyMode,
    dir: &Path,
    tcti: &str,
    subject: &str,
    policy: &SealPolicy,
) -> Result<KeyInfo, KeyError> {
    let binds = match policy {
        SealPolicy::Signed(_) => true,
        SealPolicy::Pcrs(p) => !p.is_empty() && p != DEFAULT_PCRS,
    };
    if mode != KeyMode::TpmSealed && binds {
        return Err(KeyError::Invalid {
            detail: "a PCR policy applies to tpm-sealed keys only".into(),
        });
    }
    if subject.is_empty() || subject.len() > 253 || subject.chars().any(char::is_whitespace) {
        return Err(KeyError::Invalid {
            detail: format!("subject {subject:?} is not a DNS name"),
        });
    }
    prepare_dir(dir)?;
    let (key_pair, spki) = match mode {
        KeyMode::File => {
            let kp = software_key()?;
            let pem = zeroize::Zeroizing::new(kp.serialize_pem());
            write_atomic(&dir.join(KEY_FILE), pem.as_bytes(), 0o600)?;
            let spki = kp.public_key_der();
            (kp, spki)
        }
        KeyMode::TpmSealed => {
            let kp = software_key()?;
            let pem = zeroize::Zeroizing::new(kp.serialize_pem());
            let path = dir.join(SEALED_FILE);
            let (blob, spki) = seal_pem(pem.as_bytes(), &path, tcti, policy)?;
            blob.write(&path)?;
            (kp, spki)
        }
        KeyMode::TpmResident => {
            let key = {
                let mut tpm = Tpm::connect(tcti)?;
                create_resident(&mut tpm)?
            };
            let mut blob = KeyBlob::new(BlobKind::Resident, &key.public, &key.private, &[]);
            let signing = TpmSigningKey::new(Arc::new(TpmSigner::start(tcti)?), Arc::new(key));
            let spki = rustls::sign::SigningKey::public_key(&signing)
                .map(|s| s.as_ref().to_vec())
                .unwrap_or_default();
            blob.spki_sha256 = hex(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
            blob.write(&dir.join(RESIDENT_FILE))?;
            let kp = rcgen::KeyPair::from_remote(Box::new(signing)).map_err(cert_err)?;
            (kp, spki)
        }
    };
    let mut params = rcgen::CertificateParams::new(vec![subject.to_owned()]).map_err(cert_err)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    let csr = params.serialize_request(&key_pair).map_err(cert_err)?;
    write_atomic(
        &dir.join(CSR_FILE),
        csr.pem().map_err(cert_err)?.as_bytes(),
        0o644,
    )?;
    let cert = params.self_signed(&key_pair).map_err(cert_err)?;
    write_atomic(&dir.join(CERT_FILE), cert.pem().as_bytes(), 0o644)?;
    let policy = (mode == KeyMode::TpmSealed).then_some(policy);
    write_info(dir, mode, &spki, Some(subject.to_owned()), policy)
}

/// Seals the existing PEM private key at `pem_path` into `dir` under `policy`. Install the
/// matching chain as `dir/cert.pem`. The PEM file is left alone: delete it once the sealed key
/// works.
///
/// Sealing the same key again into its directory (after a legitimate PCR change, or to move it
/// to signed policies) replaces the blob; any other key already in `dir` is refused so it is not
/// destroyed.
pub fn seal(
    pem_path: &Path,
    dir: &Path,
    tcti: &str,
    policy: &SealPolicy,
) -> Result<KeyInfo, KeyError> {
    let pem = read_pem(pem_path)?;
    let previous = show(dir).ok();
    if previous.is_none() {
        prepare_dir(dir)?;
    }
    let (blob, spki) = seal_pem(&pem, pem_path, tcti, policy)?;
    let fingerprint = hex(ring::digest::digest(&ring::digest::SHA256, &spki).as_ref());
    if let Some(prev) = &previous {
        if prev.mode != KeyMode::TpmSealed || prev.spki_sha256 != fingerprint {
            return Err(KeyError::Invalid {
                detail: format!(
                    "{} already holds a different key; move it away first so it is not \
                     destroyed",
                    dir.display()
                ),
            });
        }
    }
    blob.write(&dir.join(SEALED_FILE))?;
    let subject = previous.and_then(|p| p.subject);
    write_info(dir, KeyMode::TpmSealed, &spki, subject, Some(policy))
}

/// Reads the key directory's metadata.
pub fn show(dir: &Path) -> Result<KeyInfo, KeyError> {
    let path = dir.join(INFO_FILE);
    if !path.exists() {
        return Err(KeyError::NotInitialized {
            dir: dir.to_path_buf(),
        });
    }
    let bytes = vigil_files::read(&path, vigil_files::FileKind::KeyBlob)?;
    serde_json::from_slice(&bytes).map_err(|e| KeyError::BadBlob {
        path,
        detail: e.to_string(),
    })
}

/// The provider for the key in `dir`, by the mode recorded in its metadata.
pub fn provider(dir: &Path, tcti: &str) -> Result<Arc<dyn KeyProvider>, KeyError> {
    provider_with_policy(dir, tcti, None)
}

/// [`provider`], with the signed PCR policy file that unseals a key sealed to a policy key
/// (`keys.pcr_policy`).
pub fn provider_with_policy(
    dir: &Path,
    tcti: &str,
    pcr_policy: Option<&Path>,
) -> Result<Arc<dyn KeyProvider>, KeyError> {
    let info = show(dir)?;
    let cert = dir.join(CERT_FILE);
    Ok(match info.mode {
        KeyMode::File => Arc::new(FileKeyProvider::new(cert, dir.join(KEY_FILE))),
        KeyMode::TpmSealed => Arc::new(
            TpmSealedKeyProvider::new(cert, dir.join(SEALED_FILE), tcti)
                .with_pcr_policy(pcr_policy.map(Path::to_path_buf)),
        ),
        KeyMode::TpmResident => Arc::new(TpmResidentKeyProvider::new(
            cert,
            dir.join(RESIDENT_FILE),
            tcti,
        )?),
    })
}

/// Checks without the TPM that a sealed key in `dir` has what it needs to unseal: for a key
/// sealed to a policy key, a valid `pcr_policy` signed by that key. Other keys pass.
pub fn check_pcr_policy(dir: &Path, pcr_policy: Option<&Path>) -> Result<(), KeyError> {
    if show(dir)?.mode != KeyMode::TpmSealed {
        return Ok(());
    }
    super::sealed::check_pcr_policy(&dir.join(SEALED_FILE), pcr_policy)
}

fn software_key() -> Result<rcgen::KeyPair, KeyError> {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)
}

fn cert_err(e: rcgen::Error) -> KeyError {
    KeyError::Certificate {
        detail: e.to_string(),
    }
}

fn prepare_dir(dir: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |source| KeyError::FileUnreadable {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io)?;
    if dir.join(INFO_FILE).exists() {
        return Err(KeyError::Invalid {
            detail: format!(
                "{} already holds a key; move it away first so it is not destroyed",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// Writes `key.json`; `policy` is what a sealed key is bound to (`None` for other modes).
fn write_info(
    dir: &Path,
    mode: KeyMode,
    spki: &[u8],
    subject: Option<String>,
    policy: Option<&SealPolicy>,
) -> Result<KeyInfo, KeyError> {
    let (pcrs, policy_key_sha256) = match policy {
        None => (Vec::new(), None),
        Some(SealPolicy::Pcrs(p)) if p.is_empty() => (DEFAULT_PCRS.to_vec(), None),
        Some(SealPolicy::Pcrs(p)) => (p.clone(), None),
        Some(SealPolicy::Signed(key)) => (Vec::new(), Some(key.sha256_hex())),
    };
    let info = KeyInfo {
        mode,
        spki_sha256: hex(ring::digest::digest(&ring::digest::SHA256, spki).as_ref()),
        created: now_unix(),
        subject,
        pcrs,
        policy_key_sha256,
    };
    let path: PathBuf = dir.join(INFO_FILE);
    let json = serde_json::to_vec_pretty(&info).map_err(|e| KeyError::BadBlob {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    write_atomic(&path, &json, 0o644)?;
    Ok(info)
}
