/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ABI shared by the XDP program and userspace. Its Rust twin is xdp/src/abi.rs; the
 * test `abi_matches_btf` compares both against the BTF of the compiled object, so a field
 * changed here and not there fails the build's tests.
 *
 * Rules: fixed-width fields only, no implicit padding, flags as u32 (never bool).
 */
#ifndef VIGIL_ABI_H
#define VIGIL_ABI_H

#include <linux/types.h>

/* Bumped whenever a map key or value below changes layout. Written into the config map so
 * a daemon adopting pinned maps can refuse ones from an incompatible build. */
#define VIGIL_ABI_VERSION 4

#define VIGIL_REASON_LEN 48
#define VIGIL_ORIGIN_LEN 32

/* Verdict reasons; each indexes the per-CPU counter array. */
enum vigil_reason {
	VIGIL_R_PASS = 0,        /* no rule matched */
	VIGIL_R_ALLOWLISTED = 1, /* source in the allowlist: never dropped */
	VIGIL_R_BLOCKED = 2,     /* source in the blocklist */
	VIGIL_R_RATE_LIMITED = 3, /* source over its packet rate */
	VIGIL_R_MALFORMED = 4,   /* truncated or invalid L2/L3 header */
	VIGIL_R_NON_IP = 5,      /* not IPv4/IPv6 (ARP, LLDP...): passed */
	VIGIL_R_MAX = 6,
};

struct vigil_lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct vigil_lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of the allow and block rule stores (hashes keyed by vigil_lpm_v4/v6: prefix length
 * and network address), with everything operators see. The program does not read them; it
 * reads the lookup tables below, built from them. */
struct vigil_rule {
	__u64 expires_ns;   /* CLOCK_MONOTONIC (bpf_ktime_get_ns) deadline; 0 = never */
	__u64 created_unix; /* seconds since the epoch, for operators */
	__u32 prefixlen;
	__u32 flags;        /* VIGIL_RULE_F_* */
	__u8 reason[VIGIL_REASON_LEN]; /* NUL-padded operator text */
	__u8 origin[VIGIL_ORIGIN_LEN]; /* NUL-padded box name of a fleet rule, else empty */
};

#define VIGIL_RULE_F_AUTO 1u   /* added by an automatic ban, not by an operator */
#define VIGIL_RULE_F_CONFIG 2u /* comes from the config file; replaced on reload */
#define VIGIL_RULE_F_FLEET 4u  /* learned from the fleet; origin names the box */

/*
 * Lookup tables. Two complete sets (0 and 1) live side by side in each table map; the
 * program reads the set `vigil_tables.generation` names. Userspace builds the other set from the
 * rules, then flips `generation` with one aligned 4-byte store: a packet sees the old tables or the
 * new ones, never a half-built mix.
 *
 * IPv4 is DIR-24-8 (DPDK's rte_lpm): vigil_t24 is indexed by the top 16 bits and each of its
 * rows holds the 256 /24s under them (so 2^24 entries in all); an entry is 0 (no rule), a
 * rule slot, or VIGIL_T24_GROUP | g for a /24 that holds longer prefixes, whose 256 /32s are
 * row g of vigil_t8. IPv6 is a hash keyed by (length, masked address), searched by
 * binary search over the prefix lengths present in the set: besides one entry per prefix it
 * holds markers on the search path to longer prefixes, each naming the slot of the longest
 * prefix that covers it (0 if none).
 */
#define VIGIL_T24_ROWS (1u << 16)   /* rows of vigil_t24 per set */
#define VIGIL_T8_GROUPS (1u << 15)  /* rows of vigil_t8 per set: /24s holding longer prefixes */
#define VIGIL_MAX_SLOTS ((1u << 20) + (1u << 16) + 1) /* rule slots per set, slot 0 unused */
#define VIGIL_T24_GROUP 0x80000000u
#define VIGIL_V6_LENS 132           /* room for the 129 lengths 0..=128, rounded up */
#define VIGIL_V6_STEPS 8            /* binary search steps over at most 129 lengths */

struct vigil_row {
	__u32 e[256];
};

/* One rule as the packet path sees it. allow_up / block_up: the slot of the nearest rule of
 * that list covering this one (same length counts for a block under an allow), 0 = none;
 * the program follows them past expired rules to the next shorter prefix. */
struct vigil_slot {
	__u64 expires_ns;   /* CLOCK_MONOTONIC deadline; 0 = never */
	__u8 addr[16];      /* network address; IPv4 in the first 4 bytes */
	__u32 prefixlen;
	__u32 flags;        /* VIGIL_SLOT_* */
	__u32 allow_up;
	__u32 block_up;
};

#define VIGIL_SLOT_ALLOW 1u   /* an allowlist rule (else a blocklist rule) */
#define VIGIL_SLOT_V6 2u      /* an IPv6 rule */
/* Origin of the rule, for the counters kept beside the tables (bits 8..15). */
#define VIGIL_SLOT_ORIGIN_SHIFT 8

/* IPv6 buckets: one per hash of a /32 (2^20 per set). A bucket lists the lengths (/32 or
 * longer, longest first) of the prefixes whose first 32 bits hash to it, so a source is
 * probed only at lengths that can cover it: usually one probe, none for most misses. A
 * bucket with more than VIGIL_V6_BUCKET_LENS lengths says so (count 0xff) and the program
 * falls back to the binary search; so does a source no bucket prefix covers while prefixes
 * shorter than /32 are present. */
#define VIGIL_V6_BUCKETS (1u << 20)
#define VIGIL_V6_BUCKET_LENS 7
#define VIGIL_V6_BUCKET_FULL 0xff

struct vigil_v6_bucket {
	__u8 count;
	__u8 len[VIGIL_V6_BUCKET_LENS];
};

/* The IPv6 hash is shared by both sets: an entry holds each set's value, so a rebuild only
 * touches the entries that change, and never the half the program is reading. */
struct vigil_v6_key {
	__u32 len;          /* prefix length */
	__u8 addr[16];      /* address masked to the prefix length */
};

struct vigil_v6_val {
	__u32 slot[2];      /* per set: 0 = no entry in that set, else the slot + 1 */
};

struct vigil_v6_lens {
	__u32 count;        /* lengths present in the set */
	__u8 len[VIGIL_V6_LENS]; /* shortest first */
};

/* Rule counts per list (block, allow) and origin (operator, config, auto-ban, fleet), kept
 * by userspace at every insert and delete. */
#define VIGIL_ORIGINS 4

/* The one element of vigil_tbl, written only by userspace (through mmap). */
struct vigil_tables {
	__u32 generation;   /* the set packets read: 0 or 1 */
	__u32 rules_v4[2];  /* rules of each set by family, for the program's empty-set skip */
	__u32 rules_v6[2];
	__u32 slots_used[2];
	__u32 groups_used[2];
	__u32 counts[2][VIGIL_ORIGINS];
	__u32 dirty;        /* bit per set: a build started and did not finish */
	__u32 v6_entries[2]; /* entries of vigil_h6 per set (prefixes and markers) */
	struct vigil_v6_lens v6[2];
	__u64 switched_ns;  /* CLOCK_MONOTONIC of the last flip of generation */
};

/* Token bucket kept in nanoseconds of credit: one packet costs ns_per_packet. Keeping the
 * bucket in time units avoids a multiplication that could overflow. The rate state is a
 * per-CPU count-min sketch of these: VIGIL_RATE_ROWS rows of 1 << rate_bits buckets, a
 * source hashing to one bucket in each row; a packet passes when every one of its buckets
 * has credit. */
struct vigil_bucket {
	__u64 credit_ns;
	__u64 last_ns;
};

#define VIGIL_RATE_ROWS 2

struct vigil_config {
	__u32 abi_version;
	__u32 rate_enabled;  /* 0 or 1 */
	__u64 ns_per_packet; /* 1e9 / pps */
	__u64 burst_ns;      /* burst * ns_per_packet */
	__u32 attach_mode;   /* VIGIL_MODE_*: recorded by the daemon for status */
	/* 1 when the v4/v6 allowlist may hold entries, so the program can skip an empty trie.
	 * Set before an insert and cleared once the trie is empty. Only allowlists get this: a
	 * wrongly skipped allow lookup makes the program stricter, never more permissive. */
	__u32 allow_v4_used;
	__u32 allow_v6_used;
	__u32 rate_bits;     /* log2 of the buckets per row of the rate sketch */
};

#define VIGIL_MODE_NATIVE 1u
#define VIGIL_MODE_GENERIC 2u

struct vigil_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* VIGIL_ABI_H */
