//! Fleet signing keys for tests: one Ed25519 key per box (PKCS#8 PEM, mode 0600) in a
//! temporary directory, and the public keys every box of the fleet lists in `[fleet.boxes]`.

use std::os::unix::fs::OpenOptionsExt as _;
use std::{io::Write as _, path::PathBuf};

use anyhow::{Context, Result, anyhow};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use ring::{
    rand::SystemRandom,
    signature::{Ed25519KeyPair, KeyPair as _},
};

/// One box's key file and public key.
#[derive(Debug, Clone)]
pub struct BoxKey {
    pub name: String,
    pub key: PathBuf,
    /// `ed25519:<base64>`, as `[fleet.boxes]` lists it.
    pub public: String,
}

/// The keys of a fleet; the files are removed on drop.
#[derive(Debug)]
pub struct FleetKeys {
    _dir: tempfile::TempDir,
    boxes: Vec<BoxKey>,
}

impl FleetKeys {
    /// A key for each of `names`.
    pub fn new(names: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let rng = SystemRandom::new();
        let mut boxes = Vec::new();
        for name in names {
            let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| anyhow!("no randomness"))?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
                .map_err(|e| anyhow!("generated key refused: {e}"))?;
            let b64 = STANDARD.encode(doc.as_ref());
            let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
            for chunk in b64.as_bytes().chunks(64) {
                pem.push_str(std::str::from_utf8(chunk)?);
                pem.push('\n');
            }
            pem.push_str("-----END PRIVATE KEY-----\n");
            let key = dir.path().join(format!("{name}.key"));
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .and_then(|mut f| f.write_all(pem.as_bytes()))
                .with_context(|| format!("writing {}", key.display()))?;
            boxes.push(BoxKey {
                name: (*name).to_owned(),
                key,
                public: format!("ed25519:{}", STANDARD.encode(pair.public_key().as_ref())),
            });
        }
        Ok(Self { _dir: dir, boxes })
    }

    pub fn boxes(&self) -> &[BoxKey] {
        &self.boxes
    }

    /// The box called `name`.
    pub fn get(&self, name: &str) -> Result<&BoxKey> {
        self.boxes
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| anyhow!("no fleet key for box {name}"))
    }
}
