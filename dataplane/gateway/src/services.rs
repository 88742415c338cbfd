//! What the stages share across config generations: things a reload must not reset (the
//! shared bucket store the daemon plugs in, the metrics every stage counts into).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use vigil_identity::{Jwks, JwksError, JwksLocation, JwksOptions};

use crate::limits::SharedBuckets;
use crate::metrics::Metrics;

/// Shared by every generation of the chain.
pub(crate) struct Services {
    /// The fleet's bucket store, once the daemon sets one (see `Gateway::set_shared_buckets`).
    pub buckets: ArcSwapOption<Arc<dyn SharedBuckets>>,
    pub metrics: Arc<Metrics>,
    /// Key sets fetched over HTTPS, kept across reloads so a reload does not refetch them
    /// (nor lose them while the identity provider is down).
    url_jwks: Mutex<Vec<Arc<Jwks>>>,
    /// Every key set of the generation built last, for status.
    current_jwks: Mutex<Vec<Arc<Jwks>>>,
    /// The virtual patches in force (`Gateway::set_patches`), kept across reloads.
    pub patches: ArcSwap<vigil_patch::PatchSet>,
    /// What a `ban` patch calls to block the source in XDP (set by the daemon).
    pub patch_ban: ArcSwapOption<crate::pipeline::patch::PatchBan>,
    /// JA4 fingerprints banned by an auto-ban rule, and until when (see
    /// `Gateway::ban_fingerprint`).
    pub banned_fingerprints: ArcSwap<HashMap<Box<str>, Instant>>,
}

/// Banned fingerprints kept at once; past it the one whose ban ends first is let go.
pub const MAX_BANNED_FINGERPRINTS: usize = 4096;

impl Services {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            buckets: ArcSwapOption::empty(),
            metrics,
            url_jwks: Mutex::new(Vec::new()),
            current_jwks: Mutex::new(Vec::new()),
            patches: ArcSwap::default(),
            patch_ban: ArcSwapOption::empty(),
            banned_fingerprints: ArcSwap::default(),
        }
    }

    /// Bans `ja4` until `until` (a later ban of the same fingerprint extends it); expired bans
    /// are dropped on the way.
    pub fn ban_fingerprint(&self, ja4: &str, until: Instant) {
        let now = Instant::now();
        self.banned_fingerprints.rcu(|old| {
            let mut map: HashMap<Box<str>, Instant> = old
                .iter()
                .filter(|(_, u)| **u > now)
                .map(|(k, u)| (k.clone(), *u))
                .collect();
            let entry = map.entry(Box::from(ja4)).or_insert(until);
            *entry = (*entry).max(until);
            while map.len() > MAX_BANNED_FINGERPRINTS {
                let Some(first) = map.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone())
                else {
                    break;
                };
                map.remove(&first);
            }
            map
        });
    }

    /// Whether `ja4` is banned now.
    pub fn fingerprint_banned(&self, ja4: &str) -> bool {
        let map = self.banned_fingerprints.load();
        !map.is_empty() && map.get(ja4).is_some_and(|u| *u > Instant::now())
    }

    /// The key set at `location`: a file is read now; a URL's set is reused when an earlier
    /// generation already has one with the same options.
    pub fn jwks(
        &self,
        location: JwksLocation,
        options: JwksOptions,
    ) -> Result<Arc<Jwks>, JwksError> {
        // Same URL, same set: options changed by a reload apply once the URL is dropped.
        let same = |j: &Arc<Jwks>| j.location() == &location;
        let is_url = matches!(location, JwksLocation::Url { .. });
        let mut kept = self.url_jwks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(j) = kept.iter().find(|j| same(j)).filter(|_| is_url) {
            return Ok(j.clone());
        }
        let j = Arc::new(Jwks::new(location, options)?);
        if is_url {
            kept.push(j.clone());
        }
        Ok(j)
    }

    /// Records the key sets of the generation now serving (and forgets URL sets it dropped).
    pub fn set_current_jwks(&self, current: Vec<Arc<Jwks>>) {
        self.url_jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|j| current.iter().any(|c| Arc::ptr_eq(c, j)));
        *self
            .current_jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = current;
    }

    /// Status of the key sets in use.
    pub fn jwks_status(&self) -> Vec<vigil_identity::JwksStatus> {
        self.current_jwks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|j| j.status())
            .collect()
    }

    /// The shared bucket store, if one is set.
    pub fn buckets(&self) -> Option<Arc<dyn SharedBuckets>> {
        self.buckets.load_full().map(|b| Arc::clone(&*b))
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("shared_buckets", &self.buckets.load().is_some())
            .finish_non_exhaustive()
    }
}
