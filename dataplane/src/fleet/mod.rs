//! The fleet blocklist: blocks added on one box reach every box through Redis.
//!
//! Each block is a field of the hash `<prefix>:blocklist` (so a box that was offline catches up
//! with one HGETALL when it starts) and an event on the channel `<prefix>:events` (so the others
//! apply it within a round trip). Publishing never blocks a control request: events go through a
//! bounded queue to a task that retries while Redis is away.
//!
//! The same Redis keeps the buckets of the `shared = true` rate limits ([`buckets`]).

pub mod buckets;
pub mod mux;
pub mod resp;
#[cfg(test)]
mod test_redis;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};
use vigil_control::reply::FleetStatus;

use resp::{Conn, RespError, Value};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `host:port` of the Redis server the fleet shares.
    pub redis: String,
    /// Key prefix, so several fleets can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This box's name in events; default `<hostname>-<pid>`.
    #[serde(default)]
    pub box_id: Option<String>,
    /// How long a shared rate-limit decision may wait for Redis before the request is decided
    /// with the local fallback limit and the store is marked down, e.g. "250ms".
    #[serde(
        default = "default_rate_limit_timeout",
        deserialize_with = "vigil_control::duration::de"
    )]
    pub rate_limit_timeout: Duration,
}

fn default_prefix() -> String {
    "vigil".to_owned()
}

fn default_rate_limit_timeout() -> Duration {
    Duration::from_millis(250)
}

/// Longest `rate_limit_timeout`: the gateway stops waiting for the store after 1 s anyway.
pub const MAX_RATE_LIMIT_TIMEOUT: Duration = Duration::from_millis(999);

impl FleetConfig {
    /// Checks every fleet setting; the error names the offending key (`fleet.<key>`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.redis.parse::<std::net::SocketAddr>().is_err() && !self.redis.contains(':') {
            return Err((
                "fleet.redis".into(),
                "must be host:port, e.g. 127.0.0.1:6379".into(),
            ));
        }
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err((
                "fleet.prefix".into(),
                "must be non-empty without spaces".into(),
            ));
        }
        self.validate_rate_limit_timeout()
            .map_err(|e| ("fleet.rate_limit_timeout".to_owned(), e))
    }

    /// Refuses a `rate_limit_timeout` out of range.
    pub fn validate_rate_limit_timeout(&self) -> Result<(), String> {
        let d = self.rate_limit_timeout;
        if d.is_zero() || d > MAX_RATE_LIMIT_TIMEOUT {
            return Err(format!(
                "\"{}\": must be more than 0 and less than 1s (the gateway gives up on the store \
                 after 1 s)",
                vigil_control::duration::format(d)
            ));
        }
        Ok(())
    }
}

/// One fleet-wide block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: String,
    pub reason: String,
    /// Seconds since the epoch; `None` = permanent.
    pub expires_unix: Option<u64>,
    pub auto: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Event {
    Add { from: String, block: Block },
    Del { from: String, cidr: String },
}

/// Applies a remote event to this box's maps.
pub type Apply = Arc<dyn Fn(&Event) + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    connected: AtomicBool,
    applied: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Clone)]
pub struct Fleet {
    cfg: FleetConfig,
    box_id: String,
    tx: mpsc::Sender<Event>,
    state: Arc<State>,
    /// The shared rate-limit buckets, when the gateway runs.
    buckets: Option<buckets::RedisBuckets>,
}

const QUEUE: usize = 4096;
const RETRY: Duration = Duration::from_secs(1);

impl Fleet {
    /// Starts the publisher and the subscriber; both reconnect by themselves.
    pub fn start(cfg: FleetConfig, apply: Apply) -> Fleet {
        let box_id = cfg.box_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State::default());
        tokio::spawn(publisher(cfg.clone(), rx, state.clone()));
        tokio::spawn(subscriber(
            cfg.clone(),
            box_id.clone(),
            apply,
            state.clone(),
        ));
        Fleet {
            cfg,
            box_id,
            tx,
            state,
            buckets: None,
        }
    }

    /// Starts the shared rate-limit store on the fleet's Redis (its own connection, so a
    /// blocklist catch-up never delays a decision) and keeps it for `status`.
    pub fn start_buckets(&mut self) -> buckets::RedisBuckets {
        // Validation refused a value out of range.
        let timeout = self.cfg.rate_limit_timeout;
        let store = buckets::RedisBuckets::start(&self.cfg.redis, &self.cfg.prefix, timeout);
        self.buckets = Some(store.clone());
        store
    }

    pub fn box_id(&self) -> &str {
        &self.box_id
    }

    /// Queues a block for the fleet. Never waits: a full queue drops and counts the event.
    pub fn publish_add(&self, block: Block) {
        self.publish(Event::Add {
            from: self.box_id.clone(),
            block,
        });
    }

    pub fn publish_del(&self, cidr: String) {
        self.publish(Event::Del {
            from: self.box_id.clone(),
            cidr,
        });
    }

    fn publish(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            warn!("fleet queue full: a block was not shared with the fleet");
        }
    }

    pub fn status(&self) -> FleetStatus {
        FleetStatus {
            redis: self.cfg.redis.clone(),
            box_id: self.box_id.clone(),
            connected: self.state.connected.load(Ordering::Relaxed),
            events_applied: self.state.applied.load(Ordering::Relaxed),
            events_dropped: self.state.dropped.load(Ordering::Relaxed),
            last_error: self
                .state
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            rate_limits: self.buckets.as_ref().map(buckets::RedisBuckets::status),
        }
    }
}

fn keys(cfg: &FleetConfig) -> (String, String) {
    (
        format!("{}:blocklist", cfg.prefix),
        format!("{}:events", cfg.prefix),
    )
}

fn note_error(state: &State, what: &str, e: &RespError) {
    state.connected.store(false, Ordering::Relaxed);
    let msg = format!("{what}: {e}");
    let mut last = state.last_error.lock().unwrap_or_else(|p| p.into_inner());
    if last.as_deref() != Some(msg.as_str()) {
        warn!("fleet: {msg}; retrying every second");
    }
    *last = Some(msg);
}

async fn publisher(cfg: FleetConfig, mut rx: mpsc::Receiver<Event>, state: Arc<State>) {
    let (hash, channel) = keys(&cfg);
    let mut conn: Option<Conn> = None;
    let mut pending: Option<Event> = None;
    loop {
        let ev = match pending.take() {
            Some(ev) => ev,
            None => match rx.recv().await {
                Some(ev) => ev,
                None => return,
            },
        };
        if conn.is_none() {
            match Conn::connect(&cfg.redis).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    note_error(&state, "publisher", &e);
                    pending = Some(ev);
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        if let Err(e) = send_event(c, &hash, &channel, &ev).await {
            note_error(&state, "publisher", &e);
            conn = None;
            pending = Some(ev);
            tokio::time::sleep(RETRY).await;
        }
    }
}

async fn send_event(c: &mut Conn, hash: &str, channel: &str, ev: &Event) -> Result<(), RespError> {
    let payload = serde_json::to_vec(ev).map_err(|e| RespError::Protocol(e.to_string()))?;
    match ev {
        Event::Add { block, .. } => {
            let value =
                serde_json::to_vec(block).map_err(|e| RespError::Protocol(e.to_string()))?;
            c.call(&[b"HSET", hash.as_bytes(), block.cidr.as_bytes(), &value])
                .await?;
        }
        Event::Del { cidr, .. } => {
            c.call(&[b"HDEL", hash.as_bytes(), cidr.as_bytes()]).await?;
        }
    }
    c.call(&[b"PUBLISH", channel.as_bytes(), &payload]).await?;
    Ok(())
}

async fn subscriber(cfg: FleetConfig, box_id: String, apply: Apply, state: Arc<State>) {
    loop {
        if let Err(e) = subscribe_once(&cfg, &box_id, &apply, &state).await {
            note_error(&state, "subscriber", &e);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Subscribes first, then reads the whole blocklist, so no event falls between the two.
async fn subscribe_once(
    cfg: &FleetConfig,
    box_id: &str,
    apply: &Apply,
    state: &State,
) -> Result<(), RespError> {
    let (hash, channel) = keys(cfg);
    let mut sub = Conn::connect(&cfg.redis).await?;
    sub.call(&[b"SUBSCRIBE", channel.as_bytes()]).await?;
    let mut cmd = Conn::connect(&cfg.redis).await?;
    let all = cmd.call(&[b"HGETALL", hash.as_bytes()]).await?.into_bulks();
    drop(cmd);
    let mut caught_up = 0usize;
    for pair in all.chunks_exact(2) {
        if let Ok(block) = serde_json::from_slice::<Block>(&pair[1]) {
            apply(&Event::Add {
                from: "catch-up".into(),
                block,
            });
            caught_up += 1;
        }
    }
    state.connected.store(true, Ordering::Relaxed);
    *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    info!(redis = %cfg.redis, blocks = caught_up, "fleet: connected and caught up");
    loop {
        let msg = sub.read().await?;
        let Value::Array(Some(parts)) = msg else {
            continue;
        };
        let payload = match parts.as_slice() {
            [Value::Bulk(Some(kind)), _, Value::Bulk(Some(p))] if kind == b"message" => p,
            _ => continue,
        };
        match serde_json::from_slice::<Event>(payload) {
            Ok(ev) => {
                let from = match &ev {
                    Event::Add { from, .. } | Event::Del { from, .. } => from,
                };
                if from != box_id {
                    apply(&ev);
                    state.applied.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => warn!(error = %e, "fleet: ignored a malformed event"),
        }
    }
}
