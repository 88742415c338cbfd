//! Typed access to the program's pinned maps. The daemon and `vigilctl` (when the daemon is
//! down) both come through here, so there is one writer format.

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray};
use ipnet::IpNet;
use serde::Serialize;

use crate::{
    XdpError,
    abi::Reason,
    abi::{self, Config, Counter, LpmV4, LpmV6, Rule},
    clock,
    ruleset::RuleSet,
    tables::{self, TableMemory, TableRule, Tables},
};

pub const BLOCK_V4: &str = "vigil_blk4";
pub const BLOCK_V6: &str = "vigil_blk6";
pub const ALLOW_V4: &str = "vigil_alw4";
pub const ALLOW_V6: &str = "vigil_alw6";
pub const RATE: &str = "vigil_rate";
pub const COUNTERS: &str = "vigil_cnt";
pub const CONFIG: &str = "vigil_cfg";
pub const SYN_PORTS: &str = "vigil_synp";
pub const SYN_STATE: &str = "vigil_syns";
pub const ALL_MAPS: [&str; 15] = [
    BLOCK_V4,
    BLOCK_V6,
    ALLOW_V4,
    ALLOW_V6,
    RATE,
    COUNTERS,
    CONFIG,
    tables::T24,
    tables::T8,
    tables::SLOTS,
    tables::TBL,
    tables::H6,
    tables::V6B,
    SYN_PORTS,
    SYN_STATE,
];

/// Which of the two rule sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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

/// Rules per list and origin, from the counters kept at every insert and delete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounts {
    /// `[block, allow][origin]`, origins in the order of [`tables::ORIGIN_NAMES`].
    pub by_list: [[u32; abi::ORIGINS]; 2],
}

impl RuleCounts {
    pub fn list(&self, list: List) -> u64 {
        self.by_list[usize::from(list == List::Allow)]
            .iter()
            .map(|&n| u64::from(n))
            .sum()
    }

    /// Rules of `list` from the origin named `origin` (see [`tables::ORIGIN_NAMES`]).
    pub fn get(&self, list: List, origin: &str) -> u64 {
        tables::ORIGIN_NAMES
            .iter()
            .position(|o| *o == origin)
            .map_or(0, |i| {
                u64::from(self.by_list[usize::from(list == List::Allow)][i])
            })
    }
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
    blk4: HashMap<MapData, LpmV4, Rule>,
    blk6: HashMap<MapData, LpmV6, Rule>,
    alw4: HashMap<MapData, LpmV4, Rule>,
    alw6: HashMap<MapData, LpmV6, Rule>,
    rate: PerCpuArray<MapData, abi::Bucket>,
    counters: PerCpuArray<MapData, Counter>,
    config: Array<MapData, Config>,
    pub(crate) syn_ports: Array<MapData, u32>,
    pub(crate) syn_state: PerCpuArray<MapData, abi::SynState>,
    tables: Tables,
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

/// Refuses a pinned config map written by a build of another ABI version (or of another
/// layout altogether).
pub(crate) fn check_abi(dir: &Path) -> Result<(), XdpError> {
    let path = dir.join(CONFIG);
    let incompatible = |detail: String| XdpError::IncompatiblePin {
        path: path.clone(),
        detail,
    };
    let map = open_map(dir, CONFIG)?;
    let version = match Array::<MapData, Config>::try_from(map) {
        Ok(a) => {
            a.get(&0, 0)
                .map_err(XdpError::map("reading the XDP config map"))?
                .abi_version
        }
        Err(e) => {
            return Err(incompatible(format!(
                "{e} (a build of another ABI version)"
            )));
        }
    };
    if version != 0 && version != abi::ABI_VERSION {
        return Err(incompatible(format!(
            "ABI version {version} (this build: {})",
            abi::ABI_VERSION
        )));
    }
    Ok(())
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
        // The ABI first: pins of another layout must be named as such, not as missing maps.
        check_abi(dir)?;
        Ok(VigilMaps {
            dir: dir.to_owned(),
            blk4: typed!(dir, BLOCK_V4),
            blk6: typed!(dir, BLOCK_V6),
            alw4: typed!(dir, ALLOW_V4),
            alw6: typed!(dir, ALLOW_V6),
            rate: typed!(dir, RATE),
            counters: typed!(dir, COUNTERS),
            config: typed!(dir, CONFIG),
            syn_ports: typed!(dir, SYN_PORTS),
            syn_state: typed!(dir, SYN_STATE),
            tables: Tables::open(dir)?,
        })
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
        let from = nul_padded::<{ abi::ORIGIN_LEN }>(origin)?;
        if !origin.is_empty() {
            flags |= abi::RULE_F_FLEET;
        }
        let mut rule = make_rule(ttl, reason, flags, from, 0)?;
        rule.prefixlen = u32::from(cidr.prefix_len());
        let what = format!("adding {cidr} to the {list:?} list");
        if list == List::Allow {
            // Before the insert: the program may skip an allowlist only while it is empty.
            self.set_allow_used(cidr.addr().is_ipv4(), true)?;
        }
        self.store_insert(list, cidr, &rule)
            .map_err(XdpError::map(what))?;
        self.commit(|rules, tables| {
            put(rules, tables, list, cidr, &rule);
        })
    }

    /// Adds many rules of one list with one rebuild of the lookup tables: what an import of a
    /// feed uses. Returns how many were new (the others replaced a rule for the same CIDR).
    pub fn insert_many(
        &mut self,
        list: List,
        nets: &[IpNet],
        reason: &str,
        flags: u32,
    ) -> Result<usize, XdpError> {
        let rule = make_rule(None, reason, flags, [0; abi::ORIGIN_LEN], 0)?;
        let mut rules = self.rule_set().indexed();
        let allow = list == List::Allow;
        let new = nets.iter().filter(|n| !rules.contains(allow, **n)).count();
        let room = u64::from(abi::MAX_SLOTS - 1);
        if (rules.len() + new) as u64 > room {
            return Err(XdpError::TablesFull {
                what: format!("{new} more rules beside the {} loaded", rules.len()),
                max: format!("{room} rules in all"),
            });
        }
        if list == List::Allow {
            if nets.iter().any(|n| n.addr().is_ipv4()) {
                self.set_allow_used(true, true)?;
            }
            if nets.iter().any(|n| n.addr().is_ipv6()) {
                self.set_allow_used(false, true)?;
            }
        }
        for net in nets {
            let rule = Rule {
                prefixlen: u32::from(net.prefix_len()),
                ..rule
            };
            self.store_insert(list, *net, &rule)
                .map_err(XdpError::map(format!("adding {net} to the {list:?} list")))?;
            put(&mut rules, &mut self.tables, list, *net, &rule);
        }
        self.publish(&rules)?;
        Ok(new)
    }

    /// Removes every rule of `list`; returns how many there were.
    pub fn flush(&mut self, list: List) -> Result<usize, XdpError> {
        let mut rules = self.rule_set();
        let allow = list == List::Allow;
        let doomed = rules.remove_where(|r| r.allow == allow);
        for r in &doomed {
            self.store_remove(list, r.net)?;
            self.tables.count(r.allow, r.origin, -1);
        }
        self.publish(&rules)?;
        if list == List::Allow {
            self.set_allow_used(true, false)?;
            self.set_allow_used(false, false)?;
        }
        Ok(doomed.len())
    }

    fn store_insert(
        &mut self,
        list: List,
        cidr: IpNet,
        rule: &Rule,
    ) -> Result<(), aya::maps::MapError> {
        match cidr.addr() {
            IpAddr::V4(a) => self.store4(list).insert(
                LpmV4 {
                    prefixlen: rule.prefixlen,
                    addr: a.octets(),
                },
                *rule,
                0,
            ),
            IpAddr::V6(a) => self.store6(list).insert(
                LpmV6 {
                    prefixlen: rule.prefixlen,
                    addr: a.octets(),
                },
                *rule,
                0,
            ),
        }
    }

    /// Removes a rule from the rule store; `Ok(false)` when it was not there.
    fn store_remove(&mut self, list: List, cidr: IpNet) -> Result<bool, XdpError> {
        let prefix = u32::from(cidr.prefix_len());
        let res = match cidr.addr() {
            IpAddr::V4(a) => self.store4(list).remove(&LpmV4 {
                prefixlen: prefix,
                addr: a.octets(),
            }),
            IpAddr::V6(a) => self.store6(list).remove(&LpmV6 {
                prefixlen: prefix,
                addr: a.octets(),
            }),
        };
        match res {
            Ok(()) => Ok(true),
            Err(aya::maps::MapError::KeyNotFound) => Ok(false),
            Err(e) => Err(XdpError::map(format!("removing {cidr}"))(e)),
        }
    }

    /// The rules the packet path uses now.
    fn rule_set(&self) -> RuleSet {
        RuleSet::new(self.tables.current())
    }

    fn publish(&mut self, rules: &RuleSet) -> Result<(), XdpError> {
        self.tables.publish(rules.as_slice())
    }

    /// Applies `f` to the current rule set and publishes the result as new tables.
    fn commit(&mut self, f: impl FnOnce(&mut RuleSet, &mut Tables)) -> Result<(), XdpError> {
        let mut rules = self.rule_set();
        f(&mut rules, &mut self.tables);
        self.publish(&rules)
    }

    /// Rebuilds the lookup tables and the rule counts from the rule store (its hashes): what
    /// attaching and adopting do, so tables and store agree whatever happened before.
    pub fn resync(&mut self) -> Result<usize, XdpError> {
        let mut all = Vec::new();
        for list in [List::Block, List::Allow] {
            let (t4, t6) = match list {
                List::Block => (&self.blk4, &self.blk6),
                List::Allow => (&self.alw4, &self.alw6),
            };
            let allow = list == List::Allow;
            for item in t4.iter() {
                let (key, rule) = item.map_err(XdpError::map("reading IPv4 rules"))?;
                if let Ok(net) = IpNet::new(IpAddr::from(key.addr), key.prefixlen as u8) {
                    all.push(table_rule(net, allow, &rule));
                }
            }
            for item in t6.iter() {
                let (key, rule) = item.map_err(XdpError::map("reading IPv6 rules"))?;
                if let Ok(net) = IpNet::new(IpAddr::from(key.addr), key.prefixlen as u8) {
                    all.push(table_rule(net, allow, &rule));
                }
            }
        }
        self.tables.recount(&all);
        self.tables.publish(&all)?;
        Ok(all.len())
    }

    /// Rules per list and origin, from counters kept at insert and delete (no map walk).
    pub fn rule_counts(&self) -> RuleCounts {
        RuleCounts {
            by_list: self.tables.counts(),
        }
    }

    /// What the lookup tables take in memory.
    pub fn table_memory(&self) -> TableMemory {
        self.tables.memory()
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
        if !self.store_remove(list, cidr)? {
            return Ok(false);
        }
        self.commit(|rules, tables| {
            if let Some(r) = rules.remove(list == List::Allow, cidr) {
                tables.count(r.allow, r.origin, -1);
            }
        })?;
        let v4 = cidr.addr().is_ipv4();
        if list == List::Allow && self.allow_empty(v4) {
            self.set_allow_used(v4, false)?;
        }
        Ok(true)
    }

    /// The rule for exactly `cidr` in `list` (not a wider one that covers it), if any.
    pub fn get(&self, list: List, cidr: IpNet) -> Option<RuleEntry> {
        let rule = self.store_get(list, cidr)?;
        Some(entry(cidr, &rule, clock::monotonic_ns()))
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
            let (len, addr) = (key.prefixlen, key.addr);
            if let Ok(net) = IpNet::new(IpAddr::from(addr), len as u8) {
                out.push(entry(net, &rule, now));
            }
        }
        for item in t6.iter() {
            let (key, rule) = item.map_err(XdpError::map("listing IPv6 rules"))?;
            let (len, addr) = (key.prefixlen, key.addr);
            if let Ok(net) = IpNet::new(IpAddr::from(addr), len as u8) {
                out.push(entry(net, &rule, now));
            }
        }
        out.sort_by_key(|e| e.cidr);
        Ok(out)
    }

    /// Deletes rules whose deadline has passed, with one rebuild of the tables; returns what
    /// it removed. The candidates come from the tables (memory), not from walking the store.
    pub fn sweep_expired(&mut self) -> Result<Vec<(List, RuleEntry)>, XdpError> {
        let now = clock::monotonic_ns();
        let mut rules = self.rule_set();
        if !rules
            .as_slice()
            .iter()
            .any(|r| r.expires_ns != 0 && r.expires_ns <= now)
        {
            return Ok(Vec::new());
        }
        let expired = rules.remove_where(|r| r.expires_ns != 0 && r.expires_ns <= now);
        let mut removed = Vec::new();
        for r in expired {
            let (list, net) = (list_of(r.allow), r.net);
            let meta = self.store_get(list, net);
            if self.store_remove(list, net)? {
                if let Some(rule) = meta {
                    removed.push((list, entry(net, &rule, now)));
                }
            }
            self.tables.count(r.allow, r.origin, -1);
        }
        self.publish(&rules)?;
        for v4 in [true, false] {
            if self.allow_empty(v4) {
                self.set_allow_used(v4, false)?;
            }
        }
        Ok(removed)
    }

    fn store_get(&self, list: List, net: IpNet) -> Option<Rule> {
        let len = u32::from(net.prefix_len());
        let (t4, t6) = match list {
            List::Block => (&self.blk4, &self.blk6),
            List::Allow => (&self.alw4, &self.alw6),
        };
        match net.addr() {
            IpAddr::V4(a) => t4
                .get(
                    &LpmV4 {
                        prefixlen: len,
                        addr: a.octets(),
                    },
                    0,
                )
                .ok(),
            IpAddr::V6(a) => t6
                .get(
                    &LpmV6 {
                        prefixlen: len,
                        addr: a.octets(),
                    },
                    0,
                )
                .ok(),
        }
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

    pub(crate) fn set_config_raw(&mut self, cfg: Config) -> Result<(), XdpError> {
        self.config
            .set(0, cfg, 0)
            .map_err(XdpError::map("writing the XDP config map"))
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
            rate_bits: self.rate_bits(),
            // The allowlist flags and the SYN guard have their own writers.
            ..old
        };
        self.config
            .set(0, cfg, 0)
            .map_err(XdpError::map("writing the XDP config map"))
    }

    /// log2 of the buckets per row of the rate sketch, from the map's size.
    pub fn rate_bits(&self) -> u32 {
        (self.rate.len() / abi::RATE_ROWS).max(1).ilog2()
    }

    /// Sources the rate limiter has seen, estimated from the buckets of the per-CPU sketch
    /// that some CPU has touched (colliding sources share a bucket, so it can undercount).
    pub fn tracked_sources(&self) -> usize {
        self.rate
            .iter()
            .filter_map(Result::ok)
            .filter(|per_cpu| per_cpu.iter().any(|b| b.last_ns != 0))
            .count()
            / abi::RATE_ROWS as usize
    }

    fn store4(&mut self, list: List) -> &mut HashMap<MapData, LpmV4, Rule> {
        match list {
            List::Block => &mut self.blk4,
            List::Allow => &mut self.alw4,
        }
    }

    fn store6(&mut self, list: List) -> &mut HashMap<MapData, LpmV6, Rule> {
        match list {
            List::Block => &mut self.blk6,
            List::Allow => &mut self.alw6,
        }
    }
}

/// Multiply-shift constants of the rate sketch's rows, as in `over_rate()` of vigil.c.
const RATE_HASH: [u64; abi::RATE_ROWS as usize] = [0x9e37_79b9_7f4a_7c15, 0xc2b2_ae3d_27d4_eb4f];

/// The sketch buckets (one per row, as indexes of `vigil_rate`) a source uses when the sketch
/// has `1 << bits` buckets per row: the program's hash, for tests and for reasoning about
/// collisions. IPv4 sources hash their address as the program loads it (little-endian);
/// IPv6 ones fold the two halves.
pub fn rate_buckets(src: IpAddr, bits: u32) -> [u32; abi::RATE_ROWS as usize] {
    let key = match src {
        IpAddr::V4(a) => u64::from(u32::from_le_bytes(a.octets())),
        IpAddr::V6(a) => {
            let o = a.octets();
            let (hi, lo) = o.split_at(8);
            let word = |b: &[u8]| {
                let mut w = [0u8; 8];
                w.copy_from_slice(b);
                u64::from_le_bytes(w)
            };
            word(hi) ^ word(lo).wrapping_mul(0xff51_afd7_ed55_8ccd)
        }
    };
    let bits = bits.clamp(1, 24);
    let mut out = [0u32; abi::RATE_ROWS as usize];
    for (row, k) in RATE_HASH.iter().enumerate() {
        out[row] = (key.wrapping_mul(*k) >> (64 - bits)) as u32 + ((row as u32) << bits);
    }
    out
}

fn list_of(allow: bool) -> List {
    if allow { List::Allow } else { List::Block }
}

fn table_rule(net: IpNet, allow: bool, rule: &Rule) -> TableRule {
    TableRule {
        net,
        allow,
        expires_ns: rule.expires_ns,
        origin: tables::origin_of(rule.flags),
    }
}

/// Puts one rule into the working set, moving the origin counters for what it replaces.
fn put(rules: &mut RuleSet, tables: &mut Tables, list: List, net: IpNet, rule: &Rule) {
    let new = table_rule(net, list == List::Allow, rule);
    if let Some(old) = rules.upsert(new) {
        tables.count(old.allow, old.origin, -1);
    }
    tables.count(new.allow, new.origin, 1);
}

/// `text` in a field of N bytes with at least one NUL after it.
fn nul_padded<const N: usize>(text: &str) -> Result<[u8; N], XdpError> {
    if text.len() > N - 1 {
        return Err(XdpError::ReasonTooLong {
            len: text.len(),
            max: N - 1,
        });
    }
    let mut field = [0u8; N];
    field[..text.len()].copy_from_slice(text.as_bytes());
    Ok(field)
}

/// A rule value with its texts checked: `reason` and `origin` must fit with a NUL after them.
fn make_rule(
    ttl: Option<Duration>,
    reason: &str,
    flags: u32,
    origin: [u8; abi::ORIGIN_LEN],
    prefixlen: u32,
) -> Result<Rule, XdpError> {
    let text = nul_padded::<{ abi::REASON_LEN }>(reason)?;
    let expires_ns = match ttl {
        // A zero TTL would be "never" in the program; make it a 1 ns deadline instead.
        Some(ttl) => clock::monotonic_ns()
            .saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
            .max(1),
        None => 0,
    };
    Ok(Rule {
        expires_ns,
        created_unix: clock::unix_now(),
        prefixlen,
        flags,
        reason: text,
        origin,
    })
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
