//! What the identity tests share on top of the test kit's keys, tokens and JWKS server: keys
//! named by the crate's own algorithms, key sets, and claims the strict validation accepts.
#![allow(dead_code)]

use serde_json::{Value, json};
use vigil_identity::{Algorithm, KeySet};
pub use vigil_testkit::jwt::{Key, jwks_json, now};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh key for `alg` named `kid`; an RSA key is the process's key number `variant` (0 or
/// 1), so two variants are two different keys for every algorithm.
pub fn test_key(alg: Algorithm, kid: &str, variant: usize) -> Key {
    alg.as_str()
        .parse()
        .and_then(|alg| Key::variant(alg, kid, variant))
        .unwrap_or_else(|e| panic!("key for {alg}: {e:#}"))
}

pub fn key_set(keys: &[Value]) -> KeySet {
    KeySet::from_jwks(jwks_json(keys).as_bytes()).unwrap_or_else(|e| panic!("key set: {e}"))
}

/// Claims valid for the next hour.
pub fn claims_now() -> Value {
    let t = now();
    json!({"sub":"user-1","iss":"https://idp.example","aud":"api","iat":t,"exp":t + 3600})
}
