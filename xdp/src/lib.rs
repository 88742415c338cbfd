//! Vigil's XDP layer: the program (C, in `bpf/`, compiled by `build.rs` and embedded here), its
//! ABI twin, and a typed API over the maps it pins under `/sys/fs/bpf/vigil/<iface>/`.
//!
//! Verdict order in the program: allowlist ▸ blocklist ▸ per-source packet rate ▸ SYN guard
//! (TCP to a guarded port) ▸ pass.
//! The lists are looked up in tables built from the rules (see [`tables`]).

pub mod abi;
mod attach;
mod cidr;
pub mod clock;
mod error;
pub mod frames;
mod mapped;
pub mod maps;
mod ruleset;
pub mod syn;
mod sys;
pub mod tables;
pub mod testrun;

pub use attach::{
    AttachOptions, AttachedMode, Attachment, ModePolicy, PROGRAM, attach, attached_mode, detach,
    pin_dir,
};
pub use cidr::parse_cidr;
pub use error::XdpError;
pub use maps::{Counters, List, RateLimit, RuleCounts, RuleEntry, VigilMaps};
pub use syn::{SynGuard, SynGuardPort, SynPortStatus};
pub use tables::TableMemory;

/// Where pins live unless configured otherwise.
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/vigil";

/// The compiled program, embedded so nothing at run time needs clang. Without the SYN guard's
/// code: what is loaded unless the guard is asked for.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil.o"));

/// The same program with the SYN guard (kernel 6.0 or later; see docs/xdp.md). Same maps and
/// pins as [`OBJECT`].
pub static OBJECT_SYN_GUARD: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vigil_syn.o"));

/// A program that drops everything: the reference cost for the benchmark.
pub static BARE_DROP_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bare_drop.o"));

/// For the far end of a test veth pair (section `xdp`): drops frames for
/// [`frames::PHANTOM_MAC`] and passes the rest (see `bpf/test_peer.c`).
pub static TEST_PEER_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test_peer.o"));
