// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Vigil's XDP program: allowlist ▸ blocklist ▸ per-source packet rate ▸ SYN guard ▸ pass.
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

#ifndef READ_ONCE
#define READ_ONCE(x) (*(const volatile typeof(x) *)&(x))
#endif

#include "vigil_abi.h"

/* How many expired rules in a row the program steps over before it gives up on a lookup.
 * The daemon sweeps expired rules every second, so more than one is rare. */
#define VIGIL_EXPIRY_RETRIES 4
#define VIGIL_MAX_VLAN_TAGS 2

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* The rule store (see vigil_abi.h): written and read by userspace only. Exact-match hashes:
 * longest-prefix matching is the lookup tables' job. */
#define RULE_STORE(name, key_type, entries)                                                 \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_HASH);                                            \
		__type(key, key_type);                                                      \
		__type(value, struct vigil_rule);                                           \
		__uint(max_entries, entries);                                               \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                       \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                        \
	} name SEC(".maps")

RULE_STORE(vigil_blk4, struct vigil_lpm_v4, 1 << 20);
RULE_STORE(vigil_blk6, struct vigil_lpm_v6, 1 << 20);
RULE_STORE(vigil_alw4, struct vigil_lpm_v4, 1 << 16);
RULE_STORE(vigil_alw6, struct vigil_lpm_v6, 1 << 16);

/* The lookup tables, two sets each. Userspace writes them through mmap. */
#define TABLE(name, value_type, entries)                                                    \
	struct {                                                                            \
		__uint(type, BPF_MAP_TYPE_ARRAY);                                           \
		__type(key, __u32);                                                         \
		__type(value, value_type);                                                  \
		__uint(max_entries, entries);                                               \
		__uint(map_flags, BPF_F_MMAPABLE);                                          \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                        \
	} name SEC(".maps")

TABLE(vigil_t24, struct vigil_row, 2 * VIGIL_T24_ROWS);
TABLE(vigil_t8, struct vigil_row, 2 * VIGIL_T8_GROUPS);
TABLE(vigil_slot, struct vigil_slot, 2 * VIGIL_MAX_SLOTS);
TABLE(vigil_tbl, struct vigil_tables, 1);
TABLE(vigil_v6b, struct vigil_v6_bucket, 2 * VIGIL_V6_BUCKETS);

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct vigil_v6_key);
	__type(value, struct vigil_v6_val);
	__uint(max_entries, 2 * (1 << 20));
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_h6 SEC(".maps");

/* Per-CPU rate sketch: no lock and no shared cache line between CPUs, so a source's limit
 * holds per CPU (see docs/xdp.md). Sized by userspace at load time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct vigil_bucket);
	__uint(max_entries, VIGIL_RATE_ROWS << 16);
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
		*now = bpf_ktime_get_coarse_ns();
	return *now;
}

static __always_inline struct vigil_slot *slot_at(__u32 set, __u32 idx)
{
	__u32 key = set * VIGIL_MAX_SLOTS + idx;

	return idx ? bpf_map_lookup_elem(&vigil_slot, &key) : NULL;
}

/* Whether an unexpired rule of one list covers the address, starting from the slot the
 * tables gave (`up` picks the list's chain): an expired rule uncovers the next shorter one. */
static __always_inline int chain_active(__u32 set, __u32 idx, int allow, __u64 *now)
{
#pragma unroll
	for (int i = 0; i < VIGIL_EXPIRY_RETRIES; i++) {
		struct vigil_slot *s = slot_at(set, idx);

		if (!s)
			return 0;
		if (s->expires_ns == 0 || clock_ns(now) < s->expires_ns)
			return 1;
		idx = allow ? s->allow_up : s->block_up;
	}
	return 0;
}

/* IPv4: one row read in vigil_t24, and a second in vigil_t8 for a /24 with longer prefixes. */
static __always_inline __u32 lookup_v4(__u32 set, __be32 saddr)
{
	__u32 a = bpf_ntohl(saddr);
	__u32 key = set * VIGIL_T24_ROWS + (a >> 16);
	struct vigil_row *row = bpf_map_lookup_elem(&vigil_t24, &key);
	__u32 v;

	if (!row)
		return 0;
	v = row->e[(a >> 8) & 0xff];
	if (!(v & VIGIL_T24_GROUP))
		return v;
	key = set * VIGIL_T8_GROUPS + (v & (VIGIL_T8_GROUPS - 1));
	row = bpf_map_lookup_elem(&vigil_t8, &key);
	return row ? row->e[a & 0xff] : 0;
}

static __always_inline __u64 mask_bits(__u64 x, __s32 bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 64)
		return x;
	return x & ~(~0ULL >> bits);
}

/* IPv6: binary search on the prefix lengths present (Waldvogel et al.), one hash probe per
 * step, so at most 8 probes for any mix of lengths. A hit at a length sends the search to the
 * longer half; entries on the way to longer prefixes are markers that carry the slot of the
 * longest real prefix under them, so falling back from a failed longer probe is right. */
/* One probe of the IPv6 hash for the source's first `len` bits: 0 when the set has no entry
 * there, else the entry's slot + 1 (a marker without a prefix under it gives 1). */
static __always_inline __u32 probe_v6(__u32 set, __u32 len, __u64 hi_bits, __u64 lo_bits)
{
	struct vigil_v6_key key = { .len = len };
	__u64 h = bpf_cpu_to_be64(mask_bits(hi_bits, len));
	__u64 l = bpf_cpu_to_be64(mask_bits(lo_bits, (__s32)len - 64));
	struct vigil_v6_val *v;

	__builtin_memcpy(&key.addr[0], &h, 8);
	__builtin_memcpy(&key.addr[8], &l, 8);
	v = bpf_map_lookup_elem(&vigil_h6, &key);
	return v ? v->slot[set & 1] : 0;
}

static __always_inline __u32 search_v6(__u32 set, const struct vigil_tables *t, __u64 hi_bits,
				       __u64 lo_bits)
{
	const struct vigil_v6_lens *lens = &t->v6[set & 1];
	__s32 lo = 0, hi = (__s32)lens->count - 1;
	__u32 best = 0;

	for (int i = 0; i < VIGIL_V6_STEPS && lo <= hi; i++) {
		__u32 mid = (__u32)(lo + hi) >> 1;
		__u32 v;

		if (mid >= VIGIL_V6_LENS)
			break;
		v = probe_v6(set, lens->len[mid], hi_bits, lo_bits);
		if (v) {
			if (v > 1)
				best = v - 1;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return best;
}

/* IPv6: the source's /32 bucket first (the lengths that can cover it, longest first; a hit,
 * even on a marker, is the longest match), the binary search when the bucket is full or
 * when only a prefix shorter than /32 could still cover the source. */
static __always_inline __u32 lookup_v6(__u32 set, const struct vigil_tables *t,
				       const struct in6_addr *addr)
{
	const struct vigil_v6_lens *lens = &t->v6[set & 1];
	struct vigil_v6_bucket *b;
	__u64 hi_bits, lo_bits;
	__u32 key, n;

	__builtin_memcpy(&hi_bits, &addr->s6_addr[0], 8);
	__builtin_memcpy(&lo_bits, &addr->s6_addr[8], 8);
	hi_bits = bpf_be64_to_cpu(hi_bits);
	lo_bits = bpf_be64_to_cpu(lo_bits);
	key = set * VIGIL_V6_BUCKETS + (((__u32)(hi_bits >> 32) * 0x9e3779b1u) >> 12);
	b = bpf_map_lookup_elem(&vigil_v6b, &key);
	if (!b)
		return 0;
	n = b->count;
	if (n != VIGIL_V6_BUCKET_FULL) {
		for (__u32 i = 0; i < VIGIL_V6_BUCKET_LENS && i < n; i++) {
			__u32 v = probe_v6(set, b->len[i], hi_bits, lo_bits);

			if (v)
				return v - 1;
		}
		/* lens->len is shortest first: nothing shorter than /32 means nothing else. */
		if (lens->count == 0 || lens->len[0] >= 32)
			return 0;
	}
	return search_v6(set, t, hi_bits, lo_bits);
}

/* The rule verdict for the slot the tables gave: allowlist first, then blocklist. */
static __always_inline __u32 rule_verdict(__u32 set, __u32 idx, int allow_used, __u64 *now)
{
	struct vigil_slot *s = slot_at(set, idx);
	__u32 allow, block;

	if (!s)
		return VIGIL_R_PASS;
	allow = (s->flags & VIGIL_SLOT_ALLOW) ? idx : s->allow_up;
	block = (s->flags & VIGIL_SLOT_ALLOW) ? s->block_up : idx;
	if (allow_used && allow && chain_active(set, allow, 1, now))
		return VIGIL_R_ALLOWLISTED;
	if (block && chain_active(set, block, 0, now))
		return VIGIL_R_BLOCKED;
	return VIGIL_R_PASS;
}

/* Per-CPU count-min sketch of token buckets: a source hashes to one bucket per row and
 * passes only when every one of them has credit, so colliding sources can only make each
 * other stricter, never let a source past its rate. Returns 1 when the packet is over. */
static __always_inline int over_rate(const struct vigil_config *cfg, __u64 src, __u64 *now)
{
	struct vigil_bucket *b[VIGIL_RATE_ROWS];
	__u32 bits = cfg->rate_bits;
	__u64 t, cost = cfg->ns_per_packet;
	int over = 0;

	if (!cfg->rate_enabled || cost == 0 || bits == 0 || bits > 24)
		return 0;
	t = clock_ns(now);
#pragma unroll
	for (int r = 0; r < VIGIL_RATE_ROWS; r++) {
		/* Multiply-shift hashing, one odd constant per row. */
		__u64 k = r ? 0xc2b2ae3d27d4eb4fULL : 0x9e3779b97f4a7c15ULL;
		__u32 idx = (__u32)((src * k) >> (64 - bits)) + ((__u32)r << bits);
		__u64 credit;

		b[r] = bpf_map_lookup_elem(&vigil_rate, &idx);
		if (!b[r])
			return 0;
		/* A bucket never touched has last_ns 0: it refills to a full burst. */
		credit = b[r]->credit_ns;
		if (t > b[r]->last_ns)
			credit += t - b[r]->last_ns;
		if (credit > cfg->burst_ns)
			credit = cfg->burst_ns;
		b[r]->credit_ns = credit;
		b[r]->last_ns = t;
		if (credit < cost)
			over = 1;
	}
	if (over)
		return 1;
#pragma unroll
	for (int r = 0; r < VIGIL_RATE_ROWS; r++)
		b[r]->credit_ns -= cost;
	return 0;
}

static __always_inline struct vigil_config *config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vigil_cfg, &zero);
}

static __always_inline struct vigil_tables *tables(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&vigil_tbl, &zero);
}

#include "syn_guard.h"

/* The verdict for a source, whichever its family: `v6` non-NULL for IPv6. */
static __always_inline __u32 verdict_src(__be32 v4, const struct in6_addr *v6)
{
	struct vigil_config *cfg = config();
	struct vigil_tables *t = tables();
	__u32 set, idx = 0, reason = VIGIL_R_PASS;
	__u64 now = 0, key;

	if (!cfg || !t)
		return VIGIL_R_PASS;
	/* Read once: the whole packet uses the set it saw first. */
	set = READ_ONCE(t->generation) & 1;
	if (v6 && t->rules_v6[set])
		idx = lookup_v6(set, t, v6);
	else if (!v6 && t->rules_v4[set])
		idx = lookup_v4(set, v4);
	if (idx)
		reason = rule_verdict(set, idx, v6 ? cfg->allow_v6_used : cfg->allow_v4_used, &now);
	if (reason != VIGIL_R_PASS)
		return reason;

	if (v6) {
		__u64 hi, lo;

		__builtin_memcpy(&hi, &v6->s6_addr[0], 8);
		__builtin_memcpy(&lo, &v6->s6_addr[8], 8);
		key = hi ^ (lo * 0xff51afd7ed558ccdULL);
	} else {
		key = v4;
	}
	return over_rate(cfg, key, &now) ? VIGIL_R_RATE_LIMITED : VIGIL_R_PASS;
}

/* A TCP segment the rules let through meets the SYN guard, when one is configured. The program
 * is built twice: with the guard (vigil_syn.o, loaded when [xdp.syn_guard] is configured) and
 * without its code (vigil.o, -DVIGIL_NO_SYN_GUARD_CODE): same maps and pins, and a kernel whose
 * verifier refuses the guard still gets every other verdict. */
static __always_inline __u32 then_syn_guard(struct xdp_md *ctx, __u32 reason, __u64 off,
					    __u64 l4_off, __u32 v6)
{
#ifdef VIGIL_NO_SYN_GUARD_CODE
	return reason;
#else
	struct vigil_config *cfg;

	if (reason != VIGIL_R_PASS)
		return reason;
	cfg = config();
	if (!cfg || cfg->syn_guards == 0)
		return reason;
	return v6 ? vigil_syn_guard6(ctx, off, l4_off) : vigil_syn_guard4(ctx, off, l4_off);
#endif
}

static __always_inline __u32 verdict_v4(struct xdp_md *ctx, __u64 off)
{
	struct iphdr *ip = ptr_at(ctx, off, sizeof(*ip));
	__u32 hdr_len, reason;

	if (!ip || ip->version != 4 || ip->ihl < 5)
		return VIGIL_R_MALFORMED;
	hdr_len = ip->ihl * 4;
	/* Options included: the whole header must be in the frame. */
	if (!ptr_at(ctx, off, hdr_len) || bpf_ntohs(ip->tot_len) < hdr_len)
		return VIGIL_R_MALFORMED;
	reason = verdict_src(ip->saddr, NULL);
	/* A later fragment carries no TCP header to judge. */
	if (ip->protocol != IPPROTO_TCP || (ip->frag_off & bpf_htons(IP_OFFSET)))
		return reason;
	return then_syn_guard(ctx, reason, off, off + hdr_len, 0);
}

static __always_inline __u32 verdict_v6(struct xdp_md *ctx, __u64 off)
{
	struct ipv6hdr *ip6 = ptr_at(ctx, off, sizeof(*ip6));
	__u32 reason;

	if (!ip6 || ip6->version != 6)
		return VIGIL_R_MALFORMED;
	reason = verdict_src(0, &ip6->saddr);
	/* Extension headers are not walked: such a segment is the stack's to judge. */
	if (ip6->nexthdr != IPPROTO_TCP)
		return reason;
	return then_syn_guard(ctx, reason, off, off + sizeof(*ip6), 1);
}

/* Parses L2 (Ethernet, up to two 802.1Q/802.1ad tags) and returns the verdict reason. */
static __always_inline __u32 vigil_verdict(struct xdp_md *ctx)
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
	case VIGIL_R_SYN_GUARD_DROP:
		return XDP_DROP;
	case VIGIL_R_SYN_COOKIE:
		return XDP_TX;
	default:
		return XDP_PASS;
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
