//! One key per algorithm, a JWKS of their public parts, and a token signed by each.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};
use vigil_identity::Algorithm;

/// A signed token with what the raw ring verification of it needs.
pub struct Signed {
    pub alg: Algorithm,
    pub token: String,
    /// The public JWK (kid = the algorithm's name).
    pub jwk: Value,
    /// Signing input and decoded signature, for the raw ring peer.
    pub signed: Vec<u8>,
    pub signature: Vec<u8>,
    pub public: Public,
}

/// A public key in the form ring verifies with.
pub enum Public {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Point(Vec<u8>),
}

impl Signed {
    /// ring alone: the signature check our verification cannot avoid.
    pub fn raw_verify(&self) -> bool {
        let (msg, sig) = (self.signed.as_slice(), self.signature.as_slice());
        match (&self.public, self.alg) {
            (Public::Rsa { n, e }, alg) => {
                let params = match alg {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    _ => &signature::RSA_PSS_2048_8192_SHA256,
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok()
            }
            (Public::Point(p), alg) => {
                let a: &dyn signature::VerificationAlgorithm = match alg {
                    Algorithm::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => &signature::ED25519,
                };
                signature::UnparsedPublicKey::new(a, p)
                    .verify(msg, sig)
                    .is_ok()
            }
        }
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A 2048-bit RSA key from the openssl CLI (ring cannot generate RSA keys).
fn rsa_key(dir: &Path) -> anyhow::Result<RsaKeyPair> {
    let path = dir.join("rsa.der");
    let out = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .args(["-outform", "DER", "-out"])
        .arg(&path)
        .output()
        .context("running openssl (needed to generate the RSA key)")?;
    if !out.status.success() {
        bail!("openssl genpkey: {}", String::from_utf8_lossy(&out.stderr));
    }
    let der = std::fs::read(&path)?;
    // OpenSSL 3 writes PKCS#1 for DER output, older versions PKCS#8.
    RsaKeyPair::from_pkcs8(&der)
        .or_else(|_| RsaKeyPair::from_der(&der))
        .map_err(|e| anyhow::anyhow!("RSA key from openssl: {e}"))
}

/// Signs `claims` with every algorithm.
pub fn sign_all(dir: &Path, claims: &Value) -> anyhow::Result<Vec<Signed>> {
    let rng = SystemRandom::new();
    let rsa = rsa_key(dir)?;
    let p256 = ec_key(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)?;
    let p384 = ec_key(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng)?;
    let ed_pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ed = Ed25519KeyPair::from_pkcs8(ed_pkcs8.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let rsa_public = signature::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let mut out = Vec::new();
    for alg in Algorithm::ALL {
        let kid = alg.as_str();
        let header = json!({"alg": kid, "typ": "JWT", "kid": kid});
        let signed = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let msg = signed.as_bytes();
        let (signature, jwk, public) = match alg {
            Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Ps256 => {
                let pad: &dyn signature::RsaEncoding = match alg {
                    Algorithm::Rs256 => &signature::RSA_PKCS1_SHA256,
                    Algorithm::Rs384 => &signature::RSA_PKCS1_SHA384,
                    _ => &signature::RSA_PSS_SHA256,
                };
                let mut sig = vec![0; rsa.public().modulus_len()];
                rsa.sign(pad, &rng, msg, &mut sig)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let (n, e) = (rsa_public.n.clone(), rsa_public.e.clone());
                let jwk = json!({"kty":"RSA","kid":kid,"alg":kid,"n":b64(&n),"e":b64(&e)});
                (sig, jwk, Public::Rsa { n, e })
            }
            Algorithm::Es256 | Algorithm::Es384 => {
                let kp = if alg == Algorithm::Es256 {
                    &p256
                } else {
                    &p384
                };
                let sig = kp.sign(&rng, msg).map_err(|e| anyhow::anyhow!("{e}"))?;
                let point = kp.public_key().as_ref().to_vec();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                let jwk = json!({"kty":"EC","kid":kid,"alg":kid,"crv":crv,
                    "x":b64(&point[1..=len]),"y":b64(&point[1 + len..])});
                (sig.as_ref().to_vec(), jwk, Public::Point(point))
            }
            Algorithm::EdDsa => {
                let sig = ed.sign(msg).as_ref().to_vec();
                let x = ed.public_key().as_ref().to_vec();
                let jwk = json!({"kty":"OKP","kid":kid,"alg":kid,"crv":"Ed25519","x":b64(&x)});
                (sig, jwk, Public::Point(x))
            }
        };
        let token = format!("{signed}.{}", b64(&signature));
        out.push(Signed {
            alg,
            token,
            jwk,
            signed: signed.into_bytes(),
            signature,
            public,
        });
    }
    Ok(out)
}

fn ec_key(
    alg: &'static signature::EcdsaSigningAlgorithm,
    rng: &SystemRandom,
) -> anyhow::Result<EcdsaKeyPair> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, rng).map_err(|e| anyhow::anyhow!("{e}"))?;
    EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), rng).map_err(|e| anyhow::anyhow!("{e}"))
}
