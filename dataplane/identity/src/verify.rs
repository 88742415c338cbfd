//! Verification of a compact JWS JWT: structure, algorithm, key, signature, registered claims.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use crate::alg::Algorithm;
use crate::claims::Claims;
use crate::error::JwtError;
use crate::jwk::{Key, KeySet};

/// Longest token accepted, in bytes. Real access tokens are a few hundred bytes to a few KiB;
/// the bound keeps a hostile header from costing more than a bounded decode.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys tried for a token without `kid`, so a large key set cannot multiply the cost of a
/// forged token.
const MAX_KEYS_TRIED: usize = 8;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The token's `iss` must equal one of these; empty: `iss` is not checked.
    pub issuers: Vec<String>,
    /// The token's `aud` (a string or an array) must contain one of these; empty: not checked.
    pub audiences: Vec<String>,
    /// The accepted algorithms (default: all six).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 30 s; whole seconds count).
    pub leeway: Duration,
    /// Whether a token without `exp` is refused (default true).
    pub require_exp: bool,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: Algorithm::ALL.to_vec(),
            leeway: Duration::from_secs(30),
            require_exp: true,
        }
    }
}

/// Verifies a compact JWS JWT and its registered claims at time `now` (seconds since epoch).
///
/// The header's `alg` must be one of `v.algorithms` and fit the key: an RSA key never verifies
/// ES256, and a key whose JWK `alg` is set verifies only that algorithm. "none" and every HMAC
/// algorithm are refused ([`JwtError::AlgorithmRefused`]) before any key is looked at, whatever
/// the key set holds: this is the algorithm-confusion defence. A `crit` header is
/// [`JwtError::Malformed`] (no extension is understood). The header's `kid` selects the key;
/// without a kid, the keys that fit the algorithm are tried (at most 8). Header members that
/// point at other keys (`jku`, `jwk`, `x5u`, `x5c`) are ignored: keys come from `keys` only.
/// Tokens longer than 16 KiB are refused as malformed.
pub fn verify(token: &str, keys: &KeySet, v: &Validation, now: u64) -> Result<Claims, JwtError> {
    let jws = Jws::parse(token, v)?;
    if !jws.signature_verifies(keys)? {
        return Err(JwtError::BadSignature);
    }
    let claims = Claims::from_map(json_object(&jws.payload, "payload")?)?;
    check_claims(&claims, v, now)?;
    Ok(claims)
}

/// A token split and decoded, its algorithm accepted, its signature not yet checked.
struct Jws<'t> {
    alg: Algorithm,
    kid: Option<String>,
    /// The signing input: base64url header "." base64url payload.
    signed: &'t [u8],
    payload: Vec<u8>,
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    fn parse(token: &'t str, v: &Validation) -> Result<Jws<'t>, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::Malformed {
                what: "token longer than 16 KiB",
            });
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed {
                what: "token is not three dot-separated parts",
            });
        };
        let header = json_object(&b64(h, "header is not base64url")?, "header")?;
        if header.contains_key("crit") {
            return Err(JwtError::Malformed {
                what: "header has crit, which is not supported",
            });
        }
        let alg_name = match header.get("alg") {
            Some(Value::String(a)) => a.as_str(),
            _ => {
                return Err(JwtError::Malformed {
                    what: "header alg missing or not a string",
                });
            }
        };
        // Refuse here, before any key is looked at: "none" and HMAC names do not parse.
        let alg = alg_name
            .parse::<Algorithm>()
            .map_err(|_| JwtError::alg_refused(alg_name))?;
        if !v.algorithms.contains(&alg) {
            return Err(JwtError::alg_refused(alg_name));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => {
                return Err(JwtError::Malformed {
                    what: "header kid is not a string",
                });
            }
        };
        let payload = b64(p, "payload is not base64url")?;
        let signature = b64(s, "signature is not base64url")?;
        let signed = token
            .as_bytes()
            .get(..h.len() + 1 + p.len())
            .ok_or(JwtError::Malformed {
                what: "token is not three dot-separated parts",
            })?;
        Ok(Jws {
            alg,
            kid,
            signed,
            payload,
            signature,
        })
    }

    /// Ok(true) when a selected key verifies the signature; the errors say why no key could be
    /// tried at all.
    fn signature_verifies(&self, keys: &KeySet) -> Result<bool, JwtError> {
        let verifies = |k: &Key| k.verify(self.alg, self.signed, &self.signature);
        match &self.kid {
            Some(kid) => {
                let mut named = keys.with_kid(kid).peekable();
                if named.peek().is_none() {
                    return Err(JwtError::UnknownKey);
                }
                let mut fitting = named.filter(|k| k.accepts(self.alg)).peekable();
                if fitting.peek().is_none() {
                    // The kid exists but its key is of another type or pinned to another alg.
                    return Err(JwtError::alg_refused(self.alg.as_str()));
                }
                Ok(fitting.any(verifies))
            }
            None => {
                let mut fitting = keys
                    .all()
                    .filter(|k| k.accepts(self.alg))
                    .take(MAX_KEYS_TRIED)
                    .peekable();
                if fitting.peek().is_none() {
                    return Err(JwtError::UnknownKey);
                }
                Ok(fitting.any(verifies))
            }
        }
    }
}

/// The signature-independent checks, in a fixed order: exp present, exp, nbf, iat, iss, aud.
fn check_claims(c: &Claims, v: &Validation, now: u64) -> Result<(), JwtError> {
    let leeway = v.leeway.as_secs();
    match c.date("exp") {
        None if v.require_exp => return Err(JwtError::MissingExp),
        None => {}
        // now > exp + leeway; with an integer clock, floor(exp) gives the exact answer.
        Some(exp) if now > exp.floor.saturating_add(leeway) => return Err(JwtError::Expired),
        Some(_) => {}
    }
    if let Some(nbf) = c.date("nbf") {
        if now.saturating_add(leeway) < nbf.ceil {
            return Err(JwtError::NotYetValid);
        }
    }
    if let Some(iat) = c.date("iat") {
        if iat.floor > now.saturating_add(leeway) {
            return Err(JwtError::IssuedInFuture);
        }
    }
    if !v.issuers.is_empty() && !c.issuer().is_some_and(|i| v.issuers.iter().any(|x| x == i)) {
        return Err(JwtError::Issuer);
    }
    if !v.audiences.is_empty() && !c.audiences().any(|a| v.audiences.iter().any(|x| x == a)) {
        return Err(JwtError::Audience);
    }
    Ok(())
}

/// Strict base64url: no padding, no whitespace, no non-canonical trailing bits.
fn b64(part: &str, what: &'static str) -> Result<Vec<u8>, JwtError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed { what })
}

fn json_object(bytes: &[u8], part: &'static str) -> Result<Map<String, Value>, JwtError> {
    let what = if part == "header" {
        "header is not a JSON object"
    } else {
        "payload is not a JSON object"
    };
    serde_json::from_slice::<Map<String, Value>>(bytes).map_err(|_| JwtError::Malformed { what })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned(header: &str, payload: &str) -> String {
        format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    fn keys() -> KeySet {
        let x = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let doc = format!(r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"k","x":"{x}"}}]}}"#);
        KeySet::from_jwks(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn structure_errors_are_malformed() {
        let v = Validation::default();
        let ks = keys();
        let good_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","kid":"k"}"#);
        for t in [
            String::new(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            format!("{good_header}.e30.AA="),
            format!("{good_header}.e30=.AA"),
            format!("{good_header}.e3 0.AA"),
            format!("{good_header}.e31.AA"),
            unsigned("not json", "{}"),
            unsigned("[1]", "{}"),
            unsigned(r#"{"alg":1}"#, "{}"),
            unsigned(r#"{"kid":"k"}"#, "{}"),
            unsigned(r#"{"alg":"EdDSA","kid":7}"#, "{}"),
            unsigned(r#"{"alg":"EdDSA","crit":["exp"]}"#, "{}"),
            "x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            let r = verify(&t, &ks, &v, 0);
            assert!(
                matches!(r, Err(JwtError::Malformed { .. })),
                "{t:.60}: {r:?}"
            );
        }
    }

    #[test]
    fn none_and_hmac_are_refused_before_keys() {
        let v = Validation::default();
        for alg in ["none", "None", "HS256", "HS384", "HS512", "RS512", ""] {
            let t = unsigned(&format!(r#"{{"alg":"{alg}","kid":"k"}}"#), "{}");
            assert_eq!(
                verify(&t, &keys(), &v, 0),
                Err(JwtError::AlgorithmRefused {
                    alg: alg.to_owned()
                })
            );
        }
    }

    #[test]
    fn unknown_kid_and_type_mismatch() {
        let v = Validation::default();
        let t = unsigned(r#"{"alg":"EdDSA","kid":"other"}"#, "{}");
        assert_eq!(verify(&t, &keys(), &v, 0), Err(JwtError::UnknownKey));
        let t = unsigned(r#"{"alg":"ES256","kid":"k"}"#, "{}");
        assert!(matches!(
            verify(&t, &keys(), &v, 0),
            Err(JwtError::AlgorithmRefused { .. })
        ));
        let t = unsigned(r#"{"alg":"ES256"}"#, "{}");
        assert_eq!(verify(&t, &keys(), &v, 0), Err(JwtError::UnknownKey));
        let t = unsigned(r#"{"alg":"EdDSA"}"#, "{}");
        assert_eq!(verify(&t, &keys(), &v, 0), Err(JwtError::BadSignature));
    }

    #[test]
    fn claim_checks_at_the_leeway_boundaries() -> Result<(), Box<dyn std::error::Error>> {
        let m = |v: serde_json::Value| match v {
            Value::Object(m) => Claims::from_map(m),
            _ => Err(JwtError::Malformed { what: "test" }),
        };
        let v = Validation {
            leeway: Duration::from_secs(10),
            ..Validation::default()
        };
        let c = m(serde_json::json!({"exp":100,"nbf":50,"iat":50}))?;
        assert_eq!(check_claims(&c, &v, 110), Ok(()));
        assert_eq!(check_claims(&c, &v, 111), Err(JwtError::Expired));
        assert_eq!(check_claims(&c, &v, 40), Ok(()));
        assert_eq!(check_claims(&c, &v, 39), Err(JwtError::NotYetValid));
        let c = m(serde_json::json!({"exp":1000,"iat":50}))?;
        assert_eq!(check_claims(&c, &v, 40), Ok(()));
        assert_eq!(check_claims(&c, &v, 39), Err(JwtError::IssuedInFuture));
        let c = m(serde_json::json!({"exp":100.5}))?;
        let v0 = Validation {
            leeway: Duration::ZERO,
            ..Validation::default()
        };
        assert_eq!(check_claims(&c, &v0, 100), Ok(()));
        assert_eq!(check_claims(&c, &v0, 101), Err(JwtError::Expired));
        let c = m(serde_json::json!({"nbf":100.5, "exp": 1000}))?;
        assert_eq!(check_claims(&c, &v0, 100), Err(JwtError::NotYetValid));
        assert_eq!(check_claims(&c, &v0, 101), Ok(()));
        let c = m(serde_json::json!({}))?;
        assert_eq!(check_claims(&c, &v0, 0), Err(JwtError::MissingExp));
        let lax = Validation {
            require_exp: false,
            ..v0
        };
        assert_eq!(check_claims(&c, &lax, 0), Ok(()));
        Ok(())
    }

    #[test]
    fn issuer_and_audience() -> Result<(), Box<dyn std::error::Error>> {
        let m = |v: serde_json::Value| match v {
            Value::Object(m) => Claims::from_map(m),
            _ => Err(JwtError::Malformed { what: "test" }),
        };
        let v = Validation {
            issuers: vec!["a".into(), "b".into()],
            audiences: vec!["api".into()],
            require_exp: false,
            ..Validation::default()
        };
        assert_eq!(
            check_claims(&m(serde_json::json!({"iss":"b","aud":"api"}))?, &v, 0),
            Ok(())
        );
        let arr = m(serde_json::json!({"iss":"a","aud":["x","api"]}))?;
        assert_eq!(check_claims(&arr, &v, 0), Ok(()));
        let c = m(serde_json::json!({"iss":"c","aud":"api"}))?;
        assert_eq!(check_claims(&c, &v, 0), Err(JwtError::Issuer));
        let c = m(serde_json::json!({"aud":"api"}))?;
        assert_eq!(check_claims(&c, &v, 0), Err(JwtError::Issuer));
        let c = m(serde_json::json!({"iss":"a","aud":["x"]}))?;
        assert_eq!(check_claims(&c, &v, 0), Err(JwtError::Audience));
        let c = m(serde_json::json!({"iss":"a"}))?;
        assert_eq!(check_claims(&c, &v, 0), Err(JwtError::Audience));
        Ok(())
    }
}
