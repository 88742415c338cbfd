//! The Rust twin of `bpf/vigil_abi.h`. Field for field the same layout; the test
//! `abi_matches_btf` checks sizes and offsets against the compiled object's BTF.

/// Bumped with `VIGIL_ABI_VERSION` in the header whenever a layout changes.
pub const ABI_VERSION: u32 = 5;
/// Bytes of operator text kept with each rule.
pub const REASON_LEN: usize = 48;
/// Bytes of the fleet box name kept with a rule learned from the fleet.
pub const ORIGIN_LEN: usize = 32;

/// Verdict reasons; each indexes the per-CPU counter array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u32)]
pub enum Reason {
    Pass = 0,
    Allowlisted = 1,
    Blocked = 2,
    RateLimited = 3,
    Malformed = 4,
    NonIp = 5,
    SynCookie = 6,
    SynCookieAck = 7,
    SynGuardDrop = 8,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Pass,
        Reason::Allowlisted,
        Reason::Blocked,
        Reason::RateLimited,
        Reason::Malformed,
        Reason::NonIp,
        Reason::SynCookie,
        Reason::SynCookieAck,
        Reason::SynGuardDrop,
    ];
    /// Number of counter slots (`VIGIL_R_MAX`).
    pub const COUNT: u32 = 9;

    /// The stable name used in `vigilctl stats` and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Pass => "pass",
            Reason::Allowlisted => "allowlisted",
            Reason::Blocked => "blocked",
            Reason::RateLimited => "rate_limited",
            Reason::Malformed => "malformed",
            Reason::NonIp => "non_ip",
            Reason::SynCookie => "syn_cookie",
            Reason::SynCookieAck => "syn_cookie_ack",
            Reason::SynGuardDrop => "syn_guard_drop",
        }
    }

    /// What the program does with such a packet: `pass`, `drop`, or `answer` (a SYN the SYN
    /// guard turned into its SYN-ACK and sent back).
    pub fn verdict(self) -> &'static str {
        if self.drops() {
            "drop"
        } else if self == Reason::SynCookie {
            "answer"
        } else {
            "pass"
        }
    }

    /// Whether the program drops packets with this reason.
    pub fn drops(self) -> bool {
        matches!(
            self,
            Reason::Blocked | Reason::RateLimited | Reason::Malformed | Reason::SynGuardDrop
        )
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LpmV4 {
    pub prefixlen: u32,
    pub addr: [u8; 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LpmV6 {
    pub prefixlen: u32,
    pub addr: [u8; 16],
}

/// Value of the allow and block tries (`struct vigil_rule`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// CLOCK_MONOTONIC deadline in nanoseconds; 0 = never expires.
    pub expires_ns: u64,
    pub created_unix: u64,
    pub prefixlen: u32,
    pub flags: u32,
    pub reason: [u8; REASON_LEN],
    /// NUL-padded name of the fleet box a `RULE_F_FLEET` rule came from.
    pub origin: [u8; ORIGIN_LEN],
}

/// `VIGIL_RULE_F_AUTO`: the rule was added by an automatic ban.
pub const RULE_F_AUTO: u32 = 1;
/// `VIGIL_RULE_F_CONFIG`: the rule comes from the config file and is replaced on reload.
pub const RULE_F_CONFIG: u32 = 2;
/// `VIGIL_RULE_F_FLEET`: the rule was learned from the fleet; `origin` names the box.
pub const RULE_F_FLEET: u32 = 4;

/// Rows of `vigil_t24` per table set (`VIGIL_T24_ROWS`): 256 /24s per row, 2^24 in all.
pub const T24_ROWS: u32 = 1 << 16;
/// Rows of `vigil_t8` per table set (`VIGIL_T8_GROUPS`): /24s that hold longer prefixes.
pub const T8_GROUPS: u32 = 1 << 15;
/// Rule slots per table set (`VIGIL_MAX_SLOTS`); slot 0 means "no rule".
pub const MAX_SLOTS: u32 = (1 << 20) + (1 << 16) + 1;
/// `VIGIL_T24_GROUP`: a `vigil_t24` entry naming a row of `vigil_t8`.
pub const T24_GROUP: u32 = 0x8000_0000;
/// `VIGIL_V6_LENS`: room for every IPv6 prefix length.
pub const V6_LENS: usize = 132;
/// `VIGIL_V6_STEPS`: binary search steps over the IPv6 prefix lengths.
pub const V6_STEPS: u32 = 8;
/// `VIGIL_ORIGINS`: operator, config, auto-ban, fleet.
pub const ORIGINS: usize = 4;
/// `VIGIL_RATE_ROWS`: rows of the per-CPU rate sketch.
pub const RATE_ROWS: u32 = 2;

/// `VIGIL_SLOT_ALLOW`: an allowlist rule.
pub const SLOT_ALLOW: u32 = 1;
/// `VIGIL_SLOT_V6`: an IPv6 rule.
pub const SLOT_V6: u32 = 2;
/// `VIGIL_SLOT_ORIGIN_SHIFT`: the origin index sits in bits 8..15 of a slot's flags.
pub const SLOT_ORIGIN_SHIFT: u32 = 8;

/// 256 entries of `vigil_t24` or `vigil_t8` (`struct vigil_row`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    pub e: [u32; 256],
}

/// A rule as the packet path sees it (`struct vigil_slot`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub expires_ns: u64,
    pub addr: [u8; 16],
    pub prefixlen: u32,
    pub flags: u32,
    pub allow_up: u32,
    pub block_up: u32,
}

/// `VIGIL_V6_BUCKETS`: IPv6 buckets (hashes of a /32) per set.
pub const V6_BUCKETS: u32 = 1 << 20;
/// `VIGIL_V6_BUCKET_LENS`: lengths a bucket lists before it is full.
pub const V6_BUCKET_LENS: usize = 7;
/// `VIGIL_V6_BUCKET_FULL`: the count of a bucket with more lengths than it lists.
pub const V6_BUCKET_FULL: u8 = 0xff;

/// The lengths (/32 or longer, longest first) of the IPv6 prefixes whose first 32 bits hash
/// to this bucket (`struct vigil_v6_bucket`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Bucket {
    pub count: u8,
    pub len: [u8; V6_BUCKET_LENS],
}

/// The bucket of an IPv6 address's first 32 bits, as `lookup_v6()` in vigil.c computes it.
pub fn v6_bucket(top32: u32) -> u32 {
    top32.wrapping_mul(0x9e37_79b1) >> 12
}

/// Key of the IPv6 table (`struct vigil_v6_key`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct V6Key {
    pub len: u32,
    pub addr: [u8; 16],
}

/// Value of the IPv6 table (`struct vigil_v6_val`): per set, 0 for no entry, else slot + 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct V6Val {
    pub slot: [u32; 2],
}

/// IPv6 prefix lengths of one set, shortest first (`struct vigil_v6_lens`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V6Lens {
    pub count: u32,
    pub len: [u8; V6_LENS],
}

/// The one element of `vigil_tbl` (`struct vigil_tables`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables {
    pub generation: u32,
    pub rules_v4: [u32; 2],
    pub rules_v6: [u32; 2],
    pub slots_used: [u32; 2],
    pub groups_used: [u32; 2],
    pub counts: [[u32; ORIGINS]; 2],
    /// Bit per set: a build of it started and has not finished (clear it whole next time).
    pub dirty: u32,
    /// Entries of `vigil_h6` per set (prefixes and markers).
    pub v6_entries: [u32; 2],
    pub v6: [V6Lens; 2],
    pub switched_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub credit_ns: u64,
    pub last_ns: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub abi_version: u32,
    pub rate_enabled: u32,
    pub ns_per_packet: u64,
    pub burst_ns: u64,
    pub attach_mode: u32,
    /// 1 when the IPv4 allowlist may hold entries (the program skips the lookup otherwise).
    pub allow_v4_used: u32,
    pub allow_v6_used: u32,
    /// log2 of the buckets per row of the per-CPU rate sketch.
    pub rate_bits: u32,
    /// SYN guard: guards in use (0 = off).
    pub syn_guards: u32,
    pub syn_mss4: u32,
    pub syn_mss6: u32,
    pub syn_wscale: u32,
    pub syn_ttl: u32,
    /// 1 when the loaded program carries the SYN guard (`OBJECT_SYN_GUARD`).
    pub syn_capable: u32,
    pub syn_hold_ns: u64,
    /// The port of each guard (index = guard - 1).
    pub syn_port: [u32; SYN_GUARDS],
    /// SYNs per window per CPU before a guard arms; 0 = always armed.
    pub syn_limit: [u32; SYN_GUARDS],
}

/// `VIGIL_SYN_GUARDS`: ports the SYN guard can cover.
pub const SYN_GUARDS: usize = 16;
/// `VIGIL_SYN_WINDOWS_PER_SEC`: the guard counts SYNs in windows of 1/8 s.
pub const SYN_WINDOWS_PER_SEC: u32 = 8;

/// Per CPU and guard (`struct vigil_syn_state`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynState {
    pub window_ns: u64,
    pub armed_until_ns: u64,
    pub window_syns: u64,
    pub syns: u64,
    pub cookies: u64,
    pub cookie_acks: u64,
    pub dropped: u64,
}

pub const MODE_NATIVE: u32 = 1;
pub const MODE_GENERIC: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

// SAFETY: each type is `repr(C)`, made only of integers and integer arrays, with no implicit
// padding (checked against the BTF layout in the tests), so every bit pattern is valid.
unsafe impl aya::Pod for LpmV4 {}
// SAFETY: as above.
unsafe impl aya::Pod for LpmV6 {}
// SAFETY: as above.
unsafe impl aya::Pod for Rule {}
// SAFETY: as above.
unsafe impl aya::Pod for Slot {}
// SAFETY: as above.
unsafe impl aya::Pod for V6Key {}
// SAFETY: as above.
unsafe impl aya::Pod for V6Val {}
// SAFETY: as above.
unsafe impl aya::Pod for Row {}
// SAFETY: as above.
unsafe impl aya::Pod for Bucket {}
// SAFETY: as above.
unsafe impl aya::Pod for Config {}
// SAFETY: as above.
unsafe impl aya::Pod for Counter {}
// SAFETY: as above.
unsafe impl aya::Pod for SynState {}
