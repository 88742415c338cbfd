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
#define VIGIL_ABI_VERSION 3

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

/* Value of the allow and block tries. The prefix length is repeated in the value so the
 * program can retry a shorter prefix when the longest match has expired. */
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

/* Key of the per-source rate table: IPv4 sources are stored as IPv4-mapped IPv6. */
struct vigil_src_key {
	__u8 addr[16];
};

/* Token bucket kept in nanoseconds of credit: one packet costs ns_per_packet. Keeping the
 * bucket in time units avoids a multiplication that could overflow. */
struct vigil_bucket {
	__u64 credit_ns;
	__u64 last_ns;
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
	__u32 _pad;
};

#define VIGIL_MODE_NATIVE 1u
#define VIGIL_MODE_GENERIC 2u

struct vigil_counter {
	__u64 packets;
	__u64 bytes;
};

#endif /* VIGIL_ABI_H */
