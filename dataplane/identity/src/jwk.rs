//! JSON Web Key Sets (RFC 7517): the public keys tokens are verified with.

use std::collections::HashMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::alg::{Algorithm, KeyFamily};
use crate::error::JwksError;

use crate::{MAX_JWKS_BYTES, MAX_KEYS};

const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

/// The public part of a key, in the form ring verifies with.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    /// Big-endian modulus and exponent, without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// Uncompressed point 0x04 || x || y.
    P256(Vec<u8>),
    /// Uncompressed point 0x04 || x || y.
    P384(Vec<u8>),
    /// The 32-byte public key.
    Ed25519(Vec<u8>),
}

/// One usable verification key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Key {
    kid: Option<String>,
    /// The JWK's `alg`: when set, the key verifies that algorithm only.
    alg: Option<Algorithm>,
    material: Material,
}

impl Key {
    fn family(&self) -> KeyFamily {
        match self.material {
            Material::Rsa { .. } => KeyFamily::Rsa,
            Material::P256(_) => KeyFamily::P256,
            Material::P384(_) => KeyFamily::P384,
            Material::Ed25519(_) => KeyFamily::Ed25519,
        }
    }

    /// Whether this key may verify `alg`: the key type must fit and a JWK `alg`, when set, must
    /// be that algorithm. This is what stops an RSA key from verifying an ES256 token or a key
    /// published for RS256 from verifying a PS256 token.
    pub(crate) fn accepts(&self, alg: Algorithm) -> bool {
        self.family() == alg.family() && self.alg.is_none_or(|a| a == alg)
    }

    /// Verifies `sig` over `msg` with `alg`; false when `accepts(alg)` is false.
    pub(crate) fn verify(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
        if !self.accepts(alg) {
            return false;
        }
        let rsa = |params: &signature::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok()
        };
        match (&self.material, alg) {
            (Material::Rsa { n, e }, Algorithm::Rs256) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA256, n, e)
            }
            (Material::Rsa { n, e }, Algorithm::Rs384) => {
                rsa(&signature::RSA_PKCS1_2048_8192_SHA384, n, e)
            }
            (Material::Rsa { n, e }, Algorithm::Ps256) => {
                rsa(&signature::RSA_PSS_2048_8192_SHA256, n, e)
            }
            (Material::P256(point), Algorithm::Es256) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            (Material::P384(point), Algorithm::Es384) => {
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            (Material::Ed25519(x), Algorithm::EdDsa) => {
                UnparsedPublicKey::new(&signature::ED25519, x)
                    .verify(msg, sig)
                    .is_ok()
            }
            _ => false,
        }
    }

    fn kty(&self) -> &'static str {
        match self.material {
            Material::Rsa { .. } => "RSA",
            Material::P256(_) => "EC P-256",
            Material::P384(_) => "EC P-384",
            Material::Ed25519(_) => "OKP Ed25519",
        }
    }
}

/// A parsed JWKS: the usable verification keys, indexed by `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
    by_kid: HashMap<String, Vec<usize>>,
    skipped: usize,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys":[...]}`).
    ///
    /// Accepts kty RSA (`n`, `e`; modulus 2048..=8192 bits), EC (`crv` P-256 / P-384, `x`, `y`)
    /// and OKP (`crv` Ed25519, `x`). Keys with `"use":"enc"`, with `key_ops` lacking "verify",
    /// with a kty/crv/alg we do not verify with, or with unusable parameters are skipped and
    /// counted ([`KeySet::skipped`]); symmetric keys (kty "oct") are skipped and never used.
    /// Bounded: more than 1 MiB of input or more than 256 entries in `keys` is an error, and so
    /// is a document without a single usable key.
    pub fn from_jwks(json: &[u8]) -> Result<KeySet, JwksError> {
        if json.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let doc: Document = serde_json::from_slice(json).map_err(|e| JwksError::Parse {
            reason: e.to_string(),
        })?;
        if doc.keys.total > MAX_KEYS {
            return Err(JwksError::TooManyKeys);
        }
        let mut set = KeySet {
            keys: Vec::new(),
            by_kid: HashMap::new(),
            skipped: 0,
        };
        for (i, jwk) in doc.keys.items.iter().enumerate() {
            match parse_key(jwk) {
                Ok(key) => {
                    if let Some(kid) = &key.kid {
                        set.by_kid
                            .entry(kid.clone())
                            .or_default()
                            .push(set.keys.len());
                    }
                    set.keys.push(key);
                }
                Err(why) => {
                    let kid = jwk.get("kid").and_then(Value::as_str).unwrap_or("");
                    tracing::debug!(index = i, kid, why, "JWKS key skipped");
                    set.skipped += 1;
                }
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKeys);
        }
        Ok(set)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no usable key (never true for a set from [`KeySet::from_jwks`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids of the usable keys, in document order, each once.
    pub fn kids(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for kid in self.keys.iter().filter_map(|k| k.kid.as_ref()) {
            if !out.contains(kid) {
                out.push(kid.clone());
            }
        }
        out
    }

    /// Number of entries of the document that were skipped (encryption keys, symmetric keys,
    /// unsupported types or curves, unusable parameters).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The keys with this `kid` (empty when none).
    pub(crate) fn with_kid(&self, kid: &str) -> impl Iterator<Item = &Key> {
        self.by_kid
            .get(kid)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&i| self.keys.get(i))
    }

    /// Every key, for tokens without a `kid`.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids and types are enough to tell sets apart; the key bytes would only be noise.
        struct Entry<'a>(&'a Key);
        impl fmt::Debug for Entry<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let alg = self.0.alg.map_or("any", Algorithm::as_str);
                write!(
                    f,
                    "{:?} {} alg={alg}",
                    self.0.kid.as_deref().unwrap_or(""),
                    self.0.kty()
                )
            }
        }
        f.debug_struct("KeySet")
            .field("keys", &self.keys.iter().map(Entry).collect::<Vec<_>>())
            .field("skipped", &self.skipped)
            .finish()
    }
}

#[derive(Deserialize)]
struct Document {
    keys: BoundedKeys,
}

/// The `keys` array, keeping at most [`MAX_KEYS`] entries in memory while counting them all.
struct BoundedKeys {
    items: Vec<Value>,
    total: usize,
}

impl<'de> Deserialize<'de> for BoundedKeys {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BoundedKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of JWKs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<BoundedKeys, A::Error> {
                let mut out = BoundedKeys {
                    items: Vec::new(),
                    total: 0,
                };
                while out.total < MAX_KEYS {
                    match seq.next_element::<Value>()? {
                        Some(v) => out.items.push(v),
                        None => return Ok(out),
                    }
                    out.total += 1;
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    out.total += 1;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V)
    }
}

/// One JWK as a usable key, or why it is skipped.
fn parse_key(jwk: &Value) -> Result<Key, &'static str> {
    let obj = jwk.as_object().ok_or("not an object")?;
    let kty = opt_str(obj, "kty")?.ok_or("no kty")?;
    if let Some(usage) = opt_str(obj, "use")? {
        if usage != "sig" {
            return Err("use is not sig");
        }
    }
    if let Some(ops) = obj.get("key_ops") {
        let ops = ops.as_array().ok_or("key_ops is not an array")?;
        if !ops.iter().any(|op| op.as_str() == Some("verify")) {
            return Err("key_ops lacks verify");
        }
    }
    let kid = opt_str(obj, "kid")?.map(str::to_owned);
    let alg = match opt_str(obj, "alg")? {
        Some(name) => Some(name.parse::<Algorithm>().map_err(|_| "alg not supported")?),
        None => None,
    };
    let material = match kty {
        "RSA" => rsa_material(obj)?,
        "EC" => {
            let crv = opt_str(obj, "crv")?.ok_or("EC key without crv")?;
            let len = match crv {
                "P-256" => 32,
                "P-384" => 48,
                _ => return Err("EC curve not supported"),
            };
            let x = b64_field(obj, "x")?;
            let y = b64_field(obj, "y")?;
            if x.len() != len || y.len() != len {
                return Err("EC coordinates of the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if len == 32 {
                Material::P256(point)
            } else {
                Material::P384(point)
            }
        }
        "OKP" => {
            if opt_str(obj, "crv")? != Some("Ed25519") {
                return Err("OKP curve not supported");
            }
            let x = b64_field(obj, "x")?;
            if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
                return Err("Ed25519 key of the wrong length");
            }
            Material::Ed25519(x)
        }
        "oct" => return Err("symmetric key"),
        _ => return Err("kty not supported"),
    };
    let key = Key { kid, alg, material };
    if let Some(a) = alg {
        if !key.accepts(a) {
            return Err("alg does not fit the key type");
        }
    }
    Ok(key)
}

fn rsa_material(obj: &Map<String, Value>) -> Result<Material, &'static str> {
    let n = strip_zeros(b64_field(obj, "n")?);
    let e = strip_zeros(b64_field(obj, "e")?);
    let bits = n
        .first()
        .map_or(0, |&b| n.len() * 8 - b.leading_zeros() as usize);
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err("RSA modulus not 2048..=8192 bits");
    }
    // ring accepts odd exponents from 3 up to 2^33 - 1; refusing others here reports the key as
    // skipped instead of failing every signature later.
    let e_value = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    if e.len() > 5 || e_value < 3 || e_value % 2 == 0 || e_value > (1 << 33) - 1 {
        return Err("RSA exponent not usable");
    }
    Ok(Material::Rsa { n, e })
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|&&b| b == 0).count();
    v.drain(..zeros);
    v
}

fn opt_str<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, &'static str> {
    match obj.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err("a member that must be a string is not"),
    }
}

fn b64_field(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, &'static str> {
    let text = opt_str(obj, name)?.ok_or("a required key parameter is missing")?;
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| "a key parameter is not base64url")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa_jwk(kid: &str, bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[bits / 8 - 1] |= 1;
        serde_json::json!({"kty":"RSA","kid":kid,"n":b64(&n),"e":"AQAB"})
    }

    fn ec_jwk(kid: &str, crv: &str, len: usize) -> Value {
        let (x, y) = (b64(&vec![1; len]), b64(&vec![2; len]));
        serde_json::json!({"kty":"EC","kid":kid,"crv":crv,"x":x,"y":y})
    }

    fn set(keys: Vec<Value>) -> Result<KeySet, JwksError> {
        KeySet::from_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes())
    }

    #[test]
    fn accepts_supported_types_and_counts_skipped() -> Result<(), JwksError> {
        let n = b64(&[0xC5; 256]);
        let s = set(vec![
            rsa_jwk("r", 2048),
            ec_jwk("p256", "P-256", 32),
            ec_jwk("p384", "P-384", 48),
            serde_json::json!({"kty":"OKP","crv":"Ed25519","kid":"ed","x":b64(&[7;32])}),
            serde_json::json!({"kty":"oct","kid":"hmac","k":b64(b"secret")}),
            serde_json::json!({"kty":"RSA","kid":"enc","use":"enc","n":n.clone(),"e":"AQAB"}),
            serde_json::json!({"kty":"OKP","crv":"X25519","kid":"x","x":b64(&[7;32])}),
            ec_jwk("p521", "P-521", 66),
            serde_json::json!({"kty":"RSA","kid":"hs","alg":"HS256","n":n,"e":"AQAB"}),
            serde_json::json!({"kty":"EC","kid":"mix","alg":"RS256","crv":"P-256","x":b64(&[1;32]),
                               "y":b64(&[2;32])}),
            serde_json::json!("not an object"),
        ])?;
        assert_eq!(s.len(), 4);
        assert_eq!(s.skipped(), 7);
        assert_eq!(s.kids(), ["r", "p256", "p384", "ed"]);
        assert!(!format!("{s:?}").contains(&b64(&[7; 32])));
        Ok(())
    }

    #[test]
    fn rsa_modulus_bounds() {
        assert!(set(vec![rsa_jwk("small", 1024)]).is_err());
        assert!(set(vec![rsa_jwk("ok", 2048)]).is_ok());
        assert!(set(vec![rsa_jwk("big", 8192)]).is_ok());
        assert!(set(vec![rsa_jwk("huge", 8200)]).is_err());
        // A leading zero byte does not count toward the size.
        let mut n = vec![0u8];
        n.extend_from_slice(&[0xC5; 256]);
        let jwk = serde_json::json!({"kty":"RSA","n":b64(&n),"e":"AQAB"});
        assert_eq!(set(vec![jwk]).map(|s| s.len()).ok(), Some(1));
        let even_e = serde_json::json!({"kty":"RSA","n":b64(&[0xC5; 256]),"e":b64(&[2])});
        assert!(matches!(set(vec![even_e]), Err(JwksError::NoUsableKeys)));
    }

    #[test]
    fn wrong_coordinate_lengths_are_skipped() {
        assert!(matches!(
            set(vec![ec_jwk("a", "P-256", 48)]),
            Err(JwksError::NoUsableKeys)
        ));
        let padded = format!("{}=", b64(&[7; 32]));
        let padded = serde_json::json!({"kty":"OKP","crv":"Ed25519","x":padded});
        assert!(matches!(set(vec![padded]), Err(JwksError::NoUsableKeys)));
    }

    #[test]
    fn limits_and_shape() {
        assert!(matches!(
            KeySet::from_jwks(&vec![b' '; MAX_JWKS_BYTES + 1]),
            Err(JwksError::TooLarge)
        ));
        let many: Vec<Value> = (0..257)
            .map(|i| ec_jwk(&i.to_string(), "P-256", 32))
            .collect();
        assert!(matches!(set(many), Err(JwksError::TooManyKeys)));
        let max: Vec<Value> = (0..256)
            .map(|i| ec_jwk(&i.to_string(), "P-256", 32))
            .collect();
        assert_eq!(set(max).map(|s| s.len()).ok(), Some(256));
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"keys\":{}}",
            b"not json",
            b"{\"keys\":[]",
        ] {
            assert!(
                matches!(KeySet::from_jwks(bad), Err(JwksError::Parse { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            KeySet::from_jwks(b"{\"keys\":[]}"),
            Err(JwksError::NoUsableKeys)
        ));
    }

    #[test]
    fn duplicate_kids_keep_both_keys() -> Result<(), JwksError> {
        let s = set(vec![ec_jwk("k", "P-256", 32), ec_jwk("k", "P-384", 48)])?;
        assert_eq!(s.len(), 2);
        assert_eq!(s.kids(), ["k"]);
        assert_eq!(s.with_kid("k").count(), 2);
        assert_eq!(s.with_kid("other").count(), 0);
        Ok(())
    }
}
