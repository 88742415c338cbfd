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
#define VIGIL_ABI_VERSION 5

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
	VIGIL_R_SYN_COOKIE = 6,  /* SYN to a guarded port answered with a SYN cookie (XDP_TX) */
	VIGIL_R_SYN_COOKIE_ACK = 7, /* ACK carrying a valid cookie: passed to the SYN proxy */
	VIGIL_R_SYN_GUARD_DROP = 8, /* guarded port, no connection, no valid cookie: dropped */
	VIGIL_R_MAX = 9,
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

/*
 * SYN guard. Up to VIGIL_SYN_GUARDS listening ports; vigil_synp maps a port to its guard
 * (1-based, 0 = unguarded). Each CPU counts a guard's SYNs in windows of 1/8 s; a window over
 * syn_limit arms the guard on that CPU for syn_hold_ns (syn_limit 0: always armed). Armed, the
 * program answers SYNs itself with SYN cookies and lets through only segments of connections
 * the host has a socket for and ACKs that carry a valid cookie (the SYN proxy in netfilter
 * completes those handshakes); unarmed, the port's traffic goes to the stack as any other.
 */
#define VIGIL_SYN_GUARDS 16
#define VIGIL_SYN_WINDOWS_PER_SEC 8

/* Per CPU and guard (vigil_syns, index = guard). */
struct vigil_syn_state {
	__u64 window_ns;      /* start of the current window (CLOCK_MONOTONIC) */
	__u64 armed_until_ns; /* armed while now < this */
	__u64 window_syns;    /* SYNs in the current window */
	__u64 syns;           /* SYNs seen, armed or not */
	__u64 cookies;        /* SYN-ACKs with a cookie sent */
	__u64 cookie_acks;    /* ACKs with a valid cookie passed */
	__u64 dropped;        /* segments the armed guard dropped */
};

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
	/* SYN guard (see above); syn_guards 0 turns it off. */
	__u32 syn_guards;    /* guards in use */
	__u32 syn_mss4;      /* MSS announced in SYN-ACKs, IPv4 and IPv6 */
	__u32 syn_mss6;
	__u32 syn_wscale;    /* window scale announced (the SYN proxy's must match) */
	__u32 syn_ttl;       /* TTL / hop limit of SYN-ACKs */
	__u32 syn_capable;   /* 1 when the loaded program has the SYN guard (set by userspace) */
	__u64 syn_hold_ns;   /* how long a window over the limit keeps the guard armed */
	__u32 syn_port[VIGIL_SYN_GUARDS];  /* the port of each guard (index = guard - 1) */
	__u32 syn_limit[VIGIL_SYN_GUARDS]; /* SYNs per window per CPU before arming; 0 = always */
};

#define VIGIL_MODE_NATIVE 1u
#define VIGIL_MODE_GENERIC 2u

struct vigil_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* VIGIL_ABI_H */
