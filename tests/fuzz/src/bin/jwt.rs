//! A bearer token through `vigil_identity::verify`: compact JWS parsing, header and algorithm
//! checks, key selection, signature verification (RS256, PS256, ES256, ES384, EdDSA keys in
//! `fixtures/jwks.json`) and the registered claims, at a fixed time. Seeds include tokens that
//! really verify (`cargo run --example jwt_seeds` made them).

use vigil_identity::{KeySet, Validation, verify};

fn main() {
    let keys = KeySet::from_jwks(include_bytes!("../../fixtures/jwks.json"))
        .unwrap_or_else(|e| panic!("fixture key set: {e}"));
    let validation = Validation {
        issuers: vec!["https://idp.example".into()],
        audiences: vec!["api".into()],
        ..Validation::default()
    };
    afl::fuzz!(|data: &[u8]| {
        let Some(token) = vigil_fuzz::text(data) else {
            return;
        };
        if let Ok(claims) = verify(token, &keys, &validation, vigil_fuzz::JWT_NOW) {
            // What the identity stage reads from verified claims.
            let _ = (
                claims.subject(),
                claims.expires_at(),
                claims.has_scope("orders:write"),
            );
            let _ = claims.values("roles");
        }
    });
}
