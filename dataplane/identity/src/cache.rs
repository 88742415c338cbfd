//! The cache of verified tokens: SHA-256 of the token -> its claims.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use crate::claims::Claims;

/// The SHA-256 of a token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenKey([u8; 32]);

impl TokenKey {
    pub(crate) fn of(token: &str) -> TokenKey {
        let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(d.as_ref());
        TokenKey(k)
    }
}

impl Hash for TokenKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is already a uniform hash: its first 8 bytes are a good table hash, and
        // hashing them again (SipHash) would double the cost of a hit. Only tokens that
        // verified get in, so nobody can choose keys to pile into one bucket.
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// Passes a `write_u64` through: see [`TokenKey`]'s `Hash`.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Entry {
    claims: Arc<Claims>,
    /// Last second (since the epoch) the entry may be served: the token's exp + leeway.
    until: u64,
}

struct Inner {
    /// The key-set generation the entries were verified under.
    generation: u64,
    map: HashMap<TokenKey, Entry, BuildHasherDefault<PassThrough>>,
}

/// A bounded map of verified tokens, emptied whenever the key set changes.
pub(crate) struct TokenCache {
    capacity: usize,
    inner: RwLock<Inner>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            capacity,
            inner: RwLock::new(Inner {
                generation: 0,
                map: HashMap::default(),
            }),
        }
    }

    /// The claims of `key` if cached under `generation` and not past their `until` at `now`.
    pub(crate) fn get(&self, key: &TokenKey, generation: u64, now: u64) -> Option<Arc<Claims>> {
        {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            if inner.generation == generation {
                let entry = inner.map.get(key)?;
                if now <= entry.until {
                    return Some(Arc::clone(&entry.claims));
                }
            }
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.generation != generation {
            sync(&mut inner, generation);
        } else {
            inner.map.remove(key);
        }
        None
    }

    /// Caches `claims` verified under `generation`, to be served until `until`.
    pub(crate) fn insert(
        &self,
        key: TokenKey,
        claims: Arc<Claims>,
        until: u64,
        generation: u64,
        now: u64,
    ) {
        if self.capacity == 0 || until < now {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if inner.generation > generation {
            // Verified with keys that have been replaced since.
            return;
        }
        sync(&mut inner, generation);
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            inner.map.retain(|_, e| now <= e.until);
            if inner.map.len() >= self.capacity {
                // A full cache of live entries: starting over costs one verification per
                // token in use, which is cheaper than tracking recency on every hit.
                inner.map.clear();
            }
        }
        inner.map.insert(key, Entry { claims, until });
    }

    /// Entries cached under `generation` (0 when the cache is from an older generation).
    pub(crate) fn len(&self, generation: u64) -> usize {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if inner.generation == generation {
            inner.map.len()
        } else {
            0
        }
    }
}

/// Moves the cache to `generation`, dropping the entries of any other.
fn sync(inner: &mut Inner, generation: u64) {
    if inner.generation != generation {
        inner.map.clear();
        inner.generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str) -> Arc<Claims> {
        Arc::new(Claims::from_subject(sub, &[]))
    }

    #[test]
    fn hit_until_expiry_then_miss() {
        let c = TokenCache::new(4);
        let k = TokenKey::of("t");
        c.insert(k, claims("a"), 100, 1, 50);
        assert_eq!(
            c.get(&k, 1, 100).as_deref().and_then(Claims::subject),
            Some("a")
        );
        assert!(c.get(&k, 1, 101).is_none());
        assert_eq!(c.len(1), 0);
        assert!(c.get(&TokenKey::of("other"), 1, 50).is_none());
    }

    #[test]
    fn generation_change_empties() {
        let c = TokenCache::new(4);
        let k = TokenKey::of("t");
        c.insert(k, claims("a"), 100, 1, 50);
        assert_eq!(c.len(1), 1);
        assert_eq!(c.len(2), 0);
        assert!(c.get(&k, 2, 50).is_none());
        // An entry verified under the old generation is not let back in.
        c.insert(k, claims("a"), 100, 1, 50);
        assert_eq!(c.len(2), 0);
        assert!(c.get(&k, 1, 50).is_none());
    }

    #[test]
    fn bounded_drops_expired_then_clears() {
        let c = TokenCache::new(3);
        c.insert(TokenKey::of("old"), claims("o"), 10, 1, 5);
        c.insert(TokenKey::of("a"), claims("a"), 100, 1, 5);
        c.insert(TokenKey::of("b"), claims("b"), 100, 1, 5);
        assert_eq!(c.len(1), 3);
        // Full at now=20: the expired entry goes, the live ones stay.
        c.insert(TokenKey::of("c"), claims("c"), 100, 1, 20);
        assert_eq!(c.len(1), 3);
        assert!(c.get(&TokenKey::of("a"), 1, 20).is_some());
        // Full of live entries: cleared, then the new one goes in.
        c.insert(TokenKey::of("d"), claims("d"), 100, 1, 20);
        assert_eq!(c.len(1), 1);
        assert!(c.get(&TokenKey::of("d"), 1, 20).is_some());
        // Zero capacity caches nothing.
        let none = TokenCache::new(0);
        none.insert(TokenKey::of("a"), claims("a"), 100, 1, 5);
        assert_eq!(none.len(1), 0);
    }
}
