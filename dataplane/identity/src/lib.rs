//! Identity for the gateway: JWT verification and the keys it needs.
//!
//! [`verify`] checks a compact JWS JWT (RS256, RS384, PS256, ES256, ES384, EdDSA; never "none"
//! or HMAC) against a [`KeySet`] parsed from a JWKS and a [`Validation`] (issuers, audiences,
//! algorithms, leeway), and returns its [`Claims`]. A [`Jwks`] holds a key set from a file or
//! an https:// URL, refetched when stale or when a token names an unknown kid (rate limited,
//! single flight, stale-while-error). A [`Verifier`] puts the two together with a cache of
//! verified tokens. Refusals are [`JwtError`]s with a stable [`JwtError::reason`] code and
//! messages that never carry the token, its claims or key material.

mod alg;
mod cache;
mod claims;
mod error;
mod fetch;
mod jwk;
mod jwks;
mod verifier;
mod verify;

pub use alg::{Algorithm, UnknownAlgorithm};
pub use claims::Claims;
pub use error::{JwksError, JwtError};
pub use jwk::KeySet;
pub use jwks::{Jwks, JwksLocation, JwksOptions, JwksStatus};
pub use verifier::Verifier;
pub use verify::{MAX_TOKEN_BYTES, Validation, verify};

/// Largest JWKS document accepted, in bytes (read from a file or fetched).
pub(crate) const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys (entries of `keys`, usable or not) a JWKS document may hold.
pub(crate) const MAX_KEYS: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn public_types_are_send_and_sync() {
        send_sync::<Algorithm>();
        send_sync::<Validation>();
        send_sync::<Claims>();
        send_sync::<JwtError>();
        send_sync::<JwksError>();
        send_sync::<KeySet>();
        send_sync::<Jwks>();
        send_sync::<JwksLocation>();
        send_sync::<JwksOptions>();
        send_sync::<JwksStatus>();
        send_sync::<Verifier>();
    }
}
