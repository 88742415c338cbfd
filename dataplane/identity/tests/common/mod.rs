//! Test helpers: keys of every algorithm, token signing, a temporary directory and a small HTTPS
//! server for JWKS documents. Each test binary uses a part of this.
#![allow(dead_code)]

pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};
use vigil_identity::{Algorithm, KeySet};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vigil-identity-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An RSA key made by the openssl CLI (ring cannot generate RSA keys), with its public key in
/// the encodings an attacker might use as an HMAC secret.
pub struct RsaMaterial {
    pub private_der: Vec<u8>,
    pub spki_der: Vec<u8>,
    pub spki_pem: Vec<u8>,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate_rsa(dir: &Path, name: &str) -> RsaMaterial {
    let key = dir.join(format!("{name}.der"));
    let spki = dir.join(format!("{name}.pub.der"));
    let pem = dir.join(format!("{name}.pub.pem"));
    let (k, s, p) = (
        key.to_string_lossy(),
        spki.to_string_lossy(),
        pem.to_string_lossy(),
    );
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-outform",
        "DER",
        "-out",
        &k,
    ]);
    openssl(&[
        "pkey", "-in", &k, "-inform", "DER", "-pubout", "-outform", "DER", "-out", &s,
    ]);
    openssl(&[
        "pkey", "-in", &k, "-inform", "DER", "-pubout", "-outform", "PEM", "-out", &p,
    ]);
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    RsaMaterial {
        private_der: read(&key),
        spki_der: read(&spki),
        spki_pem: read(&pem),
    }
}

/// Two RSA keys per test binary (generating them takes a while).
pub fn rsa_material(i: usize) -> &'static RsaMaterial {
    static KEYS: OnceLock<Vec<RsaMaterial>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let dir = TempDir::new();
        vec![generate_rsa(dir.path(), "a"), generate_rsa(dir.path(), "b")]
    });
    &keys[i % keys.len()]
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A signing key with its kid and algorithm.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pair: Pair,
    /// For RSA: which of the two keys.
    rsa_index: Option<usize>,
}

impl TestKey {
    /// A fresh key for `alg` (RSA: one of the two per-binary keys, picked by `variant`).
    pub fn new(alg: Algorithm, kid: &str, variant: usize) -> TestKey {
        let rng = SystemRandom::new();
        let fail = |e: &dyn std::fmt::Display| -> ! { panic!("key for {alg}: {e}") };
        let (pair, rsa_index) = match alg {
            Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Ps256 => {
                let m = rsa_material(variant);
                // OpenSSL 3 writes a DER private key as PKCS#1, older versions as PKCS#8.
                let kp = RsaKeyPair::from_pkcs8(&m.private_der)
                    .or_else(|_| RsaKeyPair::from_der(&m.private_der))
                    .unwrap_or_else(|e| fail(&e));
                (Pair::Rsa(kp), Some(variant))
            }
            Algorithm::Es256 | Algorithm::Es384 => {
                let a = if alg == Algorithm::Es256 {
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED_SIGNING
                };
                let pkcs8 = EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap_or_else(|e| fail(&e));
                let kp =
                    EcdsaKeyPair::from_pkcs8(a, pkcs8.as_ref(), &rng).unwrap_or_else(|e| fail(&e));
                (Pair::Ec(kp), None)
            }
            Algorithm::EdDsa => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap_or_else(|e| fail(&e));
                (
                    Pair::Ed(
                        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap_or_else(|e| fail(&e)),
                    ),
                    None,
                )
            }
        };
        TestKey {
            kid: kid.to_owned(),
            alg,
            pair,
            rsa_index,
        }
    }

    pub fn rsa(&self) -> Option<&'static RsaMaterial> {
        self.rsa_index.map(rsa_material)
    }

    /// The public JWK, without `alg`.
    pub fn jwk(&self) -> Value {
        match &self.pair {
            Pair::Rsa(kp) => {
                let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(kp.public());
                json!({"kty":"RSA","kid":self.kid,"use":"sig","n":b64(&c.n),"e":b64(&c.e)})
            }
            Pair::Ec(kp) => {
                let point = kp.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty":"EC","kid":self.kid,"crv":crv,
                       "x":b64(&point[1..1 + len]),"y":b64(&point[1 + len..])})
            }
            Pair::Ed(kp) => {
                let x = b64(kp.public_key().as_ref());
                json!({"kty":"OKP","kid":self.kid,"crv":"Ed25519","x":x})
            }
        }
    }

    /// The public JWK with `alg` set to the key's algorithm.
    pub fn jwk_with_alg(&self) -> Value {
        let mut j = self.jwk();
        j["alg"] = json!(self.alg.as_str());
        j
    }

    /// The raw signature of `msg` with `alg` (which must fit the key type).
    pub fn sign_raw(&self, alg: Algorithm, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(kp) => {
                let pad: &dyn signature::RsaEncoding = match alg {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    Algorithm::Ps256 => &signature::RSA_PSS_SHA256,
                    other => panic!("RSA key cannot sign {other}"),
                };
                let mut sig = vec![0; kp.public().modulus_len()];
                kp.sign(pad, &rng, msg, &mut sig)
                    .unwrap_or_else(|e| panic!("sign: {e}"));
                sig
            }
            Pair::Ec(kp) => kp
                .sign(&rng, msg)
                .unwrap_or_else(|e| panic!("sign: {e}"))
                .as_ref()
                .to_vec(),
            Pair::Ed(kp) => kp.sign(msg).as_ref().to_vec(),
        }
    }

    /// A token with header {"alg", "kid", "typ":"JWT"} and these claims.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(
            &json!({"alg":self.alg.as_str(),"typ":"JWT","kid":self.kid}),
            claims,
        )
    }

    /// A token with this exact header (its `alg` decides the signature algorithm when it is one
    /// of ours, else the key's own).
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or(self.alg);
        let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig = self.sign_raw(alg, signing_input.as_bytes());
        format!("{signing_input}.{}", b64(sig))
    }
}

/// A token "signed" with HMAC-SHA256 using `secret`.
pub fn hs256_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

/// A JWKS document of these JWKs.
pub fn jwks_json(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

pub fn key_set(keys: &[Value]) -> KeySet {
    KeySet::from_jwks(jwks_json(keys).as_bytes()).unwrap_or_else(|e| panic!("key set: {e}"))
}

/// Claims valid for the next hour.
pub fn claims_now() -> Value {
    let t = now();
    json!({"sub":"user-1","iss":"https://idp.example","aud":"api","iat":t,"exp":t + 3600})
}
