//! Rate-limit buckets shared by the fleet, kept in Redis (`shared = true` rules).
//!
//! Each decision is one atomic Lua script run ([`SCRIPT`]), sent with EVALSHA over one
//! pipelined connection (the `redis` crate's multiplexed connection, through [`super::link`]:
//! ACL user, TLS) that every request shares. The gateway falls back to
//! a local bucket whenever [`RedisBuckets::take`] fails, so this store fails fast: each take has
//! a deadline (`[fleet] rate_limit_timeout`), and the first failure (refused connection, I/O
//! error, a reply later than the deadline) marks the store down. While down, `take` answers
//! `StoreUnavailable` at once without touching the network, and a background task probes Redis
//! every few hundred milliseconds; when Redis answers again (PING, the script loads and runs),
//! the store is up again. Transitions are logged once each, never per request.

use std::{
    fmt,
    sync::{
        Arc, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use tracing::{info, warn};
use vigil_control::reply::{SharedRateLimits, StoreBackend};
use vigil_gateway::limits::{SharedBuckets, SharedTake, StoreUnavailable, TakeFuture};

use redis::{Value, aio::MultiplexedConnection};

use super::link::Link;

/// Why one call to the store failed.
#[derive(Debug)]
enum StoreError {
    /// [`QUEUE`] commands are already waiting: this one decides locally.
    Full,
    Timeout(u128),
    Redis(redis::RedisError),
    Protocol(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full => f.write_str("too many commands waiting for Redis"),
            StoreError::Timeout(ms) => write!(f, "Redis did not answer within {ms} ms"),
            StoreError::Redis(e) => write!(f, "{e}"),
            StoreError::Protocol(m) => f.write_str(m),
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError::Redis(e)
    }
}

/// The shared pipelined connection, with a bound on the commands in flight.
struct Mux {
    conn: MultiplexedConnection,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Mux {
    async fn connect(link: &Link) -> Result<Mux, StoreError> {
        Ok(Mux {
            conn: link.multiplexed().await?,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    async fn call(&self, cmd: &redis::Cmd) -> Result<Value, StoreError> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= QUEUE {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Full);
        }
        struct Done<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _done = Done(&self.in_flight);
        let mut c = self.conn.clone();
        Ok(cmd.query_async::<Value>(&mut c).await?)
    }
}

/// The token bucket, run atomically by Redis for each decision.
///
/// `KEYS[1]` is the bucket, a hash `{tokens, ts}`: the tokens left (a decimal with three
/// places) and when they were counted (Redis time, milliseconds since the epoch). `ARGV` holds
/// the rule's `rate` (tokens per second) and `burst` (the bucket's size). The reply is
/// `{allowed (1 or 0), whole tokens left, milliseconds until the next token (0 when allowed)}`.
///
/// - Time is Redis's `TIME`, so every box reads one clock; Redis 7 replicates a script's
///   effects, not the script, so a non-deterministic command is fine here.
/// - The arithmetic is in thousandths of a token and whole milliseconds, so refills are exact
///   integers (no drift from floating-point sums): `rate` tokens per second is `rate`
///   thousandths per millisecond.
/// - A missing bucket starts full. A clock step back refills nothing and keeps the later `ts`.
/// - A refused request writes nothing: the stored state already describes the bucket.
/// - Expiry without churn: `full_ms` is the time an empty bucket takes to fill. The key gets
///   `PEXPIRE 2 * full_ms` when it is created, and again only when its TTL has fallen below
///   `full_ms`, so a busy key sees at most one PEXPIRE per `full_ms`. Every write thus leaves at
///   least `full_ms` to live: when a key expires, it has been idle long enough to be full, and
///   losing it changes no decision.
pub const SCRIPT: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = burst * 1000
local full_ms = math.ceil(cap / rate)
local st = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(st[1]), tonumber(st[2])
local new = not (tokens and ts)
local mt = cap
if not new then
  mt = math.floor(tokens * 1000 + 0.5)
  if now > ts then
    mt = mt + (now - ts) * rate
  else
    now = ts
  end
  if mt > cap then
    mt = cap
  end
end
if mt < 1000 then
  return {0, 0, math.ceil((1000 - mt) / rate)}
end
mt = mt - 1000
redis.call('HSET', KEYS[1], 'tokens', string.format('%.3f', mt / 1000), 'ts', now)
if new or redis.call('PTTL', KEYS[1]) < full_ms then
  redis.call('PEXPIRE', KEYS[1], 2 * full_ms)
end
return {1, math.floor(mt / 1000), 0}
";

/// Commands queued or waiting for Redis at once; past this, requests decide locally rather
/// than queue behind a slow server.
const QUEUE: usize = 4096;
/// How often a down store tries Redis again.
const PROBE_EVERY: Duration = Duration::from_millis(300);
/// A probe's connect and commands together.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often an up store pings Redis (through the shared connection), so a server that hangs
/// shows in status within about a second even when no request is there to notice.
const HEALTH_EVERY: Duration = Duration::from_millis(500);

/// Settings fixed at start.
#[derive(Debug)]
struct Settings {
    link: Link,
    /// `<prefix>:rl:`, put before every bucket key.
    key_prefix: String,
    timeout: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    decisions: AtomicU64,
    errors: AtomicU64,
    fallbacks: AtomicU64,
    queue_full: AtomicU64,
}

struct Inner {
    settings: Arc<Settings>,
    /// The connection while the store is up; `None` while down.
    conn: ArcSwapOption<Mux>,
    /// The script's SHA-1, as SCRIPT LOAD returned it (the same for every server).
    sha: OnceLock<String>,
    /// Unix seconds of the last transition (or of the start).
    since_unix: AtomicU64,
    /// Whether a down transition has been logged since the last up (one warning per outage).
    down_logged: AtomicBool,
    /// Whether a SCRIPT LOAD after NOSCRIPT is already on its way.
    reloading: Arc<AtomicBool>,
    counters: Counters,
    last_error: Mutex<Option<String>>,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("redis", &self.settings.link.shown())
            .field("up", &self.conn.load().is_some())
            .finish_non_exhaustive()
    }
}

/// The Redis bucket store; cheap to clone (all clones share one connection and state).
#[derive(Clone, Debug)]
pub struct RedisBuckets {
    inner: Arc<Inner>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether an error says Redis itself is unusable (as opposed to this one key).
fn is_fatal(e: &StoreError) -> bool {
    match e {
        StoreError::Full => false,
        // Another program's value at a bucket's key: that key decides locally, the rest goes on.
        StoreError::Redis(e) => {
            !(e.code() == Some("WRONGTYPE") || e.to_string().contains("WRONGTYPE"))
        }
        _ => true,
    }
}

fn is_noscript(e: &StoreError) -> bool {
    matches!(e, StoreError::Redis(e) if e.code() == Some("NOSCRIPT"))
}

fn parse_take(v: Value) -> Result<SharedTake, StoreError> {
    let Value::Array(items) = &v else {
        return Err(StoreError::Protocol(format!(
            "rate-limit script returned {v:?}"
        )));
    };
    match items.as_slice() {
        [
            Value::Int(allowed),
            Value::Int(remaining),
            Value::Int(retry),
        ] => Ok(SharedTake {
            allowed: *allowed == 1,
            remaining: u64::try_from(*remaining).unwrap_or(0),
            retry_after_ms: u64::try_from(*retry).unwrap_or(0),
        }),
        _ => Err(StoreError::Protocol(format!(
            "rate-limit script returned {v:?}"
        ))),
    }
}

impl RedisBuckets {
    /// Starts down and connects in the background at once; `take` decides locally until then.
    /// `prefix` is the fleet's key prefix; `timeout` bounds each decision.
    pub fn start(link: Link, prefix: &str, timeout: Duration) -> RedisBuckets {
        let inner = Arc::new(Inner {
            settings: Arc::new(Settings {
                link,
                key_prefix: format!("{prefix}:rl:"),
                timeout,
            }),
            conn: ArcSwapOption::empty(),
            sha: OnceLock::new(),
            since_unix: AtomicU64::new(unix_now()),
            // Not yet: a first connect that fails warns once, through `note_probe_error`.
            down_logged: AtomicBool::new(false),
            reloading: Arc::new(AtomicBool::new(false)),
            counters: Counters::default(),
            last_error: Mutex::new(None),
        });
        tokio::spawn(watch(Arc::downgrade(&inner)));
        RedisBuckets { inner }
    }

    /// Whether decisions go to Redis right now.
    pub fn is_up(&self) -> bool {
        self.inner.conn.load().is_some()
    }

    /// The `rate_limits` block of the fleet status.
    pub fn status(&self) -> SharedRateLimits {
        let c = &self.inner.counters;
        SharedRateLimits {
            backend: if self.is_up() {
                StoreBackend::Redis
            } else {
                StoreBackend::LocalFallback
            },
            since_unix: self.inner.since_unix.load(Ordering::Relaxed),
            decisions: c.decisions.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            queue_full: c.queue_full.load(Ordering::Relaxed),
            timeout_ms: u64::try_from(self.inner.settings.timeout.as_millis()).unwrap_or(u64::MAX),
            last_error: self
                .inner
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Writes this store's metric families.
    pub fn write_metrics(&self, e: &mut vigil_gateway::Exposition<'_, '_>) -> fmt::Result {
        let c = &self.inner.counters;
        e.gauge(
            "vigil_fleet_rate_limit_store_up",
            "Whether shared rate limits are decided in Redis (1) or locally (0).",
            i64::from(self.is_up()),
        )?;
        let rows: [(&str, &str, u64); 3] = [
            (
                "vigil_fleet_rate_limit_store_decisions_total",
                "Shared rate-limit decisions Redis answered.",
                c.decisions.load(Ordering::Relaxed),
            ),
            (
                "vigil_fleet_rate_limit_store_errors_total",
                "Shared rate-limit calls to Redis that failed (error, closed, or late).",
                c.errors.load(Ordering::Relaxed),
            ),
            (
                "vigil_fleet_rate_limit_store_fallbacks_total",
                "Shared rate-limit decisions the store left to the local fallback.",
                c.fallbacks.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in rows {
            e.counter(name, help, v)?;
        }
        Ok(())
    }

    async fn take_inner(&self, key: &str, rate: u32, burst: u32) -> Result<SharedTake, ()> {
        let inner = &self.inner;
        let Some(conn) = inner.conn.load_full() else {
            return Err(());
        };
        let bucket = format!("{}{key}", inner.settings.key_prefix);
        let (rate, burst) = (rate.max(1).to_string(), burst.max(1).to_string());
        let decided = tokio::time::timeout(
            inner.settings.timeout,
            inner.run(&conn, &bucket, &rate, &burst),
        )
        .await;
        let err = match decided {
            Ok(Ok(take)) => {
                inner.counters.decisions.fetch_add(1, Ordering::Relaxed);
                return Ok(take);
            }
            Ok(Err(StoreError::Full)) => {
                inner.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                return Err(());
            }
            Ok(Err(e)) => e,
            Err(_) => StoreError::Timeout(inner.settings.timeout.as_millis()),
        };
        inner.counters.errors.fetch_add(1, Ordering::Relaxed);
        if is_fatal(&err) {
            inner.mark_down(&conn, &err.to_string());
        } else {
            inner.set_last_error(err.to_string());
        }
        Err(())
    }
}

impl SharedBuckets for RedisBuckets {
    fn take<'a>(&'a self, key: &'a str, rate: u32, burst: u32) -> TakeFuture<'a> {
        Box::pin(async move {
            self.take_inner(key, rate, burst).await.map_err(|()| {
                self.inner
                    .counters
                    .fallbacks
                    .fetch_add(1, Ordering::Relaxed);
                StoreUnavailable
            })
        })
    }
}

impl Inner {
    /// One decision: EVALSHA, or EVAL when Redis has lost the script (SCRIPT FLUSH, a restart
    /// between two probes, a failover to a server that never loaded it); the script is then
    /// loaded again in the background so the next decisions are EVALSHA again.
    async fn run(
        &self,
        conn: &Arc<Mux>,
        bucket: &str,
        rate: &str,
        burst: &str,
    ) -> Result<SharedTake, StoreError> {
        let call = |cmd: &str, body: &str| {
            let mut c = redis::cmd(cmd);
            c.arg(body).arg(1).arg(bucket).arg(rate).arg(burst);
            async move { conn.call(&c).await }
        };
        let reply = match self.sha.get() {
            Some(sha) => match call("EVALSHA", sha).await {
                Err(e) if is_noscript(&e) => {
                    self.reload_script(conn);
                    call("EVAL", SCRIPT).await
                }
                other => other,
            },
            None => call("EVAL", SCRIPT).await,
        };
        parse_take(reply?)
    }

    /// Loads the script again, once however many requests saw NOSCRIPT at the same time.
    fn reload_script(&self, conn: &Arc<Mux>) {
        if self.reloading.swap(true, Ordering::AcqRel) {
            return;
        }
        let (conn, reloading) = (conn.clone(), self.reloading.clone());
        tokio::spawn(async move {
            let loaded = tokio::time::timeout(
                PROBE_TIMEOUT,
                conn.call(redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT)),
            )
            .await;
            if !matches!(loaded, Ok(Ok(_))) {
                warn!("shared rate limits: loading the script again failed; using EVAL");
            }
            reloading.store(false, Ordering::Release);
        });
    }

    fn set_last_error(&self, msg: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
    }

    /// Marks the store down if `conn` is still the current connection (a late failure of an
    /// older connection must not take down a newer one), closes it, and logs once.
    fn mark_down(&self, conn: &Arc<Mux>, why: &str) {
        let prev = self.conn.compare_and_swap(conn, None);
        let was_current = prev.as_ref().is_some_and(|p| Arc::ptr_eq(p, conn));
        if !was_current {
            return;
        }
        self.since_unix.store(unix_now(), Ordering::Relaxed);
        self.set_last_error(why.to_owned());
        if !self.down_logged.swap(true, Ordering::AcqRel) {
            warn!(
                redis = %self.settings.link.shown(),
                error = why,
                "shared rate limits: Redis unavailable; deciding with the local fallback limits"
            );
        }
    }

    fn mark_up(&self, conn: Arc<Mux>, sha: String) {
        let _ = self.sha.set(sha);
        self.conn.store(Some(conn));
        self.since_unix.store(unix_now(), Ordering::Relaxed);
        let recovered = self.down_logged.swap(false, Ordering::AcqRel);
        info!(
            redis = %self.settings.link.shown(),
            "shared rate limits: {}",
            if recovered {
                "Redis is back; deciding in Redis again"
            } else {
                "deciding in Redis"
            }
        );
    }

    /// A probe failed while the store was already down: remember why, warn on the first only.
    fn note_probe_error(&self, why: &str) {
        self.set_last_error(why.to_owned());
        if !self.down_logged.swap(true, Ordering::AcqRel) {
            warn!(
                redis = %self.settings.link.shown(),
                error = why,
                "shared rate limits: Redis unavailable; deciding with the local fallback limits"
            );
        }
    }
}

/// Connects and checks that Redis can decide: PING, SCRIPT LOAD, and one run of the script on
/// a probe key (a replica or a full server fails here rather than on every request).
async fn probe(s: &Settings) -> Result<(Arc<Mux>, String), StoreError> {
    let conn = Arc::new(Mux::connect(&s.link).await?);
    match conn.call(&redis::cmd("PING")).await? {
        Value::SimpleString(p) if p == "PONG" => {}
        other => return Err(StoreError::Protocol(format!("PING answered {other:?}"))),
    }
    let sha = match conn
        .call(redis::cmd("SCRIPT").arg("LOAD").arg(SCRIPT))
        .await?
    {
        Value::BulkString(sha) => String::from_utf8(sha)
            .map_err(|_| StoreError::Protocol("SCRIPT LOAD returned a non-UTF-8 SHA".into()))?,
        other => {
            return Err(StoreError::Protocol(format!(
                "SCRIPT LOAD answered {other:?}"
            )));
        }
    };
    // No rule's key can equal this one: theirs are `<rule>:<parts>` and always hold a ':'. A
    // bucket of one token refilled in a millisecond is full at every probe, so the script
    // writes (a read-only replica or a full server refuses here) and the key expires at once.
    let key = format!("{}-probe", s.key_prefix);
    let reply = conn
        .call(
            redis::cmd("EVALSHA")
                .arg(&sha)
                .arg(1)
                .arg(&key)
                .arg(1000)
                .arg(1),
        )
        .await?;
    parse_take(reply)?;
    Ok((conn, sha))
}

/// The background task: probes while down, watches the connection while up. It holds only a
/// weak reference between steps, so it ends when the store is dropped.
async fn watch(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let settings = strong.settings.clone();
        let conn = strong.conn.load_full();
        drop(strong);
        match conn {
            Some(conn) => {
                tokio::time::sleep(HEALTH_EVERY).await;
                let pinged =
                    tokio::time::timeout(settings.timeout, conn.call(&redis::cmd("PING"))).await;
                let why = match pinged {
                    Ok(Ok(_)) | Ok(Err(StoreError::Full)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(StoreError::Timeout(settings.timeout.as_millis()).to_string()),
                };
                if let (Some(why), Some(inner)) = (why, inner.upgrade()) {
                    inner.mark_down(&conn, &why);
                }
            }
            None => {
                let probed = tokio::time::timeout(PROBE_TIMEOUT, probe(&settings)).await;
                let Some(inner) = inner.upgrade() else { return };
                match probed {
                    Ok(Ok((conn, sha))) => inner.mark_up(conn, sha),
                    Ok(Err(e)) => inner.note_probe_error(&e.to_string()),
                    Err(_) => inner.note_probe_error(
                        &StoreError::Timeout(PROBE_TIMEOUT.as_millis()).to_string(),
                    ),
                }
                let up = inner.conn.load().is_some();
                drop(inner);
                if !up {
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
