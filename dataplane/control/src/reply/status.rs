//! `status`: the daemon, XDP, the gateway, the fleet and the host. From the pinned maps
//! (vigild down) only `daemon` and `xdp` are present.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use vigil_xdp::AttachedMode;

use super::HostFacts;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Absent offline; `null` without `[fleet]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub fleet: Option<Option<FleetStatus>>,
    /// Absent offline; `null` without `[listener]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub gateway: Option<Option<GatewayStatus>>,
    /// Absent offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostFacts>,
    pub daemon: DaemonStatus,
    /// `null` when no program is attached.
    pub xdp: Option<XdpReport>,
}

/// A key that is present, `null` or not: `Some(None)` for `null`, `None` (by `default`) when
/// absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `{"running": false}` offline; pid, version, uptime and config file when running.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    pub running: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

/// The XDP side, or why it could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum XdpReport {
    Attached(XdpStatus),
    Broken {
        error: String,
    },
    /// `[xdp]` is configured but an operator detached the program (`vigilctl xdp attach`
    /// undoes it).
    Detached {
        detached: String,
    },
}

/// What the maps say about the XDP program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpStatus {
    pub interface: String,
    pub mode: AttachedMode,
    /// The pin directory.
    pub pins: PathBuf,
    /// `null` when off.
    pub rate_limit: Option<RateLimitStatus>,
    pub block_rules: usize,
    pub allow_rules: usize,
    /// What the lookup tables take (absent from older vigild).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<vigil_xdp::TableMemory>,
    /// Whether vigild adopted pins left by an earlier run (absent offline).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted: Option<bool>,
    /// The SYN guard's ports, their state and counters (empty when it is off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syn_guard: Vec<vigil_xdp::SynPortStatus>,
}

/// The per-source packet rate limit in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitStatus {
    pub pps: u64,
    pub burst: u64,
}

/// The gateway's listeners, upstreams and token key sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub https: String,
    pub http: Option<String>,
    pub metrics: String,
    pub upstreams: Vec<String>,
    /// Where token keys come from, how many, the last fetch and its error.
    #[serde(default)]
    pub jwks: Vec<JwksStatus>,
    /// Policy, key, audit and readiness.
    #[serde(flatten)]
    pub details: GatewayDetails,
}

/// What the gateway enforces with, where it logs, and what keeps it from being ready.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayDetails {
    /// `null` without `[policy]`.
    #[serde(default)]
    pub policy: Option<PolicyStatus>,
    #[serde(default)]
    pub key: Option<KeyStatus>,
    #[serde(default)]
    pub audit: Option<AuditStatus>,
    /// What `/readyz` reports missing (`no healthy upstream (api)`); empty when ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
    /// Upstreams failing their health check now (requests go to the others).
    #[serde(default)]
    pub unhealthy_upstreams: Vec<String>,
    /// Virtual patches in force, and how many of them have expired.
    #[serde(default)]
    pub patches: Option<PatchCount>,
}

/// `vigilctl status`'s line on virtual patches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchCount {
    pub total: usize,
    pub expired: usize,
}

/// `[policy]` as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The OpenAPI description.
    pub file: PathBuf,
    /// `enforce` or `log-only`.
    pub mode: String,
    /// SHA-256 of the description file as it is on disk now (lowercase hex); `null` when it
    /// cannot be read. Compare it with the file you meant to deploy.
    pub sha256: Option<String>,
}

/// The TLS key the gateway serves from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyStatus {
    /// `null` when the key directory cannot be read now.
    pub mode: Option<super::KeyMode>,
    /// The `[keys]` directory, or `tls.cert` for file keys.
    pub source: PathBuf,
    /// SHA-256 of the public key (SubjectPublicKeyInfo) recorded in the key directory.
    pub spki_sha256: Option<String>,
    /// The certificate subject given at `keys init`.
    pub subject: Option<String>,
    /// When the served certificate expires (seconds since the epoch).
    #[serde(default)]
    pub cert_not_after_unix: Option<i64>,
}

/// `[audit]` as configured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    /// `stdout`, `file` or `syslog`.
    pub sink: String,
    /// The file, or `udp://host:port` / `tcp://host:port` of the collector; `null` for stdout.
    pub destination: Option<String>,
    /// Request headers recorded in each line.
    pub headers: Vec<String>,
    /// Names redacted on top of Authorization, Cookie and Set-Cookie.
    pub redact: Vec<String>,
}

/// One JWKS the gateway verifies tokens with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwksStatus {
    /// The URL or the file's path.
    pub location: String,
    /// Usable keys in the current set.
    pub keys: usize,
    /// `None` before the first successful fetch.
    pub seconds_since_fetch: Option<u64>,
    /// Cleared by a successful fetch.
    pub last_error: Option<String>,
    pub fetches: u64,
    pub failed_fetches: u64,
    /// Bumped with every change of the key set.
    pub generation: u64,
}

/// The fleet blocklist's connection and, with the gateway, the shared rate-limit store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    /// `redis://host:port` or `rediss://host:port` (never a secret).
    pub redis: String,
    pub box_id: String,
    pub connected: bool,
    pub events_applied: u64,
    pub events_dropped: u64,
    /// Messages refused (unsigned, unknown box, bad signature, replayed...), by reason.
    #[serde(default)]
    pub events_refused: BTreeMap<String, u64>,
    /// Whether the link to Redis is TLS.
    #[serde(default)]
    pub tls: bool,
    /// The Redis ACL user, if one is set.
    #[serde(default)]
    pub user: Option<String>,
    /// Boxes whose signatures this box accepts (itself included).
    #[serde(default)]
    pub trusted_boxes: usize,
    pub last_error: Option<String>,
    /// `null` without the gateway.
    pub rate_limits: Option<SharedRateLimits>,
}

/// Where shared rate limits are decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRateLimits {
    pub backend: StoreBackend,
    /// Unix seconds since the backend is the one in force.
    pub since_unix: u64,
    pub decisions: u64,
    pub errors: u64,
    pub fallbacks: u64,
    pub queue_full: u64,
    pub timeout_ms: u64,
    pub last_error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreBackend {
    /// Decided in the fleet's Redis.
    Redis,
    /// Redis cannot answer: each box decides with the rules' fallback limits.
    LocalFallback,
}
