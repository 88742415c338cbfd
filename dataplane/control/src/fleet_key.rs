//! Fleet signing keys. Every box signs the blocks it shares with an Ed25519 key of its own, and
//! every box holds the public keys of the boxes it trusts (`[fleet.boxes]` in the config), so a
//! block written into Redis by anyone else is refused.
//!
//! A private key file is PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `vigilctl fleet keygen`
//! writes it and as `openssl genpkey -algorithm ed25519` does; it must not be readable by group
//! or others. A public key is written `ed25519:<base64 of its 32 bytes>`.

use std::{fmt, io::Write as _, os::unix::fs::OpenOptionsExt as _, path::Path, str::FromStr};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ring::{
    rand::SystemRandom,
    signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey},
};
use vigil_files::FileKind;

/// How a public key starts in the config.
pub const PUBLIC_PREFIX: &str = "ed25519:";
/// Longest box name: it is stored beside each rule learned from the fleet.
pub const MAX_BOX_ID: usize = 31;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// Why a fleet key was not loaded or written. Messages name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum FleetKeyError {
    #[error(transparent)]
    File(#[from] vigil_files::FileError),
    #[error(
        "fleet signing key {path}: {what}; make one with `vigilctl fleet keygen --box NAME --out \
         {path}` (or `openssl genpkey -algorithm ed25519 -out {path}`)"
    )]
    Format { path: String, what: String },
    #[error(
        "fleet signing key {path} is readable by group or others (mode {mode:o}); run `chmod 600 \
         {path}`"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("writing fleet signing key {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("generating a fleet signing key failed (no system randomness)")]
    Random,
}

/// A box's public key, as `[fleet.boxes]` lists it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Whether `sig` is this key's signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(msg, sig)
            .is_ok()
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PUBLIC_PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PublicKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let hint = "expected ed25519:<base64 of 32 bytes>, as `vigilctl fleet keygen` or \
                    `vigilctl fleet pubkey` prints it";
        let Some(b64) = s.trim().strip_prefix(PUBLIC_PREFIX) else {
            return Err(format!("not an Ed25519 public key: {hint}"));
        };
        let raw = STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64 ({e}): {hint}"))?;
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|v: Vec<u8>| format!("{} bytes instead of 32: {hint}", v.len()))?;
        Ok(PublicKey(key))
    }
}

/// A box's private signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public())
    }
}

impl SigningKey {
    /// A new key and its PEM text.
    pub fn generate() -> Result<(SigningKey, String), FleetKeyError> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| FleetKeyError::Random)?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| FleetKeyError::Random)?;
        Ok((SigningKey { pair }, pem(doc.as_ref())))
    }

    /// Parses PKCS#8 PEM; `path` only names the file in errors.
    pub fn from_pem(text: &str, path: &Path) -> Result<SigningKey, FleetKeyError> {
        let bad = |what: &str| FleetKeyError::Format {
            path: path.display().to_string(),
            what: what.to_owned(),
        };
        if text.contains("ENCRYPTED PRIVATE KEY") {
            return Err(bad(
                "the key is encrypted; vigild needs it unencrypted (mode 0600)",
            ));
        }
        let start = text
            .find(PEM_BEGIN)
            .ok_or_else(|| bad("no \"-----BEGIN PRIVATE KEY-----\" block"))?;
        let body = &text[start + PEM_BEGIN.len()..];
        let end = body
            .find(PEM_END)
            .ok_or_else(|| bad("the PRIVATE KEY block has no END line"))?;
        let b64: String = body[..end].split_whitespace().collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|e| bad(&format!("the PEM body is not base64 ({e})")))?;
        // PKCS#8 v1 (OpenSSL) carries no public key; v2 (ring) does and is checked against it.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|e| bad(&format!("not an Ed25519 PKCS#8 key ({e})")))?;
        Ok(SigningKey { pair })
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<SigningKey, FleetKeyError> {
        let text = vigil_files::read_to_string(path, FileKind::PrivateKey)?;
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(FleetKeyError::TooOpen {
                    path: path.display().to_string(),
                    mode,
                });
            }
        }
        SigningKey::from_pem(&text, path)
    }

    /// Writes a new key to `path` (mode 0600; an existing file is kept unless `replace`).
    pub fn create(path: &Path, replace: bool) -> Result<SigningKey, FleetKeyError> {
        let (key, pem) = SigningKey::generate()?;
        let werr = |error| FleetKeyError::Write {
            path: path.display().to_string(),
            error,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).mode(0o600);
        if replace {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        let mut f = opts.open(path).map_err(werr)?;
        f.write_all(pem.as_bytes()).map_err(werr)?;
        f.sync_all().map_err(werr)?;
        Ok(key)
    }

    pub fn public(&self) -> PublicKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(k)
    }

    pub fn sign(&self, msg: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(msg).as_ref());
        out
    }
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("{PEM_BEGIN}\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(PEM_END);
    out.push('\n');
    out
}

/// Checks a box name: 1 to 31 of `A-Z a-z 0-9 . _ -`.
pub fn check_box_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_BOX_ID {
        return Err(format!(
            "box name {id:?} must be 1 to {MAX_BOX_ID} characters"
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "box name {id:?} holds {c:?}; use letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_generated_key_round_trips_through_pem_and_signs() {
        let (key, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pem(&pem, Path::new("k.pem")).unwrap();
        assert_eq!(key.public(), again.public());
        let sig = again.sign(b"block 198.18.0.2/32");
        assert!(key.public().verify(b"block 198.18.0.2/32", &sig));
        assert!(!key.public().verify(b"block 198.18.0.3/32", &sig));
        let (other, _) = SigningKey::generate().unwrap();
        assert!(!other.public().verify(b"block 198.18.0.2/32", &sig));
    }

    #[test]
    fn public_keys_parse_and_print_the_same_way() {
        let (key, _) = SigningKey::generate().unwrap();
        let text = key.public().to_string();
        assert!(text.starts_with("ed25519:"));
        assert_eq!(text.parse::<PublicKey>().unwrap(), key.public());
        for bad in ["", "ed25519:", "ed25519:AAAA", "rsa:AAAA", "ed25519:!!"] {
            let e = bad.parse::<PublicKey>().unwrap_err();
            assert!(e.contains("ed25519:<base64"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_key_files_are_named_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.key");
        std::fs::write(&path, "not a key").unwrap();
        let e = SigningKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("readable by group or others"), "{e}");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = SigningKey::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("BEGIN PRIVATE KEY") && e.contains("vigilctl fleet keygen"),
            "{e}"
        );
        std::fs::write(&path, "-----BEGIN ENCRYPTED PRIVATE KEY-----\n").unwrap();
        let e = SigningKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("encrypted"), "{e}");
        // An RSA key in the right wrapper is still refused.
        std::fs::write(&path, format!("{PEM_BEGIN}\nMAA=\n{PEM_END}\n")).unwrap();
        let e = SigningKey::load(&path).unwrap_err().to_string();
        assert!(e.contains("not an Ed25519 PKCS#8 key"), "{e}");
    }

    #[test]
    fn create_writes_mode_0600_and_never_overwrites_by_default() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.key");
        let key = SigningKey::create(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SigningKey::load(&path).unwrap().public(), key.public());
        assert!(SigningKey::create(&path, false).is_err());
        let newer = SigningKey::create(&path, true).unwrap();
        assert_ne!(newer.public(), key.public());
    }

    #[test]
    fn openssl_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ossl.key");
        let ok = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&path)
            .status()
            .expect("openssl is installed by scripts/setup.sh");
        assert!(ok.success());
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = SigningKey::load(&path).unwrap();
        let sig = key.sign(b"x");
        assert!(key.public().verify(b"x", &sig));
    }

    #[test]
    fn box_ids_are_short_and_plain() {
        assert!(check_box_id("edge-1.par_2").is_ok());
        assert!(check_box_id("").is_err());
        assert!(check_box_id(&"a".repeat(32)).is_err());
        assert!(check_box_id("box 1").unwrap_err().contains("' '"));
        assert!(check_box_id("box\n").is_err());
    }
}
