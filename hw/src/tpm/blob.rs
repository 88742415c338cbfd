//! The on-disk form of TPM-wrapped keys.
//!
//! A blob holds TPM2B_PUBLIC and TPM2B_PRIVATE of an object under the deterministic primary
//! key (never a saved context, which a TPM reset invalidates), plus what Vigil needs to explain
//! failures later: the PCR values at seal time, and the public key fingerprint.

use std::collections::BTreeMap;
use std::path::Path;

use crate::keys::KeyError;

/// Blob format version of resident keys and keys sealed to fixed PCR values.
const VERSION: u32 = 1;
/// Blob format version of keys sealed to signed PCR policies (`policy_key` is set). Older
/// releases refuse such a blob as a whole instead of misreading it; version 1 blobs stay
/// version 1, so they still load after a rollback.
const VERSION_SIGNED_POLICY: u32 = 2;

/// What a blob wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum BlobKind {
    /// A sealed data object holding the key-encryption key of `ciphertext`.
    Sealed,
    /// A non-exportable ECC P-256 signing key.
    Resident,
}

/// A TPM key blob file (JSON, binary fields in lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyBlob {
    pub(crate) version: u32,
    pub(crate) kind: BlobKind,
    /// Unix seconds at creation.
    pub(crate) created: u64,
    /// Marshalled TPMT_PUBLIC (the body of TPM2B_PUBLIC) of the TPM object.
    pub(crate) public: String,
    /// TPM2B_PRIVATE buffer of the TPM object, encrypted by the primary key.
    pub(crate) private: String,
    /// Sealed only: PCR index -> SHA-256 bank value at seal time.
    #[serde(default)]
    pub(crate) pcrs: BTreeMap<u8, String>,
    /// Sealed only: AES-256-GCM nonce of `ciphertext`.
    #[serde(default)]
    pub(crate) nonce: String,
    /// Sealed only: the private key (format tag + DER), encrypted under the sealed secret.
    #[serde(default)]
    pub(crate) ciphertext: String,
    /// SHA-256 of the key's SubjectPublicKeyInfo.
    pub(crate) spki_sha256: String,
    /// Sealed to signed PCR policies only (version 2): DER SubjectPublicKeyInfo of the ECC
    /// P-256 key whose signed policies unseal the blob (TPM2_PolicyAuthorize of its name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) policy_key: String,
}

impl KeyBlob {
    pub(crate) fn new(kind: BlobKind, public: &[u8], private: &[u8], spki_sha256: &[u8]) -> Self {
        Self {
            version: VERSION,
            kind,
            created: now_unix(),
            public: hex(public),
            private: hex(private),
            pcrs: BTreeMap::new(),
            nonce: String::new(),
            ciphertext: String::new(),
            spki_sha256: hex(spki_sha256),
            policy_key: String::new(),
        }
    }

    /// Marks a sealed blob as unsealed by the policies that `spki` (a policy key) signs.
    pub(crate) fn set_policy_key(&mut self, spki: &[u8]) {
        self.version = VERSION_SIGNED_POLICY;
        self.policy_key = hex(spki);
    }

    /// Reads and checks a blob of the expected kind.
    pub(crate) fn read(path: &Path, kind: BlobKind) -> Result<Self, KeyError> {
        let bytes = vigil_files::read(path, vigil_files::FileKind::KeyBlob)?;
        let bad = |detail: String| KeyError::BadBlob {
            path: path.to_path_buf(),
            detail,
        };
        let blob: Self = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        match (blob.version, blob.policy_key.is_empty()) {
            (VERSION, true) => {}
            (VERSION_SIGNED_POLICY, false) if blob.kind == BlobKind::Sealed => {}
            (VERSION | VERSION_SIGNED_POLICY, _) => {
                return Err(bad(format!(
                    "format version {} does not match its policy_key field",
                    blob.version
                )));
            }
            (v, _) => {
                return Err(bad(format!(
                    "format version {v} is not {VERSION} or {VERSION_SIGNED_POLICY}"
                )));
            }
        }
        if blob.kind != kind {
            return Err(bad(format!(
                "holds a {:?} key, expected {kind:?}",
                blob.kind
            )));
        }
        Ok(blob)
    }

    /// Writes the blob atomically (temp file + rename), so a reader never sees half a blob.
    pub(crate) fn write(&self, path: &Path) -> Result<(), KeyError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| KeyError::BadBlob {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        write_atomic(path, &json, 0o600)
    }

    /// Decodes a hex field, naming the blob and the field in the error.
    pub(crate) fn field(&self, path: &Path, name: &str, value: &str) -> Result<Vec<u8>, KeyError> {
        unhex(value).ok_or_else(|| KeyError::BadBlob {
            path: path.to_path_buf(),
            detail: format!("field {name} is not hex"),
        })
    }
}

/// Writes `data` to `path` through a temp file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), KeyError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let io = |source| KeyError::FileUnreadable {
        path: path.to_path_buf(),
        source,
    };
    // A stale temp file would keep its old permissions through `truncate`; start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    // Persist the rename too, so a power cut cannot leave the old key next to a new cert.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Parses hex (either case); `None` on odd length or a non-hex digit.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_garbage() {
        let data = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(hex(&data), "00017f80ff");
        assert_eq!(unhex("00017F80ff").unwrap(), data);
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn blob_round_trips_and_kind_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.blob");
        let mut blob = KeyBlob::new(BlobKind::Sealed, &[1, 2], &[3], &[4; 32]);
        blob.pcrs.insert(7, hex(&[0; 32]));
        blob.write(&path).unwrap();
        assert_eq!(KeyBlob::read(&path, BlobKind::Sealed).unwrap(), blob);
        let err = KeyBlob::read(&path, BlobKind::Resident).unwrap_err();
        assert!(matches!(err, KeyError::BadBlob { .. }), "{err:?}");
        // A key sealed to signed policies is version 2; the versions and the field must agree.
        blob.pcrs.clear();
        blob.set_policy_key(&[0x30, 0x59]);
        blob.write(&path).unwrap();
        assert_eq!(KeyBlob::read(&path, BlobKind::Sealed).unwrap(), blob);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 2"), "{text}");
        std::fs::write(&path, text.replace("\"version\": 2", "\"version\": 1")).unwrap();
        let err = KeyBlob::read(&path, BlobKind::Sealed).unwrap_err();
        assert!(err.to_string().contains("policy_key"), "{err}");
        std::fs::write(&path, b"{\"version\":1").unwrap();
        let err = KeyBlob::read(&path, BlobKind::Sealed).unwrap_err();
        assert!(
            err.to_string().contains("not a valid Vigil key file"),
            "{err}"
        );
    }
}
