// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Vigil's XDP program: allowlist ▸ blocklist ▸ per-source packet rate ▸ pass.
 *
 * Every packet access goes through ptr_at(), the one bounds-checked helper. Malformed IP
 * headers are dropped: the kernel would discard them anyway, and dropping here keeps a
 * crafted header from reaching code that trusts it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vigil_abi.h"

/* How many expired prefixes in a row the program steps over before it gives up on a
 * lookup. The daemon sweeps expired rules every second, so more than one is rare. */
#define VIGIL_EXPIRY_RETRIES 4
#define VIGIL_MAX_VLAN_TAGS 2

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct vigil_lpm_v4);
	__type(value, struct vigil_rule);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_blk4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct vigil_lpm_v6);
	__type(value, struct vigil_rule);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_blk6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct vigil_lpm_v4);
	__type(value, struct vigil_rule);
	__uint(max_entries, 1 << 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_alw4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct vigil_lpm_v6);
	__type(value, struct vigil_rule);
	__uint(max_entries, 1 << 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_alw6 SEC(".maps");

/* LRU: a flood of spoofed sources evicts old buckets instead of filling the table. Per-CPU
 * LRU lists (one shared key space) keep CPUs from contending on one list lock. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct vigil_src_key);
	__type(value, struct vigil_bucket);
	__uint(max_entries, 1 << 16);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_rate SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct vigil_counter);
	__uint(max_entries, VIGIL_R_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_cnt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct vigil_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_cfg SEC(".maps");

/* The one bounds-checked way to look at packet bytes. */
static __always_inline void *ptr_at(const struct xdp_md *ctx, __u64 off, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;

	if (data + off + len > end)
		return NULL;
	return data + off;
}

/* The clock is read once per packet, and only when something needs it: a rule with an
 * expiry or the rate limiter. */
static __always_inline __u64 clock_ns(__u64 *now)
{
	if (*now == 0)
		*now = bpf_ktime_get_ns();
	return *now;
}

/* Longest-prefix match that steps over expired rules to the next shorter prefix. */
static __always_inline int rule_active(struct vigil_rule *r, __u64 *now)
{
	return r->expires_ns == 0 || clock_ns(now) < r->expires_ns;
}

static __always_inline int match_v4(void *map, __be32 addr, __u64 *now)
{
	struct vigil_lpm_v4 key = { .prefixlen = 32 };

	__builtin_memcpy(key.addr, &addr, 4);
#pragma unroll
	for (int i = 0; i < VIGIL_EXPIRY_RETRIES; i++) {
		struct vigil_rule *r = bpf_map_lookup_elem(map, &key);

		if (!r)
			return 0;
		if (rule_active(r, now))
			return 1;
		if (r->prefixlen == 0 || r->prefixlen > 32)
			return 0;
		key.prefixlen = r->prefixlen - 1;
	}
	return 0;
}

static __always_inline int match_v6(void *map, const struct in6_addr *addr, __u64 *now)
{
	struct vigil_lpm_v6 key = { .prefixlen = 128 };

	__builtin_memcpy(key.addr, addr, 16);
#pragma unroll
	for (int i = 0; i < VIGIL_EXPIRY_RETRIES; i++) {
		struct vigil_rule *r = bpf_map_lookup_elem(map, &key);

		if (!r)
			return 0;
		if (rule_active(r, now))
			return 1;
		if (r->prefixlen == 0 || r->prefixlen > 128)
			return 0;
		key.prefixlen = r->prefixlen - 1;
	}
	return 0;
}

/* Token bucket per source. Returns 1 when the packet is over the source's rate. */
static __always_inline int over_rate(const struct vigil_config *cfg,
				     const struct vigil_src_key *src, __u64 *now)
{
	struct vigil_bucket *b;
	__u64 credit, t;

	if (!cfg || !cfg->rate_enabled || cfg->ns_per_packet == 0)
		return 0;

	t = clock_ns(now);
	b = bpf_map_lookup_elem(&vigil_rate, src);
	if (!b) {
		struct vigil_bucket fresh = { .last_ns = t };

		/* A new source starts with a full bucket, less this packet. */
		if (cfg->burst_ns >= cfg->ns_per_packet)
			fresh.credit_ns = cfg->burst_ns - cfg->ns_per_packet;
		bpf_map_update_elem(&vigil_rate, src, &fresh, BPF_ANY);
		return 0;
	}

	credit = b->credit_ns;
	/* Another CPU may have moved last_ns past our clock reading; never underflow. */
	if (t > b->last_ns)
		credit += t - b->last_ns;
	if (credit > cfg->burst_ns)
		credit = cfg->burst_ns;
	b->last_ns = t;
	if (credit < cfg->ns_per_packet) {
		b->credit_ns = credit;
		return 1;
	}
	b->credit_ns = credit - cfg->ns_per_packet;
	return 0;
}

static __always_inline struct vigil_config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vigil_cfg, &zero);
}

static __always_inline __u32 verdict_v4(const struct xdp_md *ctx, __u64 off)
{
	struct iphdr *ip = ptr_at(ctx, off, sizeof(*ip));
	struct vigil_src_key src = {};
	struct vigil_config *cfg;
	__u32 hdr_len;
	__u64 now = 0;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return VIGIL_R_MALFORMED;
	hdr_len = ip->ihl * 4;
	/* Options included: the whole header must be in the frame. */
	if (!ptr_at(ctx, off, hdr_len) || bpf_ntohs(ip->tot_len) < hdr_len)
		return VIGIL_R_MALFORMED;

	cfg = config();
	if ((!cfg || cfg->allow_v4_used) && match_v4(&vigil_alw4, ip->saddr, &now))
		return VIGIL_R_ALLOWLISTED;
	if (match_v4(&vigil_blk4, ip->saddr, &now))
		return VIGIL_R_BLOCKED;

	src.addr[10] = 0xff;
	src.addr[11] = 0xff;
	__builtin_memcpy(&src.addr[12], &ip->saddr, 4);
	if (over_rate(cfg, &src, &now))
		return VIGIL_R_RATE_LIMITED;
	return VIGIL_R_PASS;
}

static __always_inline __u32 verdict_v6(const struct xdp_md *ctx, __u64 off)
{
	struct ipv6hdr *ip6 = ptr_at(ctx, off, sizeof(*ip6));
	struct vigil_src_key src = {};
	struct vigil_config *cfg;
	__u64 now = 0;

	if (!ip6 || ip6->version != 6)
		return VIGIL_R_MALFORMED;

	cfg = config();
	if ((!cfg || cfg->allow_v6_used) && match_v6(&vigil_alw6, &ip6->saddr, &now))
		return VIGIL_R_ALLOWLISTED;
	if (match_v6(&vigil_blk6, &ip6->saddr, &now))
		return VIGIL_R_BLOCKED;

	__builtin_memcpy(src.addr, &ip6->saddr, 16);
	if (over_rate(cfg, &src, &now))
		return VIGIL_R_RATE_LIMITED;
	return VIGIL_R_PASS;
}

/* Parses L2 (Ethernet, up to two 802.1Q/802.1ad tags) and returns the verdict reason. */
static __always_inline __u32 vigil_verdict(const struct xdp_md *ctx)
{
	struct ethhdr *eth = ptr_at(ctx, 0, sizeof(*eth));
	__u64 off = sizeof(struct ethhdr);
	__be16 proto;

	if (!eth)
		return VIGIL_R_MALFORMED;
	proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < VIGIL_MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vlan = ptr_at(ctx, off, sizeof(*vlan));
		if (!vlan)
			return VIGIL_R_MALFORMED;
		proto = vlan->encapsulated_proto;
		off += sizeof(*vlan);
	}
	/* A third tag is not parsed; refusing it keeps IP from hiding behind it. */
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD))
		return VIGIL_R_MALFORMED;

	if (proto == bpf_htons(ETH_P_IP))
		return verdict_v4(ctx, off);
	if (proto == bpf_htons(ETH_P_IPV6))
		return verdict_v6(ctx, off);
	return VIGIL_R_NON_IP;
}

static __always_inline void count(const struct xdp_md *ctx, __u32 reason)
{
	struct vigil_counter *c = bpf_map_lookup_elem(&vigil_cnt, &reason);

	if (c) {
		c->packets += 1;
		c->bytes += ctx->data_end - ctx->data;
	}
}

SEC("xdp")
int vigil_xdp(struct xdp_md *ctx)
{
	__u32 reason = vigil_verdict(ctx);

	count(ctx, reason);
	switch (reason) {
	case VIGIL_R_BLOCKED:
	case VIGIL_R_RATE_LIMITED:
	case VIGIL_R_MALFORMED:
		return XDP_DROP;
	default:
		return XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
