//! Key directory management for `vigilctl keys`: create, inspect, seal.
//!
//! A key directory holds `key.json` (what kind of key, when, its fingerprint), `cert.pem` (the
//! chain the listener serves; self-signed until the operator installs a CA-issued one),
//! `csr.pem` (to get one), and the key itself: `key.pem` (file), `sealed.blob` (tpm-sealed)
//! or `resident.blob` (tpm-resident).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::resident::{TpmResidentKeyProvider, TpmSigningKey};
use super::sealed::{DEFAULT_PCRS, TpmSealedKeyProvider, read_pem, seal_pem};
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
    /// Policy PCRs (SHA-256 bank) of a sealed key; empty otherwise.
    pub pcrs: Vec<u8>,
}

/// Creates a new ECDSA P-256 key of `mode` in `dir` for `subject` (a DNS name), with a CSR and
/// a self-signed certificate so the listener can start before a CA-issued one is installed.
/// Sealed keys use the [`DEFAULT_PCRS`] policy. `tcti` is unused in file mode.
pub fn init(mode: KeyMode, dir: &Path, tcti: &str, subject: &str) -> Result<KeyInfo, KeyError> {
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
            let (blob, spki) = seal_pem(pem.as_bytes(), &path, tcti, DEFAULT_PCRS)?;
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
    let pcrs = if mode == KeyMode::TpmSealed {
        DEFAULT_PCRS.to_vec()
    } else {
        Vec::new()
    };
    write_info(dir, mode, &spki, Some(subject.to_owned()), pcrs)
}

/// Seals the existing PEM private key at `pem_path` into `dir` under a policy on the current
/// values of `pcrs` (SHA-256 bank; empty means [`DEFAULT_PCRS`]). Install the matching chain
/// as `dir/cert.pem`. The PEM file is left alone: delete it once the sealed key works.
///
/// Sealing the same key again into its directory (after a legitimate PCR change) replaces the
/// blob; any other key already in `dir` is refused so it is not destroyed.
pub fn seal(pem_path: &Path, dir: &Path, tcti: &str, pcrs: &[u8]) -> Result<KeyInfo, KeyError> {
    let pcrs = if pcrs.is_empty() { DEFAULT_PCRS } else { pcrs };
    let pem = read_pem(pem_path)?;
    let previous = show(dir).ok();
    if previous.is_none() {
        prepare_dir(dir)?;
    }
    let (blob, spki) = seal_pem(&pem, pem_path, tcti, pcrs)?;
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
    write_info(dir, KeyMode::TpmSealed, &spki, subject, pcrs.to_vec())
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
    let info = show(dir)?;
    let cert = dir.join(CERT_FILE);
    Ok(match info.mode {
        KeyMode::File => Arc::new(FileKeyProvider::new(cert, dir.join(KEY_FILE))),
        KeyMode::TpmSealed => {
            Arc::new(TpmSealedKeyProvider::new(cert, dir.join(SEALED_FILE), tcti))
        }
        KeyMode::TpmResident => Arc::new(TpmResidentKeyProvider::new(
            cert,
            dir.join(RESIDENT_FILE),
            tcti,
        )?),
    })
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

fn write_info(
    dir: &Path,
    mode: KeyMode,
    spki: &[u8],
    subject: Option<String>,
    pcrs: Vec<u8>,
) -> Result<KeyInfo, KeyError> {
    let info = KeyInfo {
        mode,
        spki_sha256: hex(ring::digest::digest(&ring::digest::SHA256, spki).as_ref()),
        created: now_unix(),
        subject,
        pcrs,
    };
    let path: PathBuf = dir.join(INFO_FILE);
    let json = serde_json::to_vec_pretty(&info).map_err(|e| KeyError::BadBlob {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    write_atomic(&path, &json, 0o644)?;
    Ok(info)
}
