//! What vigild answers, one type per command. On the wire each is the `data` of the reply
//! line; which type it is follows from the request ([`Request::reply_kind`]).
//!
//! [`Request::reply_kind`]: crate::Request::reply_kind

mod config;
mod hw;
mod status;

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf};

use serde::{Deserialize, Serialize};
use vigil_xdp::List;

pub use config::ConfigShown;
pub use hw::{
    CpuFeatures, Firmware, GovernorStatus, HostFacts, KeyMode, NicFacts, SensorError, SensorKind,
    SensorReading, SensorScan, Thermal, ThermalThresholds,
};
pub use status::{
    AuditStatus, DaemonStatus, FleetStatus, GatewayDetails, GatewayStatus, JwksStatus, KeyStatus,
    PatchCount, PolicyStatus, RateLimitStatus, SharedRateLimits, Status, StoreBackend, XdpReport,
    XdpStatus,
};

use crate::{Cidr, Ttl};

/// A successful reply.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    RuleAdded(RuleAdded),
    RuleRemoved(RuleRemoved),
    Rules(Rules),
    RulesImported(RulesImported),
    RulesFlushed(RulesFlushed),
    Stats(Stats),
    Status(Box<Status>),
    Reloaded(Reloaded),
    Detached(Detached),
    XdpAttached(XdpAttached),
    KeysRotated(KeysRotated),
    Thermal(Box<Thermal>),
    Shadow(Shadow),
    Config(Box<ConfigShown>),
    Patches(Patches),
    PatchRemoved(PatchRemoved),
    Clients(Clients),
}

/// Which [`Reply`] a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyKind {
    RuleAdded,
    RuleRemoved,
    Rules,
    RulesImported,
    RulesFlushed,
    Stats,
    Status,
    Reloaded,
    Detached,
    XdpAttached,
    KeysRotated,
    Thermal,
    Shadow,
    Config,
    Patches,
    PatchRemoved,
    Clients,
}

impl Reply {
    pub fn kind(&self) -> ReplyKind {
        match self {
            Reply::RuleAdded(_) => ReplyKind::RuleAdded,
            Reply::RuleRemoved(_) => ReplyKind::RuleRemoved,
            Reply::Rules(_) => ReplyKind::Rules,
            Reply::RulesImported(_) => ReplyKind::RulesImported,
            Reply::RulesFlushed(_) => ReplyKind::RulesFlushed,
            Reply::Stats(_) => ReplyKind::Stats,
            Reply::Status(_) => ReplyKind::Status,
            Reply::Reloaded(_) => ReplyKind::Reloaded,
            Reply::Detached(_) => ReplyKind::Detached,
            Reply::XdpAttached(_) => ReplyKind::XdpAttached,
            Reply::KeysRotated(_) => ReplyKind::KeysRotated,
            Reply::Thermal(_) => ReplyKind::Thermal,
            Reply::Shadow(_) => ReplyKind::Shadow,
            Reply::Config(_) => ReplyKind::Config,
            Reply::Patches(_) => ReplyKind::Patches,
            Reply::PatchRemoved(_) => ReplyKind::PatchRemoved,
            Reply::Clients(_) => ReplyKind::Clients,
        }
    }

    /// Reads the `data` of a reply line as `kind`.
    pub fn decode(kind: ReplyKind, data: serde_json::Value) -> Result<Reply, serde_json::Error> {
        use serde_json::from_value as from;
        Ok(match kind {
            ReplyKind::RuleAdded => Reply::RuleAdded(from(data)?),
            ReplyKind::RuleRemoved => Reply::RuleRemoved(from(data)?),
            ReplyKind::Rules => Reply::Rules(from(data)?),
            ReplyKind::RulesImported => Reply::RulesImported(from(data)?),
            ReplyKind::RulesFlushed => Reply::RulesFlushed(from(data)?),
            ReplyKind::Stats => Reply::Stats(from(data)?),
            ReplyKind::Status => Reply::Status(Box::new(from(data)?)),
            ReplyKind::Reloaded => Reply::Reloaded(from(data)?),
            ReplyKind::Detached => Reply::Detached(from(data)?),
            ReplyKind::XdpAttached => Reply::XdpAttached(from(data)?),
            ReplyKind::KeysRotated => Reply::KeysRotated(from(data)?),
            ReplyKind::Thermal => Reply::Thermal(Box::new(from(data)?)),
            ReplyKind::Shadow => Reply::Shadow(from(data)?),
            ReplyKind::Config => Reply::Config(Box::new(from(data)?)),
            ReplyKind::Patches => Reply::Patches(from(data)?),
            ReplyKind::PatchRemoved => Reply::PatchRemoved(from(data)?),
            ReplyKind::Clients => Reply::Clients(from(data)?),
        })
    }
}

/// `patch_list`, `patch_show`, `patch_add` (the patch added).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Patches {
    pub patches: Vec<PatchInfo>,
}

/// A patch as `vigilctl patch list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchInfo {
    pub patch: vigil_patch::Patch,
    /// `config` (replaced on reload) or `runtime` (added with `vigilctl patch add`, kept across
    /// restarts).
    pub source: String,
    /// Past its expiry: it matches nothing any more, and says so until it is removed.
    pub expired: bool,
    pub expires_unix: u64,
    pub hits: u64,
    pub last_hit_unix: Option<u64>,
}

/// `patch_del`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchRemoved {
    pub removed: String,
}

/// `rule_add`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAdded {
    pub list: List,
    pub cidr: Cidr,
    /// `null` for a permanent rule.
    pub ttl_secs: Option<Ttl>,
    pub reason: String,
    /// The rule for the same CIDR this one replaced; `null` when it is new.
    #[serde(default)]
    pub replaced: Option<Rule>,
}

/// `rule_del`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRemoved {
    pub list: List,
    pub cidr: Cidr,
    pub removed: bool,
}

/// `rule_list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub list: List,
    pub rules: Vec<Rule>,
}

/// `rule_import`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesImported {
    pub list: List,
    /// The feed file vigild read.
    pub file: PathBuf,
    /// Distinct networks in the feed.
    pub prefixes: usize,
    pub ipv4: usize,
    pub ipv6: usize,
    /// Networks that were not in the list before.
    pub added: usize,
    /// Networks whose rule the import replaced (now permanent, with the import's reason).
    pub replaced: usize,
    /// Lines naming a network already listed above them in the feed.
    pub duplicate_lines: usize,
    /// Rules in the list afterwards.
    pub rules_now: u64,
    pub millis: u64,
}

/// `rule_flush`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesFlushed {
    pub list: List,
    pub removed: usize,
}

/// One rule as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub cidr: Cidr,
    pub reason: String,
    pub created_unix: u64,
    /// Seconds since the epoch when the rule stops applying; `None` = permanent.
    pub expires_unix: Option<u64>,
    /// Seconds left; `None` = permanent, `Some(0)` = expired, waiting for the sweep.
    pub expires_in_secs: Option<u64>,
    /// Added by an automatic ban rather than by an operator.
    pub auto: bool,
    /// Comes from the config file (replaced on reload).
    pub from_config: bool,
    /// Learned from this box of the fleet (its signature was checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet_box: Option<String>,
}

impl Rule {
    /// Where the rule came from, as `block list` shows it: `operator`, `config`, `auto-ban`, or
    /// `fleet:<box>` (`fleet:<box>/auto-ban` for another box's automatic ban).
    pub fn origin(&self) -> String {
        let local = if self.auto {
            "auto-ban"
        } else if self.from_config {
            "config"
        } else {
            "operator"
        };
        match (&self.fleet_box, self.auto) {
            (Some(b), true) => format!("fleet:{b}/auto-ban"),
            (Some(b), false) => format!("fleet:{b}"),
            (None, _) => local.to_owned(),
        }
    }
}

/// `stats`: the XDP counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Per verdict reason (`vigil_xdp::abi::Reason::as_str`).
    pub xdp: BTreeMap<String, ReasonCount>,
    pub dropped_packets: u64,
    /// Sources in the rate limiter's table.
    pub tracked_sources: u64,
}

/// Packets and bytes of one verdict reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub packets: u64,
    pub bytes: u64,
    /// Whether this reason drops the packet.
    pub dropped: bool,
}

/// `reload`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// The config file read.
    pub reloaded: PathBuf,
}

/// `xdp_detach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Detached {
    /// The interface.
    pub detached: String,
}

/// `xdp_attach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XdpAttached {
    /// The interface.
    pub attached: String,
    pub mode: vigil_xdp::AttachedMode,
    /// The program was attached already; nothing changed.
    pub already: bool,
    /// Rules the detach removed that were put back (operator and auto-ban rules).
    #[serde(default)]
    pub restored: usize,
}

/// `keys_rotate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRotated {
    pub rotated: bool,
    pub mode: KeyMode,
}

/// `clients_top`: the busiest client TLS fingerprints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clients {
    pub clients: Vec<ClientCount>,
    /// Distinct fingerprints tracked (past the bound, new ones count under `other`).
    pub tracked: u64,
    /// Fingerprints an auto-ban rule has banned, soonest to end first.
    #[serde(default)]
    pub banned: Vec<BannedFingerprint>,
}

/// A fingerprint the gateway refuses (`fingerprint_banned`) for a while.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BannedFingerprint {
    pub ja4: String,
    /// Seconds until the ban ends (rounded up).
    pub expires_in_secs: u64,
}

/// One fingerprint's requests since vigild started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCount {
    pub ja4: String,
    pub requests: u64,
    /// Answered by the gateway instead of forwarded (any refusal: 4xx, 5xx of its own).
    pub rejected: u64,
}

/// `shadow_list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shadow {
    pub entries: Vec<ShadowEntry>,
}

/// One method and path the OpenAPI description does not know, as seen so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowEntry {
    /// `OTHER` for methods that are not plain tokens of at most 16 bytes.
    pub method: String,
    /// The normalised path (`/v2/orders/{id}`).
    pub path: String,
    pub count: u64,
    /// Unix seconds.
    pub first_seen: u64,
    /// Unix seconds.
    pub last_seen: u64,
    /// At most 16, sorted.
    pub statuses: Vec<u16>,
    /// The first 16 distinct ones.
    pub clients: Vec<IpAddr>,
    /// More clients were seen than are listed.
    #[serde(default)]
    pub more_clients: bool,
}
