//! The lookup tables the program reads, built from the rules.
//!
//! IPv4 is DIR-24-8, DPDK's `rte_lpm` layout: one entry per /24 (`vigil_t24`, 2^24 entries
//! as 2^16 rows of 256) holding a rule slot, and for a /24 with longer prefixes a 256-entry
//! group in `vigil_t8`: one or two array reads per packet. IPv6 is a hash (`vigil_h6`) keyed
//! by (set, length, masked address), searched by binary search over the prefix lengths
//! present (Waldvogel et al.): at most 8 probes, whatever the mix of lengths. Entries name a rule
//! slot (`vigil_slot`): its expiry and the slots of the nearest covering allow and block
//! rules, which the program follows past expired rules.
//!
//! Updates are atomic for the packet path. Every table holds two complete sets; the program
//! reads the one `vigil_tables.generation` names. A change builds the whole new rule set into the
//! other set (through mmap: plain memory writes, no syscall per entry), then flips `generation` with
//! one aligned 4-byte store. A packet sees the old tables or the new ones, never a mix, so no
//! change opens a window in which an address that stays blocked passes. The set just left is
//! rewritten only after [`GRACE`], long after any packet that read the old generation is done.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use aya::maps::{HashMap, Map, MapData};
use ipnet::IpNet;

use crate::{
    XdpError,
    abi::{self, Row, Slot, V6Key},
    clock,
    mapped::Mapped,
};

/// Maps of prefixes built in userspace: keys come from the rule store, not from packets, so
/// a fast non-keyed hash is fine.
pub(crate) type FastMap<K, V> = foldhash::HashMap<K, V>;

pub const T24: &str = "vigil_t24";
pub const T8: &str = "vigil_t8";
pub const SLOTS: &str = "vigil_slot";
pub const TBL: &str = "vigil_tbl";
pub const H6: &str = "vigil_h6";
pub const V6B: &str = "vigil_v6b";

/// How long a set stays untouched after the program left it. XDP runs a packet to completion
/// in well under a microsecond; this is a wide margin over that.
pub const GRACE: Duration = Duration::from_millis(10);

/// Origins of rules, in the order of the counters (`VIGIL_ORIGINS`).
pub const ORIGIN_NAMES: [&str; abi::ORIGINS] = ["operator", "config", "auto-ban", "fleet"];

/// The origin index of a rule's flags (fleet before auto-ban before config).
pub fn origin_of(flags: u32) -> u8 {
    if flags & abi::RULE_F_FLEET != 0 {
        3
    } else if flags & abi::RULE_F_AUTO != 0 {
        2
    } else if flags & abi::RULE_F_CONFIG != 0 {
        1
    } else {
        0
    }
}

/// Which of the two lists, as an index of the counters.
fn list_index(allow: bool) -> usize {
    usize::from(allow)
}

/// A rule as the tables need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRule {
    pub net: IpNet,
    pub allow: bool,
    pub expires_ns: u64,
    pub origin: u8,
}

/// Memory and fill of the lookup tables (two sets: the live one and the one the next change
/// is built in), as `vigilctl status` shows them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableMemory {
    /// Everything below, in bytes.
    pub memory_bytes: u64,
    /// Bytes of the mapped tables (both sets), allocated when the maps are created.
    pub allocated_bytes: u64,
    /// Bytes of the IPv6 hash entries of both sets (key, value and the kernel's element
    /// header, estimated).
    pub ipv6_hash_bytes: u64,
    pub slots_used: u32,
    pub slots_max: u32,
    /// /24s holding longer prefixes (IPv4 second-level groups).
    pub groups_used: u32,
    pub groups_max: u32,
    /// IPv6 prefix lengths in use (the binary search probes at most 8 of them per packet).
    pub ipv6_lengths: u32,
}

pub(crate) struct Tables {
    t24: Mapped<Row>,
    t8: Mapped<Row>,
    slots: Mapped<Slot>,
    tbl: Mapped<abi::Tables>,
    v6b: Mapped<abi::V6Bucket>,
    h6: HashMap<MapData, V6Key, abi::V6Val>,
}

impl Tables {
    pub(crate) fn open(dir: &Path) -> Result<Self, XdpError> {
        let t24 = Mapped::open(&dir.join(T24))?;
        let t8 = Mapped::open(&dir.join(T8))?;
        let slots = Mapped::open(&dir.join(SLOTS))?;
        let tbl = Mapped::open(&dir.join(TBL))?;
        let v6b = Mapped::open(&dir.join(V6B))?;
        let sizes = [
            (V6B, v6b.len(), 2 * abi::V6_BUCKETS),
            (T24, t24.len(), 2 * abi::T24_ROWS),
            (T8, t8.len(), 2 * abi::T8_GROUPS),
            (SLOTS, slots.len(), 2 * abi::MAX_SLOTS),
            (TBL, tbl.len(), 1),
        ];
        for (name, got, want) in sizes {
            if got != want as usize {
                return Err(XdpError::IncompatiblePin {
                    path: dir.join(name),
                    detail: format!("{got} entries where this build expects {want}"),
                });
            }
        }
        let path = dir.join(H6);
        let data = MapData::from_pin(&path)
            .map_err(XdpError::map(format!("opening {}", path.display())))?;
        let h6 = Map::from_map_data(data)
            .map_err(XdpError::map(format!("reading {}", path.display())))?
            .try_into()
            .map_err(|e| XdpError::IncompatiblePin {
                path: path.clone(),
                detail: format!("{e}"),
            })?;
        Ok(Tables {
            t24,
            t8,
            slots,
            tbl,
            v6b,
            h6,
        })
    }

    fn header(&self) -> &abi::Tables {
        &self.tbl.as_slice()[0]
    }

    fn header_mut(&mut self) -> &mut abi::Tables {
        &mut self.tbl.as_mut_slice()[0]
    }

    /// The word that selects the set the program reads.
    fn generation(&self) -> &AtomicU32 {
        // SAFETY: `generation` is an aligned u32 inside the mapping, which lives as long as
        // self; the program only reads it and this process only accesses it atomically.
        unsafe { AtomicU32::from_ptr(std::ptr::addr_of_mut!((*self.tbl.base()).generation)) }
    }

    /// The set the program reads now.
    fn active(&self) -> u32 {
        self.generation().load(Ordering::Acquire) & 1
    }

    /// The rules of the active set, as the packet path uses them now.
    pub(crate) fn current(&self) -> Vec<TableRule> {
        let set = self.active();
        let used = (self.header().slots_used[set as usize] as usize).min(abi::MAX_SLOTS as usize);
        let base = set as usize * abi::MAX_SLOTS as usize;
        let slots = &self.slots.as_slice()[base..base + used.max(1)];
        slots.iter().skip(1).filter_map(rule_of_slot).collect()
    }

    /// Rule counts per list (block, allow) and origin, as kept at insert and delete.
    pub(crate) fn counts(&self) -> [[u32; abi::ORIGINS]; 2] {
        self.header().counts
    }

    /// Moves the count of one list and origin by `delta` (never below zero).
    pub(crate) fn count(&mut self, allow: bool, origin: u8, delta: i64) {
        let c = &mut self.header_mut().counts[list_index(allow)][usize::from(origin) & 3];
        *c = u32::try_from((i64::from(*c) + delta).max(0)).unwrap_or(u32::MAX);
    }

    /// Sets every count from a full list of rules (after a resync from the rule store).
    pub(crate) fn recount(&mut self, rules: &[TableRule]) {
        let mut counts = [[0u32; abi::ORIGINS]; 2];
        for r in rules {
            counts[list_index(r.allow)][usize::from(r.origin) & 3] += 1;
        }
        self.header_mut().counts = counts;
    }

    pub(crate) fn memory(&self) -> TableMemory {
        let h = self.header();
        let set = self.active() as usize;
        let mapped = |rows: usize, size: usize| (rows * size) as u64;
        // Prefixes and markers of both sets; key and value rounded to 8 bytes, plus the
        // kernel's htab_elem header (~48 B).
        // Both sets share entries: the larger set is close to what the hash holds.
        let v6_entries = u64::from(h.v6_entries[0].max(h.v6_entries[1]));
        let ipv6_hash_bytes = v6_entries * (24 + 8 + 48);
        let allocated_bytes = mapped(self.t24.len(), size_of::<Row>())
            + mapped(self.t8.len(), size_of::<Row>())
            + mapped(self.slots.len(), size_of::<Slot>())
            + mapped(self.tbl.len(), size_of::<abi::Tables>())
            + mapped(self.v6b.len(), size_of::<abi::V6Bucket>());
        TableMemory {
            memory_bytes: allocated_bytes + ipv6_hash_bytes,
            allocated_bytes,
            ipv6_hash_bytes,
            slots_used: h.slots_used[set].saturating_sub(1),
            slots_max: abi::MAX_SLOTS - 1,
            groups_used: h.groups_used[set],
            groups_max: abi::T8_GROUPS,
            ipv6_lengths: h.v6[set].count,
        }
    }

    /// Builds `rules` into the set the program does not read, then switches to it.
    pub(crate) fn publish(&mut self, rules: &[TableRule]) -> Result<(), XdpError> {
        if rules.len() >= abi::MAX_SLOTS as usize {
            return Err(XdpError::TablesFull {
                what: format!("{} rules", rules.len()),
                max: format!("{} rules in all", abi::MAX_SLOTS - 1),
            });
        }
        let next = 1 - self.active();
        let since = clock::monotonic_ns().saturating_sub(self.header().switched_ns);
        let grace = GRACE.as_nanos() as u64;
        if since < grace {
            std::thread::sleep(Duration::from_nanos(grace - since));
        }
        let old = self.forget(next)?;

        let mut sorted: Vec<&TableRule> = rules.iter().collect();
        // Shorter prefixes first (longer ones paint over them); a block before an allow of
        // the same prefix, so the allow's block_up finds it.
        sorted.sort_unstable_by_key(|r| (r.net.addr().is_ipv6(), r.net.prefix_len(), r.allow));
        let built = self.build(next, &sorted, &old)?;

        let h = self.header_mut();
        let n = next as usize;
        h.rules_v4[n] = built.v4;
        h.rules_v6[n] = built.v6;
        h.slots_used[n] = built.slots;
        h.groups_used[n] = built.groups;
        h.v6[n] = built.lens;
        h.dirty &= !(1 << next);
        self.switch(next);
        Ok(())
    }

    /// The IPv6 prefixes of a set, from its slots: (length, network) to slot.
    fn placed_v6(&self, set: u32) -> FastMap<(u8, u128), u32> {
        let used = (self.header().slots_used[set as usize] as usize).min(abi::MAX_SLOTS as usize);
        let base = set as usize * abi::MAX_SLOTS as usize;
        let slots = &self.slots.as_slice()[base..base + used.max(1)];
        (1..slots.len())
            .filter(|&i| slots[i].flags & abi::SLOT_V6 != 0)
            .map(|i| {
                let s = &slots[i];
                ((s.prefixlen as u8, u128::from_be_bytes(s.addr)), i as u32)
            })
            .collect()
    }

    /// What an earlier build left in `set`, found from the slots the header records for it:
    /// its /24 rows, buckets and IPv6 entries, for the build to clear or change. A set marked
    /// dirty (a build cut short) is cleared whole.
    fn forget(&mut self, set: u32) -> Result<Leftovers, XdpError> {
        let h = self.header();
        let dirty = h.dirty & (1 << set) != 0;
        let used = (h.slots_used[set as usize] as usize).min(abi::MAX_SLOTS as usize);
        let base = set as usize * abi::MAX_SLOTS as usize;
        let mut rows = foldhash::HashSet::default();
        for s in self.slots.as_slice()[base..base + used.max(1)]
            .iter()
            .skip(1)
        {
            if s.flags & abi::SLOT_V6 == 0 {
                let a = u32::from_be_bytes([s.addr[0], s.addr[1], s.addr[2], s.addr[3]]);
                let first = a >> 16;
                let count = 1u32 << 16u32.saturating_sub(s.prefixlen.min(32));
                rows.extend(first..first.saturating_add(count).min(abi::T24_ROWS));
            }
        }
        // The same layout the build made, so the same keys and buckets.
        let layout = v6_layout(&self.placed_v6(set));
        // From here on the set is being rewritten: a crash leaves it marked for a full clear.
        let h = self.header_mut();
        h.dirty |= 1 << set;
        h.rules_v6[set as usize] = 0;
        h.rules_v4[set as usize] = 0;
        Ok(Leftovers {
            whole: dirty,
            rows: rows.into_iter().collect(),
            buckets: layout.buckets.into_keys().collect(),
            v6: layout.entries,
        })
    }

    /// Writes `set`'s half of the IPv6 hash: only entries whose value for this set changes
    /// are written, each with the other set's value as it is (the program may be reading
    /// it); an entry neither set uses goes. After a build cut short, every entry is checked.
    fn write_v6(
        &mut self,
        set: u32,
        new: &FastMap<(u8, u128), u32>,
        old: &Leftovers,
    ) -> Result<(), XdpError> {
        let half = |m: &FastMap<(u8, u128), u32>, k: &(u8, u128)| m.get(k).map_or(0, |s| s + 1);
        let mut keys: Vec<(u8, u128)> = new.keys().copied().collect();
        if !old.whole {
            keys.retain(|k| half(new, k) != half(&old.v6, k));
            keys.extend(old.v6.keys().filter(|k| !new.contains_key(k)).copied());
            if keys.is_empty() {
                // An IPv4 change, or one that moved no IPv6 entry: nothing to write.
                return Ok(());
            }
        }
        let other = v6_layout(&self.placed_v6(1 - set)).entries;
        if old.whole {
            for k in self.h6.keys() {
                let k = k.map_err(XdpError::map("reading the IPv6 table"))?;
                keys.push((k.len as u8, u128::from_be_bytes(k.addr)));
            }
            keys.extend(other.keys().copied());
            keys.sort_unstable();
            keys.dedup();
        }
        for k in keys {
            let mine = half(new, &k);
            let mut val = abi::V6Val::default();
            val.slot[set as usize & 1] = mine;
            val.slot[1 - (set as usize & 1)] = half(&other, &k);
            let key = v6_key(u32::from(k.0), k.1.to_be_bytes());
            let res = if val.slot == [0, 0] {
                match self.h6.remove(&key) {
                    Err(aya::maps::MapError::KeyNotFound) => Ok(()),
                    r => r,
                }
            } else {
                self.h6.insert(key, val, 0)
            };
            res.map_err(XdpError::map("writing the IPv6 table"))?;
        }
        Ok(())
    }

    fn build(
        &mut self,
        set: u32,
        sorted: &[&TableRule],
        old: &Leftovers,
    ) -> Result<Built, XdpError> {
        let slot_base = set as usize * abi::MAX_SLOTS as usize;
        let t24_base = set as usize * abi::T24_ROWS as usize;
        let t8_base = set as usize * abi::T8_GROUPS as usize;
        let t24 = &mut self.t24.as_mut_slice()[t24_base..t24_base + abi::T24_ROWS as usize];
        let t8 = &mut self.t8.as_mut_slice()[t8_base..t8_base + abi::T8_GROUPS as usize];
        let slots = &mut self.slots.as_mut_slice()[slot_base..slot_base + abi::MAX_SLOTS as usize];
        let empty = Row { e: [0; 256] };
        if old.whole {
            t24.fill(empty);
        } else {
            for &r in &old.rows {
                if let Some(row) = t24.get_mut(r as usize) {
                    *row = empty;
                }
            }
        }
        let mut v4 = Dir248 { t24, t8, groups: 0 };
        let mut built = Built {
            v4: 0,
            v6: 0,
            slots: 1,
            groups: 0,
            lens: abi::V6Lens {
                count: 0,
                len: [0; abi::V6_LENS],
            },
        };
        // IPv6 prefixes placed so far, for finding what covers the next one.
        let mut placed6: FastMap<(u8, u128), u32> = FastMap::default();
        let mut lens6: Vec<u8> = Vec::new();
        for r in sorted {
            let idx = built.slots;
            let len = r.net.prefix_len();
            let (under, addr, v6) = match r.net.addr() {
                IpAddr::V4(a) => {
                    let a = u32::from(a);
                    let under = v4.lookup(a);
                    v4.paint(a, len, idx)?;
                    built.v4 += 1;
                    let mut addr = [0u8; 16];
                    addr[..4].copy_from_slice(&a.to_be_bytes());
                    (under, addr, false)
                }
                IpAddr::V6(a) => {
                    let a = u128::from(a);
                    let under = lens6
                        .iter()
                        .rev()
                        .find_map(|&l| placed6.get(&(l, mask6(a, l))).copied())
                        .unwrap_or(0);
                    placed6.insert((len, a), idx);
                    if lens6.last() != Some(&len) {
                        lens6.push(len);
                    }
                    built.v6 += 1;
                    (under, a.to_be_bytes(), true)
                }
            };
            let below = slots[under as usize];
            let (allow_up, block_up) = match under {
                0 => (0, 0),
                u if below.flags & abi::SLOT_ALLOW != 0 => (u, below.block_up),
                u => (below.allow_up, u),
            };
            slots[idx as usize] = Slot {
                expires_ns: r.expires_ns,
                addr,
                prefixlen: u32::from(len),
                flags: (u32::from(r.allow) * abi::SLOT_ALLOW)
                    | (u32::from(v6) * abi::SLOT_V6)
                    | (u32::from(r.origin) << abi::SLOT_ORIGIN_SHIFT),
                allow_up,
                block_up,
            };
            built.slots += 1;
        }
        built.groups = v4.groups;
        let layout = v6_layout(&placed6);
        built.lens.len[..layout.lens.len()].copy_from_slice(&layout.lens);
        built.lens.count = layout.lens.len() as u32;
        let b_base = set as usize * abi::V6_BUCKETS as usize;
        let buckets = &mut self.v6b.as_mut_slice()[b_base..b_base + abi::V6_BUCKETS as usize];
        if old.whole {
            buckets.fill(abi::V6Bucket::default());
        } else {
            for &b in &old.buckets {
                if let Some(b) = buckets.get_mut(b as usize) {
                    *b = abi::V6Bucket::default();
                }
            }
        }
        for (&b, v) in &layout.buckets {
            if let Some(b) = buckets.get_mut(b as usize) {
                *b = *v;
            }
        }
        // Slots and lengths are recorded before the hash is written: with the dirty mark, the
        // next build finds whatever this one wrote.
        let h = self.header_mut();
        h.slots_used[set as usize] = built.slots;
        h.v6[set as usize] = built.lens;
        h.v6_entries[set as usize] = layout.entries.len() as u32;
        self.write_v6(set, &layout.entries, old)?;
        Ok(built)
    }

    fn switch(&mut self, next: u32) {
        // Release: every table write above is visible before the program can read `next`.
        self.generation().store(next, Ordering::Release);
        self.header_mut().switched_ns = clock::monotonic_ns();
    }
}

/// What the previous build of a set left that this one must clear.
struct Leftovers {
    /// Clear everything: the previous build never finished.
    whole: bool,
    rows: Vec<u32>,
    buckets: Vec<u32>,
    /// The set's IPv6 entries (key to slot) as that build wrote them.
    v6: FastMap<(u8, u128), u32>,
}

struct Built {
    v4: u32,
    v6: u32,
    slots: u32,
    groups: u32,
    lens: abi::V6Lens,
}

/// One set of the IPv4 tables.
struct Dir248<'a> {
    t24: &'a mut [Row],
    t8: &'a mut [Row],
    groups: u32,
}

impl Dir248<'_> {
    fn lookup(&self, a: u32) -> u32 {
        let v = self.t24[(a >> 16) as usize].e[((a >> 8) & 0xff) as usize];
        if v & abi::T24_GROUP != 0 {
            self.t8[(v & !abi::T24_GROUP) as usize].e[(a & 0xff) as usize]
        } else {
            v
        }
    }

    /// Writes `slot` over the prefix's range. Prefixes come shortest first, so every /24
    /// entry is painted before any group is split off it.
    fn paint(&mut self, a: u32, len: u8, slot: u32) -> Result<(), XdpError> {
        if len <= 24 {
            let first = (a >> 8) as usize;
            let count = 1usize << (24 - len);
            for i in first..first + count {
                self.t24[i >> 8].e[i & 0xff] = slot;
            }
            return Ok(());
        }
        let cell = &mut self.t24[(a >> 16) as usize].e[((a >> 8) & 0xff) as usize];
        if *cell & abi::T24_GROUP == 0 {
            if self.groups >= abi::T8_GROUPS {
                return Err(XdpError::TablesFull {
                    what: "the /24s holding prefixes longer than /24".into(),
                    max: format!(
                        "{} such /24s (aggregate longer prefixes, or block whole /24s)",
                        abi::T8_GROUPS
                    ),
                });
            }
            self.t8[self.groups as usize] = Row { e: [*cell; 256] };
            *cell = abi::T24_GROUP | self.groups;
            self.groups += 1;
        }
        let group = (*cell & !abi::T24_GROUP) as usize;
        let first = (a & 0xff) as usize;
        let count = 1usize << (32 - len);
        self.t8[group].e[first..first + count].fill(slot);
        Ok(())
    }
}

/// The IPv6 part of one set.
struct V6Layout {
    /// The buckets that list a length; every other one is empty.
    buckets: FastMap<u32, abi::V6Bucket>,
    /// Lengths the binary search covers, shortest first.
    lens: Vec<u8>,
    /// Hash entries: every prefix, and the search's markers.
    entries: FastMap<(u8, u128), u32>,
}

/// Buckets for every prefix of /32 or longer; the binary search only for what buckets cannot
/// answer: prefixes in full buckets, and prefixes shorter than /32. A source goes to the
/// search only when its bucket is full (then every prefix that can cover it is in the search)
/// or when no prefix of its bucket covers it (then only a shorter one can), so markers are
/// needed for those prefixes alone.
fn v6_layout(placed: &FastMap<(u8, u128), u32>) -> V6Layout {
    let buckets = fill_buckets(placed);
    let full = |a: u128| {
        buckets
            .get(&abi::v6_bucket((a >> 96) as u32))
            .is_some_and(|b| b.count == abi::V6_BUCKET_FULL)
    };
    let searched: Vec<(u8, u128)> = placed
        .keys()
        .filter(|(len, a)| *len < 32 || full(*a))
        .copied()
        .collect();
    let mut lens: Vec<u8> = searched.iter().map(|(l, _)| *l).collect();
    lens.sort_unstable();
    lens.dedup();
    let entries = v6_entries(placed, &searched, &lens);
    V6Layout {
        buckets,
        lens,
        entries,
    }
}

/// Lists in each bucket the lengths of the prefixes of /32 or longer whose first 32 bits hash
/// to it, longest first; more than the bucket holds marks it full.
fn fill_buckets(placed: &FastMap<(u8, u128), u32>) -> FastMap<u32, abi::V6Bucket> {
    let mut buckets: FastMap<u32, abi::V6Bucket> = FastMap::default();
    for &(len, a) in placed.keys() {
        if len < 32 {
            continue;
        }
        let b = buckets.entry(abi::v6_bucket((a >> 96) as u32)).or_default();
        if b.count == abi::V6_BUCKET_FULL {
            continue;
        }
        let n = usize::from(b.count);
        if b.len[..n].contains(&len) {
            continue;
        }
        if n == abi::V6_BUCKET_LENS {
            b.count = abi::V6_BUCKET_FULL;
            continue;
        }
        // Keep the list longest first.
        let at = b.len[..n].iter().position(|&l| l < len).unwrap_or(n);
        b.len.copy_within(at..n, at + 1);
        b.len[at] = len;
        b.count += 1;
    }
    buckets
}

/// The indexes of `0..n` a binary search for index `k` probes before it reaches `k` and goes
/// to the longer half: where markers for a prefix of length index `k` must be.
fn search_path(n: usize, k: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut lo, mut hi) = (0isize, n as isize - 1);
    while lo <= hi {
        let mid = ((lo + hi) / 2) as usize;
        match mid.cmp(&k) {
            std::cmp::Ordering::Equal => break,
            std::cmp::Ordering::Less => {
                out.push(mid);
                lo = mid as isize + 1;
            }
            std::cmp::Ordering::Greater => hi = mid as isize - 1,
        }
    }
    out
}

/// The IPv6 hash of one set: every prefix with its own slot, and the markers on the search
/// paths to the `searched` ones with the slot of the longest prefix covering the marker (0
/// for none).
fn v6_entries(
    placed: &FastMap<(u8, u128), u32>,
    searched: &[(u8, u128)],
    lens: &[u8],
) -> FastMap<(u8, u128), u32> {
    let mut out: FastMap<(u8, u128), u32> = placed.clone();
    let best = |len_idx: usize, a: u128| {
        lens[..=len_idx]
            .iter()
            .rev()
            .find_map(|&l| placed.get(&(l, mask6(a, l))).copied())
            .unwrap_or(0)
    };
    for &(len, a) in searched {
        let Some(k) = lens.iter().position(|&l| l == len) else {
            continue;
        };
        for m in search_path(lens.len(), k) {
            let key = (lens[m], mask6(a, lens[m]));
            out.entry(key).or_insert_with(|| best(m, a));
        }
    }
    out
}

fn mask6(a: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(len)))
    }
}

fn v6_key(len: u32, addr: [u8; 16]) -> V6Key {
    V6Key { len, addr }
}

fn rule_of_slot(s: &Slot) -> Option<TableRule> {
    let len = u8::try_from(s.prefixlen).ok()?;
    let addr = if s.flags & abi::SLOT_V6 != 0 {
        IpAddr::V6(Ipv6Addr::from(s.addr))
    } else {
        IpAddr::V4(Ipv4Addr::new(s.addr[0], s.addr[1], s.addr[2], s.addr[3]))
    };
    Some(TableRule {
        net: IpNet::new(addr, len).ok()?,
        allow: s.flags & abi::SLOT_ALLOW != 0,
        expires_ns: s.expires_ns,
        origin: ((s.flags >> abi::SLOT_ORIGIN_SHIFT) & 3) as u8,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn masks_ipv6_addresses_to_their_length() {
        let a = u128::from("2001:db8:aaaa:bbbb::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(mask6(a, 0), 0);
        assert_eq!(mask6(a, 128), a);
        assert_eq!(
            Ipv6Addr::from(mask6(a, 48)),
            "2001:db8:aaaa::".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn ipv6_binary_search_finds_the_longest_prefix() {
        // The program's search, over the entries the builder makes.
        let lens: Vec<u8> = vec![16, 32, 48, 64, 96, 112, 128];
        let net = |s: &str| {
            let n: ipnet::Ipv6Net = s.parse().unwrap();
            (n.prefix_len(), u128::from(n.network()))
        };
        let mut placed = FastMap::default();
        placed.insert(net("2001::/16"), 1);
        placed.insert(net("2001:db8:1::/48"), 2);
        placed.insert(net("2001:db8:1:2::/64"), 3);
        placed.insert(net("2001:db8:1:2::7/128"), 4);
        placed.insert(net("2001:db8:9::/48"), 5);
        placed.insert(net("2001:db8:1:2:3::/96"), 6);
        placed.insert(net("2001:db8:1:2:3:4::/112"), 7);
        let searched: Vec<(u8, u128)> = placed.keys().copied().collect();
        let entries = v6_entries(&placed, &searched, &lens);
        let search = |addr: &str| {
            let a = u128::from(addr.parse::<Ipv6Addr>().unwrap());
            let (mut lo, mut hi, mut best) = (0isize, lens.len() as isize - 1, 0);
            for _ in 0..8 {
                if lo > hi {
                    break;
                }
                let mid = ((lo + hi) / 2) as usize;
                match entries.get(&(lens[mid], mask6(a, lens[mid]))) {
                    Some(&v) => {
                        if v != 0 {
                            best = v;
                        }
                        lo = mid as isize + 1;
                    }
                    None => hi = mid as isize - 1,
                }
            }
            best
        };
        assert_eq!(search("2001:db8:1:2::7"), 4);
        assert_eq!(search("2001:db8:1:2::8"), 3);
        assert_eq!(search("2001:db8:1:2:3:4::1"), 7);
        assert_eq!(search("2001:db8:1:2:3:0:5:1"), 6);
        assert_eq!(search("2001:db8:1:2:3:5::1"), 3);
        assert_eq!(search("2001:db8:1:3::1"), 2);
        assert_eq!(search("2001:db8:9::1"), 5);
        assert_eq!(search("2001:db8:8::1"), 1);
        assert_eq!(search("2002::1"), 0);
        // Every path of 129 lengths takes at most 8 steps.
        assert!((0..129).all(|k| search_path(129, k).len() < 8));
    }

    #[test]
    fn buckets_list_lengths_longest_first_until_full() {
        let mut placed = FastMap::default();
        let top: u128 = 0x2001_0db8 << 96;
        for (i, len) in [48u8, 128, 64, 32, 48, 20].iter().enumerate() {
            placed.insert((*len, top | (i as u128) << 40), 1);
        }
        let b = fill_buckets(&placed)[&abi::v6_bucket(0x2001_0db8)];
        assert_eq!(b.count, 4, "{b:?}");
        assert_eq!(&b.len[..4], &[128, 64, 48, 32]);
        for len in 33..=40u8 {
            placed.insert((len, top), 1);
        }
        assert_eq!(
            fill_buckets(&placed)[&abi::v6_bucket(0x2001_0db8)].count,
            abi::V6_BUCKET_FULL
        );
    }

    #[test]
    fn origins_follow_the_flags() {
        assert_eq!(origin_of(0), 0);
        assert_eq!(origin_of(abi::RULE_F_CONFIG), 1);
        assert_eq!(origin_of(abi::RULE_F_AUTO), 2);
        assert_eq!(origin_of(abi::RULE_F_FLEET | abi::RULE_F_AUTO), 3);
    }

    #[test]
    fn dir_24_8_paints_longest_prefix_last() {
        let mut t24 = vec![Row { e: [0; 256] }; abi::T24_ROWS as usize];
        let mut t8 = vec![Row { e: [0; 256] }; 4];
        let mut d = Dir248 {
            t24: &mut t24,
            t8: &mut t8,
            groups: 0,
        };
        let ip = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
        d.paint(ip("198.18.0.0"), 15, 1).unwrap();
        d.paint(ip("198.18.7.0"), 24, 2).unwrap();
        d.paint(ip("198.18.7.128"), 25, 3).unwrap();
        d.paint(ip("198.18.7.200"), 32, 4).unwrap();
        assert_eq!(d.lookup(ip("198.19.255.255")), 1);
        assert_eq!(d.lookup(ip("198.20.0.0")), 0);
        assert_eq!(d.lookup(ip("198.18.7.1")), 2);
        assert_eq!(d.lookup(ip("198.18.7.129")), 3);
        assert_eq!(d.lookup(ip("198.18.7.200")), 4);
        assert_eq!(d.groups, 1);
    }
}
