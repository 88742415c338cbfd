//! Typed access to the program's pinned maps. The daemon and `vigilctl` (when the daemon is
//! down) both come through here, so there is one writer format.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{
    Array, HashMap, Map, MapData, PerCpuArray,
    lpm_trie::{Key, LpmTrie},
};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    XdpError,
    abi::{self, Config, Counter, Reason, Rule, SrcKey},
    clock,
};

pub const BLOCK_V4: &str = "vigil_blk4";
pub const BLOCK_V6: &str = "vigil_blk6";
pub const ALLOW_V4: &str = "vigil_alw4";
pub const ALLOW_V6: &str = "vigil_alw6";
pub const RATE: &str = "vigil_rate";
pub const COUNTERS: &str = "vigil_cnt";
pub const CONFIG: &str = "vigil_cfg";
pub const ALL_MAPS: [&str; 7] = [
    BLOCK_V4, BLOCK_V6, ALLOW_V4, ALLOW_V6, RATE, COUNTERS, CONFIG,
];

/// Which of the two rule sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum List {
    Block,
    Allow,
}

/// One rule as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleEntry {
    pub cidr: IpNet,
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
    /// Learned from this box of the fleet.
    pub fleet_box: Option<String>,
}

/// Per-verdict totals over all CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub by_reason: Vec<(Reason, Counter)>,
}

impl Counters {
    pub fn get(&self, reason: Reason) -> Counter {
        self.by_reason
            .iter()
            .find(|(r, _)| *r == reason)
            .map(|(_, c)| *c)
            .unwrap_or_default()
    }

    pub fn dropped_packets(&self) -> u64 {
        self.by_reason
            .iter()
            .filter(|(r, _)| r.drops())
            .map(|(_, c)| c.packets)
            .sum()
    }
}

/// The per-source packet rate limit, as the operator states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub pps: u64,
    pub burst: u64,
}

impl RateLimit {
    pub(crate) fn to_abi(self) -> (u64, u64) {
        let ns_per_packet = (1_000_000_000 / self.pps.max(1)).max(1);
        (
            ns_per_packet,
            ns_per_packet.saturating_mul(self.burst.max(1)),
        )
    }
}

/// Handles on every pinned map of one interface.
pub struct VigilMaps {
    dir: PathBuf,
    blk4: LpmTrie<MapData, [u8; 4], Rule>,
    blk6: LpmTrie<MapData, [u8; 16], Rule>,
    alw4: LpmTrie<MapData, [u8; 4], Rule>,
    alw6: LpmTrie<MapData, [u8; 16], Rule>,
    rate: HashMap<MapData, SrcKey, abi::Bucket>,
    counters: PerCpuArray<MapData, Counter>,
    config: Array<MapData, Config>,
}

impl std::fmt::Debug for VigilMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VigilMaps")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn open_map(dir: &Path, name: &str) -> Result<Map, XdpError> {
    let path = dir.join(name);
    if !path.exists() {
        return Err(XdpError::NotAttached {
            path: dir.to_owned(),
        });
    }
    let data =
        MapData::from_pin(&path).map_err(XdpError::map(format!("opening {}", path.display())))?;
    Map::from_map_data(data).map_err(XdpError::map(format!("reading {}", path.display())))
}

macro_rules! typed {
    ($dir:expr, $name:expr) => {{
        let map = open_map($dir, $name)?;
        map.try_into().map_err(|e| XdpError::IncompatiblePin {
            path: $dir.join($name),
            detail: format!("{e}"),
        })?
    }};
}

impl VigilMaps {
    /// Opens the maps pinned in `dir` (`<pin_root>/<iface>`).
    pub fn open(dir: &Path) -> Result<Self, XdpError> {
        let maps = VigilMaps {
            dir: dir.to_owned(),
            blk4: typed!(dir, BLOCK_V4),
            blk6: typed!(dir, BLOCK_V6),
            alw4: typed!(dir, ALLOW_V4),
            alw6: typed!(dir, ALLOW_V6),
            rate: typed!(dir, RATE),
            counters: typed!(dir, COUNTERS),
            config: typed!(dir, CONFIG),
        };
        let cfg = maps.config()?;
        if cfg.abi_version != 0 && cfg.abi_version != abi::ABI_VERSION {
            return Err(XdpError::IncompatiblePin {
                path: dir.join(CONFIG),
                detail: format!(
                    "ABI version {} (this build: {})",
                    cfg.abi_version,
                    abi::ABI_VERSION
                ),
            });
        }
        Ok(maps)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds or replaces a rule. `ttl = None` makes it permanent.
    pub fn insert(
        &mut self,
        list: List,
        cidr: IpNet,
        ttl: Option<Duration>,
        reason: &str,
        flags: u32,
    ) -> Result<(), XdpError> {
        self.insert_from(list, cidr, ttl, reason, flags, "")
    }

    /// [`Self::insert`] for a rule learned from the fleet box `origin` (at most
    /// `ORIGIN_LEN - 1` bytes; sets `RULE_F_FLEET` when not empty).
    pub fn insert_from(
        &mut self,
        list: List,
        cidr: IpNet,
        ttl: Option<Duration>,
        reason: &str,
        mut flags: u32,
        origin: &str,
    ) -> Result<(), XdpError> {
        if origin.len() > abi::ORIGIN_LEN - 1 {
            return Err(XdpError::ReasonTooLong {
                len: origin.len(),
                max: abi::ORIGIN_LEN - 1,
            });
        }
        let mut from = [0u8; abi::ORIGIN_LEN];
        from[..origin.len()].copy_from_slice(origin.as_bytes());
        if !origin.is_empty() {
            flags |= abi::RULE_F_FLEET;
        }
        if reason.len() > abi::REASON_LEN - 1 {
            return Err(XdpError::ReasonTooLong {
                len: reason.len(),
                max: abi::REASON_LEN - 1,
            });
        }
        let mut text = [0u8; abi::REASON_LEN];
        text[..reason.len()].copy_from_slice(reason.as_bytes());
        let expires_ns = match ttl {
            // A zero TTL would be "never" in the program; make it a 1 ns deadline instead.
            Some(ttl) => clock::monotonic_ns()
                .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
                .max(1),
            None => 0,
        };
        let rule = Rule {
            expires_ns,
            created_unix: clock::unix_now(),
            prefixlen: u32::from(cidr.prefix_len()),
            flags,
            reason: text,
            origin: from,
        };
        let what = format!("adding {cidr} to the {list:?} list");
        let v4 = cidr.addr().is_ipv4();
        if list == List::Allow {
            // Before the insert: the program may skip an allowlist only while it is empty.
            self.set_allow_used(v4, true)?;
        }
        match cidr.addr() {
            IpAddr::V4(a) => {
                let key = Key::new(rule.prefixlen, a.octets());
                self.trie4(list)
                    .insert(&key, rule, 0)
                    .map_err(XdpError::map(what))
            }
            IpAddr::V6(a) => {
                let key = Key::new(rule.prefixlen, a.octets());
                self.trie6(list)
                    .insert(&key, rule, 0)
                    .map_err(XdpError::map(what))
            }
        }
    }

    /// Records whether an allowlist may hold entries (see `allow_v4_used` in the ABI).
    fn set_allow_used(&mut self, v4: bool, used: bool) -> Result<(), XdpError> {
        let mut cfg = self.config()?;
        let flag = if v4 {
            &mut cfg.allow_v4_used
        } else {
            &mut cfg.allow_v6_used
        };
        if *flag == u32::from(used) {
            return Ok(());
        }
        *flag = u32::from(used);
        self.config
            .set(0, cfg, 0)
            .map_err(XdpError::map("writing the XDP config map"))
    }

    fn allow_empty(&self, v4: bool) -> bool {
        if v4 {
            self.alw4.keys().next().is_none()
        } else {
            self.alw6.keys().next().is_none()
        }
    }

    /// Removes a rule; `Ok(false)` when there was none for exactly this CIDR.
    pub fn remove(&mut self, list: List, cidr: IpNet) -> Result<bool, XdpError> {
        let prefix = u32::from(cidr.prefix_len());
        let res = match cidr.addr() {
            IpAddr::V4(a) => self.trie4(list).remove(&Key::new(prefix, a.octets())),
            IpAddr::V6(a) => self.trie6(list).remove(&Key::new(prefix, a.octets())),
        };
        match res {
            Ok(()) => {
                let v4 = cidr.addr().is_ipv4();
                if list == List::Allow && self.allow_empty(v4) {
                    self.set_allow_used(v4, false)?;
                }
                Ok(true)
            }
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(XdpError::map(format!("removing {cidr}"))(e)),
        }
    }

    /// Every rule of a list, expired ones included (they show `expires_in_secs: Some(0)`).
    pub fn list(&self, list: List) -> Result<Vec<RuleEntry>, XdpError> {
        let now = clock::monotonic_ns();
        let mut out = Vec::new();
        let (t4, t6) = match list {
            List::Block => (&self.blk4, &self.blk6),
            List::Allow => (&self.alw4, &self.alw6),
        };
        for item in t4.iter() {
            let (key, rule) = item.map_err(XdpError::map("listing IPv4 rules"))?;
            let (len, addr) = (key.prefix_len(), key.data());
            if let Ok(net) = IpNet::new(IpAddr::from(addr), len as u8) {
                out.push(entry(net, &rule, now));
            }
        }
        for item in t6.iter() {
            let (key, rule) = item.map_err(XdpError::map("listing IPv6 rules"))?;
            let (len, addr) = (key.prefix_len(), key.data());
            if let Ok(net) = IpNet::new(IpAddr::from(addr), len as u8) {
                out.push(entry(net, &rule, now));
            }
        }
        out.sort_by_key(|e| e.cidr);
        Ok(out)
    }

    /// Deletes rules whose deadline has passed; returns what it removed.
    pub fn sweep_expired(&mut self) -> Result<Vec<(List, RuleEntry)>, XdpError> {
        let mut removed = Vec::new();
        for list in [List::Block, List::Allow] {
            for e in self.list(list)? {
                if e.expires_in_secs == Some(0) && self.remove(list, e.cidr)? {
                    removed.push((list, e));
                }
            }
        }
        Ok(removed)
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<Counters, XdpError> {
        let mut by_reason = Vec::with_capacity(Reason::ALL.len());
        for reason in Reason::ALL {
            let per_cpu = self
                .counters
                .get(&(reason as u32), 0)
                .map_err(XdpError::map("reading counters"))?;
            let mut sum = Counter::default();
            for c in per_cpu.iter() {
                sum.packets = sum.packets.wrapping_add(c.packets);
                sum.bytes = sum.bytes.wrapping_add(c.bytes);
            }
            by_reason.push((reason, sum));
        }
        Ok(Counters { by_reason })
    }

    pub fn config(&self) -> Result<Config, XdpError> {
        self.config
            .get(&0, 0)
            .map_err(XdpError::map("reading the XDP config map"))
    }

    /// Sets the rate limit (`None` turns it off) and records the attach mode.
    pub fn set_config(
        &mut self,
        rate: Option<RateLimit>,
        attach_mode: u32,
    ) -> Result<(), XdpError> {
        let (ns_per_packet, burst_ns) = rate.map(RateLimit::to_abi).unwrap_or((0, 0));
        let old = self.config()?;
        let cfg = Config {
            abi_version: abi::ABI_VERSION,
            rate_enabled: u32::from(rate.is_some()),
            ns_per_packet,
            burst_ns,
            attach_mode,
            allow_v4_used: old.allow_v4_used,
            allow_v6_used: old.allow_v6_used,
            _pad: 0,
        };
        self.config
            .set(0, cfg, 0)
            .map_err(XdpError::map("writing the XDP config map"))
    }

    /// Number of sources currently tracked by the rate limiter.
    pub fn tracked_sources(&self) -> usize {
        self.rate.keys().filter(Result::is_ok).count()
    }

    fn trie4(&mut self, list: List) -> &mut LpmTrie<MapData, [u8; 4], Rule> {
        match list {
            List::Block => &mut self.blk4,
            List::Allow => &mut self.alw4,
        }
    }

    fn trie6(&mut self, list: List) -> &mut LpmTrie<MapData, [u8; 16], Rule> {
        match list {
            List::Block => &mut self.blk6,
            List::Allow => &mut self.alw6,
        }
    }
}

/// The text of a NUL-padded field.
fn padded(field: &[u8]) -> String {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..len]).into_owned()
}

fn entry(cidr: IpNet, rule: &Rule, now_ns: u64) -> RuleEntry {
    let (expires_unix, expires_in_secs) = if rule.expires_ns == 0 {
        (None, None)
    } else {
        let left = rule.expires_ns.saturating_sub(now_ns);
        // Round up so a rule with 200 ms left does not read as expired.
        (
            Some(clock::deadline_to_unix(rule.expires_ns)),
            Some(left.div_ceil(1_000_000_000)),
        )
    };
    RuleEntry {
        cidr,
        reason: padded(&rule.reason),
        created_unix: rule.created_unix,
        expires_unix,
        expires_in_secs,
        auto: rule.flags & abi::RULE_F_AUTO != 0,
        from_config: rule.flags & abi::RULE_F_CONFIG != 0,
        fleet_box: (rule.flags & abi::RULE_F_FLEET != 0).then(|| padded(&rule.origin)),
    }
}
