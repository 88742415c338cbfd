//! The fleet blocklist: blocks added on one box reach every box through Redis.
//!
//! Each block is a field of the hash `<prefix>:blocklist` (so a box that was offline catches up
//! with one HGETALL when it starts) and an event on the channel `<prefix>:events` (so the others
//! apply it within a round trip). Both carry the Ed25519 signature of the box that made the
//! block ([`signed`]); a box applies only what a box of `[fleet.boxes]` signed, and refuses,
//! logs and counts the rest. Publishing never blocks a control request: events go through a
//! bounded queue to a task that retries while Redis is away.
//!
//! Redis is reached through [`link`] (ACL user, password file, TLS). The same Redis keeps the
//! buckets of the `shared = true` rate limits ([`buckets`]).

pub mod buckets;
pub mod link;
pub mod signed;
#[cfg(test)]
mod test_redis;

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};
use vigil_control::{
    fleet_key::{PublicKey, SigningKey, check_box_id},
    reply::FleetStatus,
};

use link::Link;
use signed::{Refusal, Sealer, Verifier};

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `host:port` or `redis://host:port` (plain TCP), `rediss://host:port` (TLS).
    pub redis: String,
    /// Redis ACL user; without it the connection authenticates as `default` (with
    /// `password_file`) or not at all.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the Redis password. Never put the password in the config.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// CA certificates that sign the Redis server's certificate (`rediss://`); default: the
    /// system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for a Redis that asks for them (`tls-auth-clients yes`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Key prefix, so several fleets can share one Redis.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// This box's name in the fleet: it signs as this name, and `[fleet.boxes]` of the other
    /// boxes lists it with its public key. Default: the host name.
    #[serde(default)]
    pub box_id: Option<String>,
    /// This box's Ed25519 signing key (PKCS#8 PEM, mode 0600): `vigilctl fleet keygen`.
    pub signing_key: PathBuf,
    /// The boxes whose blocks this box applies: name = "ed25519:<base64>".
    #[serde(default)]
    pub boxes: BTreeMap<String, String>,
    /// How far an event's time may be from this box's clock, and how long its nonce is
    /// remembered against replays, e.g. "60s".
    #[serde(
        default = "default_replay_window",
        deserialize_with = "vigil_control::duration::de"
    )]
    pub replay_window: Duration,
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

fn default_replay_window() -> Duration {
    Duration::from_secs(60)
}

/// Longest `rate_limit_timeout`: the gateway stops waiting for the store after 1 s anyway.
pub const MAX_RATE_LIMIT_TIMEOUT: Duration = Duration::from_millis(999);

impl FleetConfig {
    /// Checks every fleet setting and reads the files it names (password, TLS, signing key), as
    /// a start would; the error names the offending key (`fleet.<key>`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            return Err((
                "fleet.prefix".into(),
                "must be non-empty without spaces".into(),
            ));
        }
        self.validate_rate_limit_timeout()
            .map_err(|e| ("fleet.rate_limit_timeout".to_owned(), e))?;
        if self.replay_window < Duration::from_secs(1) || self.replay_window > MAX_REPLAY_WINDOW {
            return Err((
                "fleet.replay_window".into(),
                "must be from 1s to 1h (it bounds clock skew between boxes and how long a \
                 captured event could be replayed)"
                    .into(),
            ));
        }
        self.material().map(|_| ())
    }

    /// This box's name: `box_id`, or the host name.
    pub fn box_name(&self) -> Result<String, (String, String)> {
        let name = match &self.box_id {
            Some(b) => b.clone(),
            None => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
        };
        check_box_id(&name).map_err(|e| {
            let hint = if self.box_id.is_none() {
                " (taken from the host name: set fleet.box_id)"
            } else {
                ""
            };
            ("fleet.box_id".to_owned(), format!("{e}{hint}"))
        })?;
        Ok(name)
    }

    /// Reads and checks everything the fleet needs at start.
    fn material(&self) -> Result<Material, (String, String)> {
        let link = Link::from_config(self)?;
        let box_id = self.box_name()?;
        let key = SigningKey::load(&self.signing_key)
            .map_err(|e| ("fleet.signing_key".to_owned(), e.to_string()))?;
        let mut trust = HashMap::new();
        for (name, text) in &self.boxes {
            check_box_id(name).map_err(|e| (format!("fleet.boxes.{name}"), e))?;
            let pk: PublicKey = text
                .parse()
                .map_err(|e| (format!("fleet.boxes.{name}"), e))?;
            trust.insert(name.clone(), pk);
        }
        // This box's own entries (read back at catch-up) verify with its own key.
        match trust.get(&box_id) {
            Some(listed) if *listed != key.public() => {
                return Err((
                    format!("fleet.boxes.{box_id}"),
                    format!(
                        "lists this box with another key than fleet.signing_key ({}); the other \
                         boxes would refuse this box's blocks",
                        key.public()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                trust.insert(box_id.clone(), key.public());
            }
        }
        Ok(Material {
            link,
            sealer: Sealer::new(key, box_id, self.prefix.clone()),
            verifier: Verifier::new(self.prefix.clone(), trust, self.replay_window),
        })
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

/// Longest `replay_window`.
pub const MAX_REPLAY_WINDOW: Duration = Duration::from_secs(3600);

/// What the fleet reads at start.
struct Material {
    link: Link,
    sealer: Sealer,
    verifier: Verifier,
}

/// One fleet-wide block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub cidr: String,
    pub reason: String,
    /// Seconds since the epoch; `None` = permanent.
    pub expires_unix: Option<u64>,
    pub auto: bool,
}

/// What a box tells the fleet. The box that made it is the one that signed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Event {
    Add { block: Block },
    Del { cidr: String },
}

/// Applies an event that box `.0` signed to this box's maps.
pub type Apply = Arc<dyn Fn(&str, &Event) + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    connected: AtomicBool,
    applied: AtomicU64,
    dropped: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
    last_error: Mutex<Option<String>>,
    /// Refusals (one key for all) and link errors (see `note_error`), logged once per interval.
    log: crate::logging::Throttle,
}

/// Refusals are logged once per interval with a count: a flood of forged events cannot flood
/// the journal.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

impl State {
    fn refuse(&self, why: Refusal, source: &str) {
        self.refused[why.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.log.allow("refusal", REFUSAL_LOG_EVERY) {
            warn!(
                reason = why.as_str(),
                source,
                suppressed,
                "fleet: refused a message that no trusted box signed or that was replayed; it was \
                 not applied (later refusals within 10 s are counted, not logged)"
            );
        }
    }

    fn refused(&self) -> BTreeMap<String, u64> {
        Refusal::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str().to_owned(),
                    self.refused[r.index()].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Fleet {
    cfg: FleetConfig,
    box_id: String,
    link: Link,
    tx: mpsc::Sender<Event>,
    state: Arc<State>,
    trusted: usize,
    /// The shared rate-limit buckets, when the gateway runs.
    buckets: Option<buckets::RedisBuckets>,
}

const QUEUE: usize = 4096;
const RETRY: Duration = Duration::from_secs(1);
/// How often the subscriber pings Redis, so a hung server shows as disconnected.
const SUB_PING_EVERY: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Fleet {
    /// Reads the keys and files, then starts the publisher and the subscriber; both reconnect
    /// by themselves.
    pub fn start(cfg: FleetConfig, apply: Apply) -> Result<Fleet, (String, String)> {
        let Material {
            link,
            sealer,
            verifier,
        } = cfg.material()?;
        let box_id = sealer.box_id().to_owned();
        let trusted = verifier.trusted();
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State::default());
        tokio::spawn(publisher(
            link.clone(),
            keys(&cfg),
            sealer,
            rx,
            state.clone(),
        ));
        tokio::spawn(subscriber(
            link.clone(),
            keys(&cfg),
            box_id.clone(),
            Arc::new(verifier),
            apply,
            state.clone(),
        ));
        Ok(Fleet {
            cfg,
            box_id,
            link,
            tx,
            state,
            trusted,
            buckets: None,
        })
    }

    /// Starts the shared rate-limit store on the fleet's Redis (its own connection, so a
    /// blocklist catch-up never delays a decision) and keeps it for `status`.
    pub fn start_buckets(&mut self) -> buckets::RedisBuckets {
        // Validation refused a value out of range.
        let timeout = self.cfg.rate_limit_timeout;
        let store = buckets::RedisBuckets::start(self.link.clone(), &self.cfg.prefix, timeout);
        self.buckets = Some(store.clone());
        store
    }

    pub fn box_id(&self) -> &str {
        &self.box_id
    }

    /// Queues a block for the fleet. Never waits: a full queue drops and counts the event.
    pub fn publish_add(&self, block: Block) {
        self.publish(Event::Add { block });
    }

    pub fn publish_del(&self, cidr: String) {
        self.publish(Event::Del { cidr });
    }

    fn publish(&self, ev: Event) {
        if self.tx.try_send(ev).is_err() {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            warn!("fleet queue full: a block was not shared with the fleet");
        }
    }

    pub fn status(&self) -> FleetStatus {
        FleetStatus {
            redis: self.link.shown().to_owned(),
            box_id: self.box_id.clone(),
            connected: self.state.connected.load(Ordering::Relaxed),
            events_applied: self.state.applied.load(Ordering::Relaxed),
            events_dropped: self.state.dropped.load(Ordering::Relaxed),
            events_refused: self.state.refused(),
            tls: self.link.tls(),
            user: self.link.user().map(str::to_owned),
            trusted_boxes: self.trusted,
            last_error: self
                .state
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            rate_limits: self.buckets.as_ref().map(buckets::RedisBuckets::status),
        }
    }

    /// Writes the fleet link's metric families.
    pub fn write_metrics(&self, e: &mut vigil_gateway::Exposition<'_, '_>) -> std::fmt::Result {
        let st = &self.state;
        e.gauge(
            "vigil_fleet_connected",
            "Whether the fleet blocklist link to Redis is up.",
            i64::from(st.connected.load(Ordering::Relaxed)),
        )?;
        e.counter(
            "vigil_fleet_events_applied_total",
            "Signed fleet events applied here.",
            st.applied.load(Ordering::Relaxed),
        )?;
        e.counter(
            "vigil_fleet_events_dropped_total",
            "Blocks not shared because the queue was full.",
            st.dropped.load(Ordering::Relaxed),
        )?;
        let refused = st.refused();
        e.counters(
            "vigil_fleet_events_refused_total",
            "Fleet messages refused (never applied), by reason.",
            refused
                .iter()
                .map(|(why, n)| ([("reason", why.as_str())], *n)),
        )
    }
}

/// `(<prefix>:blocklist, <prefix>:events)`
fn keys(cfg: &FleetConfig) -> (String, String) {
    (
        format!("{}:blocklist", cfg.prefix),
        format!("{}:events", cfg.prefix),
    )
}

/// Repeated link errors are logged at most once per this interval, with the count held back.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(60);

fn note_error(state: &State, what: &str, e: &dyn std::fmt::Display) {
    state.connected.store(false, Ordering::Relaxed);
    let msg = format!("{what}: {e}");
    let changed = {
        let mut last = state.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let changed = last.as_deref() != Some(msg.as_str());
        *last = Some(msg.clone());
        changed
    };
    // A new error is logged at once; the same one again at most once a minute, with the
    // number of repeats held back.
    let allowed = state.log.allow(what, ERROR_LOG_EVERY);
    if changed || allowed.is_some() {
        warn!(
            repeats = allowed.unwrap_or(0),
            "fleet: {msg}; retrying every second"
        );
    }
}

async fn publisher(
    link: Link,
    (hash, channel): (String, String),
    sealer: Sealer,
    mut rx: mpsc::Receiver<Event>,
    state: Arc<State>,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
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
            match link.multiplexed().await {
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
        let sealed = sealer.seal(&ev, now_ms());
        let sent = tokio::time::timeout(
            link::CONNECT_TIMEOUT,
            send_event(c, &hash, &channel, &ev, &sealed),
        )
        .await;
        let err = match sent {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("Redis did not answer within {:?}", link::CONNECT_TIMEOUT),
        };
        note_error(&state, "publisher", &err);
        conn = None;
        pending = Some(ev);
        tokio::time::sleep(RETRY).await;
    }
}

/// Writes the block into the hash (or removes it), then tells the fleet, in one round trip.
async fn send_event(
    c: &mut redis::aio::MultiplexedConnection,
    hash: &str,
    channel: &str,
    ev: &Event,
    sealed: &[u8],
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    match ev {
        Event::Add { block } => pipe.hset(hash, &block.cidr, sealed).ignore(),
        Event::Del { cidr } => pipe.hdel(hash, cidr).ignore(),
    };
    pipe.publish(channel, sealed).ignore();
    pipe.query_async(c).await
}

async fn subscriber(
    link: Link,
    keys: (String, String),
    box_id: String,
    verifier: Arc<Verifier>,
    apply: Apply,
    state: Arc<State>,
) {
    loop {
        if let Err(e) = subscribe_once(&link, &keys, &box_id, &verifier, &apply, &state).await {
            note_error(&state, "subscriber", &e);
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Subscribes first, then reads the whole blocklist, so no event falls between the two.
async fn subscribe_once(
    link: &Link,
    (hash, channel): &(String, String),
    box_id: &str,
    verifier: &Verifier,
    apply: &Apply,
    state: &State,
) -> Result<(), String> {
    let mut sub = link.pubsub().await.map_err(|e| e.to_string())?;
    sub.subscribe(channel).await.map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = sub.split();
    let mut cmd = link.multiplexed().await.map_err(|e| e.to_string())?;
    let all: Vec<(Vec<u8>, Vec<u8>)> = tokio::time::timeout(
        link::CONNECT_TIMEOUT * 5,
        redis::cmd("HGETALL").arg(hash).query_async(&mut cmd),
    )
    .await
    .map_err(|_| "reading the blocklist took too long".to_owned())?
    .map_err(|e| e.to_string())?;
    drop(cmd);
    let mut caught_up = 0usize;
    for (field, value) in &all {
        match verifier.entry(field, value) {
            Ok(v) => {
                // This box's own blocks come back as its own rules, not as the fleet's.
                let from = if v.box_id == box_id { "" } else { &v.box_id };
                apply(from, &v.event);
                caught_up += 1;
            }
            Err(why) => state.refuse(why, "blocklist"),
        }
    }
    state.connected.store(true, Ordering::Relaxed);
    *state.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    info!(redis = %link.shown(), blocks = caught_up, refused = all.len() - caught_up,
          "fleet: connected and caught up");
    let mut ping = tokio::time::interval(SUB_PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else {
                    return Err("the subscription connection closed".into());
                };
                match verifier.event(msg.get_payload_bytes(), now_ms()) {
                    Ok(v) if v.box_id == box_id => {}
                    Ok(v) => {
                        apply(&v.box_id, &v.event);
                        state.applied.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(why) => state.refuse(why, "channel"),
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(link::CONNECT_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(e.to_string()),
                    Err(_) => return Err(format!(
                        "Redis did not answer a PING within {:?}", link::CONNECT_TIMEOUT
                    )),
                }
            }
        }
    }
}
