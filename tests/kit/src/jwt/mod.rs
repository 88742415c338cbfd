//! JWTs as an identity provider makes them: signing keys of every JWS algorithm Vigil accepts,
//! compact tokens, JWKS documents, and a JWKS endpoint over HTTPS.

mod key;
mod server;

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub use key::{Key, rsa_key};
pub use server::{JwksServer, Mode};

/// A JWS signature algorithm (RFC 7518 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    Rs256,
    Rs384,
    Ps256,
    Es256,
    Es384,
    EdDsa,
}

impl Alg {
    pub const ALL: [Alg; 6] = [
        Alg::Rs256,
        Alg::Rs384,
        Alg::Ps256,
        Alg::Es256,
        Alg::Es384,
        Alg::EdDsa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::EdDsa => "EdDSA",
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Alg {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        Alg::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| anyhow::anyhow!("{s:?} is not an algorithm the test kit signs with"))
    }
}

/// base64url without padding (RFC 7515).
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `base64url(header).base64url(claims)`: what a JWS signs.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

/// A token "signed" with HMAC-SHA256 under `secret`: the algorithm-confusion attack when the
/// secret is a published public key.
pub fn hs256_token(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = signing_input(header, claims);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// A JWKS document holding `keys` (JWKs).
pub fn jwks_json(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_encodings_are_unpadded() -> anyhow::Result<()> {
        for alg in Alg::ALL {
            assert_eq!(alg.as_str().parse::<Alg>()?, alg);
        }
        assert!("HS256".parse::<Alg>().is_err());
        assert_eq!(b64([0xfb, 0xff]), "-_8");
        let t = hs256_token(&json!({"alg": "HS256"}), &json!({}), b"k");
        assert_eq!(t.split('.').count(), 3);
        Ok(())
    }
}
