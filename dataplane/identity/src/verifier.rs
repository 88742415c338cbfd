//! [`Verifier`]: a key set, a validation and a cache of verified tokens for one issuer.

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cache::{TokenCache, TokenKey};
use crate::claims::Claims;
use crate::error::JwtError;
use crate::jwks::Jwks;
use crate::verify::{Validation, verify};

/// A verifier for one issuer configuration: key set + validation + a cache of verified tokens.
pub struct Verifier {
    jwks: Arc<Jwks>,
    validation: Validation,
    cache: TokenCache,
}

impl Verifier {
    /// A verifier caching up to `cache_capacity` verified tokens (0: no cache).
    pub fn new(jwks: Arc<Jwks>, validation: Validation, cache_capacity: usize) -> Verifier {
        Verifier {
            jwks,
            validation,
            cache: TokenCache::new(cache_capacity),
        }
    }

    /// Verifies `token` (the part after "Bearer ").
    ///
    /// Order: cache lookup (SHA-256 of the token as key; a hit costs one hash and one map
    /// lookup; an entry is never served after the token's exp + leeway, and entries are dropped
    /// when the key set's generation changes) -> current key set -> verify -> on
    /// [`JwtError::UnknownKey`], [`Jwks::refresh_for_unknown_kid`] and verify once more ->
    /// insert. Only successes are cached. Time is the system clock.
    ///
    /// A hit does not consult the key set: a key removed from the JWKS stops the tokens it
    /// signed once the set is refetched (on the next miss after the set went stale).
    pub async fn verify(&self, token: &str) -> Result<Arc<Claims>, JwtError> {
        let now = unix_now();
        let key = TokenKey::of(token);
        if let Some(claims) = self.cache.get(&key, self.jwks.generation(), now) {
            return Ok(claims);
        }
        // Tagged with the generation of the keys that verified it, so that an entry never
        // outlives the key set it was verified with.
        // The miss path holds the key-set fetch (an HTTPS client) in its state: boxed, the
        // future of a hit stays a few words and costs nothing to move.
        let (claims, generation) = Box::pin(self.verify_at(token, now)).await?;
        let claims = Arc::new(claims);
        let until = claims.expires_at().map_or(u64::MAX, |exp| {
            exp.saturating_add(self.validation.leeway.as_secs())
        });
        self.cache
            .insert(key, Arc::clone(&claims), until, generation, now);
        Ok(claims)
    }

    /// [`Verifier::verify`] without the cache (neither read nor filled): the cost of a miss.
    pub async fn verify_uncached(&self, token: &str) -> Result<Arc<Claims>, JwtError> {
        self.verify_at(token, unix_now())
            .await
            .map(|(claims, _)| Arc::new(claims))
    }

    /// Number of cached tokens (of the current key-set generation).
    pub fn cache_len(&self) -> usize {
        self.cache.len(self.jwks.generation())
    }

    /// The validation this verifier applies.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// The key set this verifier uses.
    pub fn jwks(&self) -> &Arc<Jwks> {
        &self.jwks
    }

    async fn verify_at(&self, token: &str, now: u64) -> Result<(Claims, u64), JwtError> {
        let (keys, generation) = self.jwks.current_tagged().await?;
        match verify(token, &keys, &self.validation, now) {
            Err(JwtError::UnknownKey) => {
                let (keys, generation) = self.jwks.refresh_tagged().await?;
                verify(token, &keys, &self.validation, now).map(|c| (c, generation))
            }
            other => other.map(|c| (c, generation)),
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("jwks", &self.jwks)
            .field("validation", &self.validation)
            .field("cache_len", &self.cache_len())
            .finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
