//! Where a key set comes from and when it is fetched again.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::MAX_JWKS_BYTES;
use crate::error::{JwksError, JwtError};
use crate::fetch::HttpsSource;
use crate::jwk::KeySet;

/// Bounds applied to a server's Cache-Control max-age: below a minute an identity provider
/// would have the gateway fetch on most requests, beyond a day a rotation would go unseen.
const MAX_AGE_MIN: Duration = Duration::from_secs(60);
const MAX_AGE_MAX: Duration = Duration::from_secs(24 * 3600);

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksLocation {
    /// A JWKS file, read once when the [`Jwks`] is created.
    File(PathBuf),
    /// An https:// URL, fetched on demand and cached.
    Url {
        /// The URL; must be https://.
        url: String,
        /// PEM CA certificates to verify the server with; without one, the system bundle.
        ca_file: Option<PathBuf>,
    },
}

impl fmt::Display for JwksLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksLocation::File(path) => write!(f, "{}", path.display()),
            JwksLocation::Url { url, .. } => f.write_str(url),
        }
    }
}

/// The refresh policy of a URL key set.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// How long a fetched set is fresh (default 300 s). A Cache-Control max-age from the server,
    /// when present, is used instead, clamped to [60 s, 24 h]. Never less than `min_refresh`.
    pub cache_ttl: Duration,
    /// At most one fetch per this interval, whatever unknown kids arrive: refetches for unknown
    /// kids, retries after a failed fetch and refreshes of a stale set alike (default 10 s).
    pub min_refresh: Duration,
    /// Limit per fetch: connect, TLS handshake and the whole response (default 5 s).
    pub timeout: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            cache_ttl: Duration::from_secs(300),
            min_refresh: Duration::from_secs(10),
            timeout: Duration::from_secs(5),
        }
    }
}

/// A snapshot of a [`Jwks`] for `vigilctl status` and metrics.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct JwksStatus {
    /// The URL or the file's path.
    pub location: String,
    /// Usable keys in the current set (0 before the first successful fetch).
    pub keys: usize,
    /// Seconds since the last successful fetch (for a file: since it was read); None before
    /// the first.
    pub seconds_since_fetch: Option<u64>,
    /// The message of the last failed fetch, cleared by a successful one.
    pub last_error: Option<String>,
    /// Fetches attempted (a file counts its one read).
    pub fetches: u64,
    /// Fetches that failed.
    pub failed_fetches: u64,
    /// See [`Jwks::generation`].
    pub generation: u64,
}

/// A key set with the generation it belongs to.
pub(crate) type Tagged = (Arc<KeySet>, u64);

#[derive(Default)]
struct State {
    keys: Option<Arc<KeySet>>,
    /// Bumped with every change of `keys`; mirrored in [`Jwks::generation`] for lock-free reads.
    generation: u64,
    /// When the current set stops being fresh (URL only).
    fresh_until: Option<Instant>,
    last_attempt: Option<Instant>,
    last_attempt_failed: bool,
    last_success: Option<Instant>,
    last_error: Option<String>,
    fetches: u64,
    failed_fetches: u64,
}

/// A key set with its refresh policy. Cheap to share (`Arc<Jwks>`).
pub struct Jwks {
    location: JwksLocation,
    options: JwksOptions,
    /// Some for a URL.
    source: Option<HttpsSource>,
    state: RwLock<State>,
    generation: AtomicU64,
    /// Held for the length of a fetch: concurrent callers share one fetch (single flight).
    fetch_lock: tokio::sync::Mutex<()>,
}

impl Jwks {
    /// File: read and parsed now (an error here refuses the config). URL: must be https:// (an
    /// error otherwise), nothing fetched yet; CA roots from `ca_file` (PEM) or, without one,
    /// the system bundle /etc/ssl/certs/ca-certificates.crt.
    pub fn new(location: JwksLocation, options: JwksOptions) -> Result<Jwks, JwksError> {
        let mut state = State::default();
        let mut generation = 0;
        let source = match &location {
            JwksLocation::File(path) => {
                let keys = read_file(path)?;
                let now = Instant::now();
                state.keys = Some(Arc::new(keys));
                state.last_attempt = Some(now);
                state.last_success = Some(now);
                state.fetches = 1;
                state.generation = 1;
                generation = 1;
                None
            }
            JwksLocation::Url { url, ca_file } => Some(HttpsSource::new(url, ca_file.as_deref())?),
        };
        Ok(Jwks {
            location,
            options,
            source,
            state: RwLock::new(state),
            generation: AtomicU64::new(generation),
            fetch_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The current key set. URL: fetches when none was ever fetched or the cached one is
    /// stale; if that fetch fails and a previous set exists, returns the previous set (stale-
    /// while-error) and logs the failure; only with no set at all -> Err(KeysUnavailable).
    /// Concurrent callers share one fetch (single flight): while a stale set is being
    /// refreshed, other callers get the stale set at once rather than wait. After a failed
    /// fetch, the next one waits `min_refresh`.
    pub async fn current(&self) -> Result<Arc<KeySet>, JwtError> {
        self.current_tagged().await.map(|(keys, _)| keys)
    }

    /// [`Jwks::current`] with the generation of the returned set.
    pub(crate) async fn current_tagged(&self) -> Result<Tagged, JwtError> {
        let Some(source) = &self.source else {
            return self.keys_or_unavailable();
        };
        let stale = {
            let st = self.read();
            if let Some(keys) = fresh(&st) {
                return Ok(keys);
            }
            st.keys.clone().map(|k| (k, st.generation))
        };
        let _guard = match &stale {
            Some(stale) => match self.fetch_lock.try_lock() {
                Ok(guard) => guard,
                // Someone is fetching already; the stale set is as good as it gets right now.
                Err(_) => return Ok(stale.clone()),
            },
            None => self.fetch_lock.lock().await,
        };
        {
            let st = self.read();
            if let Some(keys) = fresh(&st) {
                return Ok(keys);
            }
            if self.failed_recently(&st) {
                return self.stale_or_unavailable(&st);
            }
        }
        self.fetch_locked(source).await
    }

    /// Called when a token names a kid the current set lacks: refetch (URL) only if the last
    /// fetch is older than `min_refresh`; otherwise returns the current set without any
    /// network I/O. A failed refetch leaves the previous set in use.
    pub async fn refresh_for_unknown_kid(&self) -> Result<Arc<KeySet>, JwtError> {
        self.refresh_tagged().await.map(|(keys, _)| keys)
    }

    /// [`Jwks::refresh_for_unknown_kid`] with the generation of the returned set.
    pub(crate) async fn refresh_tagged(&self) -> Result<Tagged, JwtError> {
        let Some(source) = &self.source else {
            return self.keys_or_unavailable();
        };
        let _guard = self.fetch_lock.lock().await;
        {
            let st = self.read();
            if st
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.options.min_refresh)
            {
                return self.stale_or_unavailable(&st);
            }
        }
        self.fetch_locked(source).await
    }

    /// Monotonic generation, bumped whenever the key set content changes (0: no set yet).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// For `vigilctl status` / metrics.
    pub fn status(&self) -> JwksStatus {
        let st = self.read();
        JwksStatus {
            location: self.location.to_string(),
            keys: st.keys.as_ref().map_or(0, |k| k.len()),
            seconds_since_fetch: st.last_success.map(|t| t.elapsed().as_secs()),
            last_error: st.last_error.clone(),
            fetches: st.fetches,
            failed_fetches: st.failed_fetches,
            generation: self.generation(),
        }
    }

    /// The location this set comes from.
    pub fn location(&self) -> &JwksLocation {
        &self.location
    }

    /// Fetches and installs a new set; the caller holds `fetch_lock`. On failure the previous
    /// set, if any, is returned.
    async fn fetch_locked(&self, source: &HttpsSource) -> Result<Tagged, JwtError> {
        let started = Instant::now();
        let result = match source.fetch(self.options.timeout).await {
            Ok(f) => KeySet::from_jwks(&f.body).map(|keys| (keys, f.max_age)),
            Err(e) => Err(e),
        };
        let mut st = self.write();
        st.fetches += 1;
        st.last_attempt = Some(started);
        match result {
            Ok((keys, max_age)) => {
                let ttl = max_age
                    .map_or(self.options.cache_ttl, |a| {
                        a.clamp(MAX_AGE_MIN, MAX_AGE_MAX)
                    })
                    // min_refresh bounds every kind of fetch: a cache_ttl of 0 must not mean a
                    // fetch per request.
                    .max(self.options.min_refresh);
                let now = Instant::now();
                st.fresh_until = now.checked_add(ttl);
                st.last_success = Some(now);
                st.last_attempt_failed = false;
                st.last_error = None;
                let keys = match &st.keys {
                    Some(old) if **old == keys => Arc::clone(old),
                    _ => {
                        let keys = Arc::new(keys);
                        st.keys = Some(Arc::clone(&keys));
                        st.generation += 1;
                        let generation = st.generation;
                        // Stored under the state lock, so whoever sees the new generation and
                        // then reads the state sees the new keys.
                        self.generation.store(generation, Ordering::Release);
                        tracing::info!(
                            location = %self.location,
                            keys = keys.len(),
                            kids = ?keys.kids(),
                            skipped = keys.skipped(),
                            generation,
                            "JWKS key set updated"
                        );
                        keys
                    }
                };
                Ok((keys, st.generation))
            }
            Err(e) => {
                st.failed_fetches += 1;
                st.last_attempt_failed = true;
                st.last_error = Some(e.to_string());
                tracing::warn!(
                    location = %self.location,
                    error = %e,
                    serving_previous = st.keys.is_some(),
                    "JWKS fetch failed"
                );
                self.stale_or_unavailable(&st)
            }
        }
    }

    fn failed_recently(&self, st: &State) -> bool {
        st.last_attempt_failed
            && st
                .last_attempt
                .is_some_and(|t| t.elapsed() < self.options.min_refresh)
    }

    fn stale_or_unavailable(&self, st: &State) -> Result<Tagged, JwtError> {
        st.keys
            .clone()
            .map(|k| (k, st.generation))
            .ok_or_else(|| JwtError::KeysUnavailable {
                reason: st
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "no key set fetched yet".to_owned()),
            })
    }

    fn keys_or_unavailable(&self) -> Result<Tagged, JwtError> {
        self.stale_or_unavailable(&self.read())
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // The state is consistent after every write (plain assignments), so a panic elsewhere
        // while holding the lock leaves nothing half-done: recover from poisoning.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn fresh(st: &State) -> Option<Tagged> {
    let keys = st.keys.as_ref()?;
    st.fresh_until
        .is_some_and(|t| Instant::now() < t)
        .then(|| (Arc::clone(keys), st.generation))
}

// A key set is held to one limit whether it comes from a file or over HTTPS.
const _: () = assert!(vigil_files::JWKS_LIMIT == MAX_JWKS_BYTES as u64);

fn read_file(path: &std::path::Path) -> Result<KeySet, JwksError> {
    let bytes = vigil_files::read(path, vigil_files::FileKind::Jwks)?;
    KeySet::from_jwks(&bytes).map_err(|e| JwksError::File {
        path: path.to_owned(),
        source: Box::new(e),
    })
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("location", &self.location)
            .field("options", &self.options)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}
