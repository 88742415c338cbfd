//! The JWS algorithms the gateway verifies. HMAC algorithms and "none" are deliberately absent:
//! a gateway verifying with a shared secret could be handed a token "signed" with a public key
//! as the secret (algorithm confusion), and "none" is no signature at all.

use std::fmt;
use std::str::FromStr;

/// A JWS signature algorithm (RFC 7518 names), public-key only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    #[serde(rename = "RS384")]
    Rs384,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256.
    #[serde(rename = "PS256")]
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// ECDSA on P-384 with SHA-384.
    #[serde(rename = "ES384")]
    Es384,
    /// EdDSA (Ed25519 only).
    #[serde(rename = "EdDSA")]
    EdDsa,
}

/// The kind of key an algorithm verifies with; a key verifies only its family's algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyFamily {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Algorithm {
    /// Every algorithm, in the order of the JOSE registry.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Rs256,
        Algorithm::Rs384,
        Algorithm::Ps256,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::EdDsa,
    ];

    /// The JOSE name: "RS256", "RS384", "PS256", "ES256", "ES384" or "EdDSA".
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Rs384 => "RS384",
            Algorithm::Ps256 => "PS256",
            Algorithm::Es256 => "ES256",
            Algorithm::Es384 => "ES384",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    pub(crate) fn family(self) -> KeyFamily {
        match self {
            Algorithm::Rs256 | Algorithm::Rs384 | Algorithm::Ps256 => KeyFamily::Rsa,
            Algorithm::Es256 => KeyFamily::P256,
            Algorithm::Es384 => KeyFamily::P384,
            Algorithm::EdDsa => KeyFamily::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Algorithm::from_str`]: the name is not one of the accepted algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported JWS algorithm {name:?}: accepted are RS256, RS384, PS256, ES256, ES384, EdDSA \
     (\"none\" and HMAC algorithms are never accepted)"
)]
pub struct UnknownAlgorithm {
    /// The name that was given.
    pub name: String,
}

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Accepts exactly the JOSE names (case matters, as in JOSE headers).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgorithm { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(a.as_str().parse::<Algorithm>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(Algorithm::EdDsa.as_str(), "EdDSA");
    }

    #[test]
    fn none_hmac_and_unknown_names_are_errors_naming_the_accepted_list() {
        for bad in [
            "none", "None", "HS256", "HS384", "HS512", "rs256", "RS512", "ES512", "",
        ] {
            let e = bad.parse::<Algorithm>().err();
            let msg = e.map(|e| e.to_string()).unwrap_or_default();
            assert!(
                msg.contains("RS256, RS384, PS256, ES256, ES384, EdDSA"),
                "{bad}: {msg}"
            );
        }
    }

    #[test]
    fn serde_uses_jose_names() -> Result<(), serde_json::Error> {
        assert_eq!(serde_json::to_string(&Algorithm::EdDsa)?, "\"EdDSA\"");
        let a: Vec<Algorithm> = serde_json::from_str(r#"["PS256","ES384"]"#)?;
        assert_eq!(a, [Algorithm::Ps256, Algorithm::Es384]);
        Ok(())
    }
}
