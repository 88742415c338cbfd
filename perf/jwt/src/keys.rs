//! One key per algorithm (the test kit's), a JWKS of their public parts, and a token signed by
//! each.

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use vigil_identity::Algorithm;
use vigil_testkit::jwt::Key;

/// A signed token with what the raw ring verification of it needs.
pub struct Signed {
    pub alg: Algorithm,
    pub token: String,
    /// The public JWK (kid = the algorithm's name).
    pub jwk: Value,
    key: Key,
    /// Signing input and decoded signature, for the raw ring peer.
    signed: Vec<u8>,
    signature: Vec<u8>,
}

impl Signed {
    /// ring alone: the signature check our verification cannot avoid.
    pub fn raw_verify(&self) -> bool {
        self.key.verify(&self.signed, &self.signature)
    }
}

/// Signs `claims` with every algorithm (RS256, RS384 and PS256 share one 2048-bit RSA key).
pub fn sign_all(claims: &Value) -> anyhow::Result<Vec<Signed>> {
    Algorithm::ALL
        .into_iter()
        .map(|alg| {
            let kid = alg.as_str();
            let key = Key::new(kid.parse()?, kid)?;
            let token = key.token(claims);
            let (signed, signature) = token.rsplit_once('.').context("a token has three parts")?;
            Ok(Signed {
                alg,
                jwk: key.jwk_with_alg(),
                signed: signed.as_bytes().to_vec(),
                signature: URL_SAFE_NO_PAD.decode(signature)?,
                token,
                key,
            })
        })
        .collect()
}
