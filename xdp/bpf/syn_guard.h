/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The SYN guard: SYN cookies answered from XDP for guarded listening ports (see vigil_abi.h).
 *
 * Armed, a SYN never reaches the TCP stack: the program computes the kernel's own SYN cookie
 * (bpf_tcp_raw_gen_syncookie_*), encodes the client's window scale, SACK and ECN in the
 * timestamp the way the kernel does, and sends the SYN-ACK back out of the interface it came
 * in on (XDP_TX). The client's ACK is checked with bpf_tcp_raw_check_syncookie_* and, when
 * valid, passed to netfilter's SYN proxy, which validates it again, opens the connection to
 * the local listener and splices the two. Segments of connections the host already has a
 * socket for pass untouched; everything else aimed at the port is dropped. A spoofed flood
 * thus costs the box one XDP run per packet and no state at all.
 *
 * Included by vigil.c after its maps and ptr_at().
 */
#ifndef VIGIL_SYN_GUARD_H
#define VIGIL_SYN_GUARD_H

#include <linux/tcp.h>
#include <linux/in.h>

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8
#define TCP_MAX_WSCALE 14
/* The kernel's timestamp cookie (net/ipv4/syncookies.c): the low 6 bits of TSval carry the
 * client's window scale (0xf: none), SACK and ECN. */
#define TS_OPT_WSCALE_MASK 0xf
#define TS_OPT_SACK (1 << 4)
#define TS_OPT_ECN (1 << 5)
#define TSMASK 0x3f
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define IP_DF 0x4000

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_synp SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct vigil_syn_state);
	__uint(max_entries, VIGIL_SYN_GUARDS + 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vigil_syns SEC(".maps");

#ifndef VIGIL_NO_SYN_GUARD_CODE
/* The packet's network header, whichever its family, for the helpers that want one. */
struct l3 {
	void *ip;     /* struct iphdr or struct ipv6hdr, copied out of the packet */
	__u64 off;    /* offset of the network header */
	__u64 l4_off; /* offset of the TCP header */
	int v6;
};

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/*
 * `x` for a helper's size argument, 1 <= x <= 64, in a form whose bounds every verifier keeps:
 * ((x - 1) & 63) + 1 is x itself, and the empty asm hides x from the compiler so the mask stays
 * in the program. 6.1's verifier loses the bounds of comparisons the compiler made on a copy of
 * a register, and refuses a size it cannot bound (or one that may be 0).
 */
static __always_inline __u32 size_1_64(__u32 x)
{
	asm volatile("" : "+r"(x));
	return ((x - 1) & 63) + 1;
}

/* The one's-complement sum of a TCP pseudo-header (addresses in network order, as in the
 * packet), to be added to the sum of the segment. */
static __always_inline __u64 pseudo_sum(const struct l3 *n, const void *ip, __u32 tcp_len)
{
	__u64 sum = bpf_htonl(tcp_len) + bpf_htonl(IPPROTO_TCP);
	const __u32 *a;

	if (n->v6) {
		a = (const __u32 *)&((const struct ipv6hdr *)ip)->saddr;
#pragma unroll
		for (int i = 0; i < 8; i++)
			sum += a[i];
	} else {
		sum += ((const struct iphdr *)ip)->saddr;
		sum += ((const struct iphdr *)ip)->daddr;
	}
	return sum;
}

/* What the client's SYN asked for, from its options. */
struct syn_opts {
	__u32 tsval;  /* network order; valid when ts */
	__u8 wscale;  /* TS_OPT_WSCALE_MASK when absent */
	__u8 sack;
	__u8 ts;
};

/* The SYN's options, copied out of the packet and zero-padded: every index the parser reads
 * is masked to 63, and the buffer is large enough for any of them. */
#define SYN_OPTS_ROOM 72
struct syn_optbuf {
	__u8 b[SYN_OPTS_ROOM];
};

/* Reads the option at `i` into `acc` and returns where the next one starts (64: stop). A
 * global function: the verifier checks it once for any `i`, so the walk below costs it 40
 * calls rather than every combination of option lengths. */
__attribute__((noinline)) __u32 vigil_syn_opt(const struct syn_optbuf *o, __u32 i, __u32 len,
					      struct syn_opts *acc)
{
	__u8 kind, size;

	if (!o || !acc || i >= len || i >= 40)
		return 64;
	kind = o->b[i & 63];
	if (kind == TCPOPT_EOL)
		return 64;
	if (kind == TCPOPT_NOP)
		return i + 1;
	size = o->b[(i + 1) & 63];
	if (size < 2 || i + size > len)
		return 64;
	if (kind == TCPOPT_WINDOW && size == 3) {
		__u8 w = o->b[(i + 2) & 63];

		acc->wscale = w < TCP_MAX_WSCALE ? w : TCP_MAX_WSCALE;
	} else if (kind == TCPOPT_SACK_PERM && size == 2) {
		acc->sack = 1;
	} else if (kind == TCPOPT_TIMESTAMP && size == 10) {
		acc->ts = 1;
		__builtin_memcpy(&acc->tsval, &o->b[(i + 2) & 63], 4);
	}
	return i + size;
}

/* Walks the SYN's options (at most 40 bytes, so at most 40 steps). */
static __always_inline void parse_syn_opts(const struct syn_optbuf *o, __u32 len,
					   struct syn_opts *out)
{
	__u32 i = 0;

	out->tsval = 0;
	out->wscale = TS_OPT_WSCALE_MASK;
	out->sack = 0;
	out->ts = 0;
	for (int step = 0; step < 40 && i < 40; step++)
		i = vigil_syn_opt(o, i, len, out);
}

/* The reply's TCP header with options, built on the stack. Returns its length. */
static __always_inline __u32 synack_tcp(__u8 *buf, const struct tcphdr *syn, __u32 cookie,
					const struct syn_opts *so, const struct vigil_config *cfg,
					int v6)
{
	struct tcphdr *th = (struct tcphdr *)buf;
	__be32 *opt = (__be32 *)(buf + sizeof(*th));
	__u32 mss = v6 ? cfg->syn_mss6 : cfg->syn_mss4;
	__u32 n = 0;
	int ecn = syn->ece && syn->cwr;

	__builtin_memset(buf, 0, 40);
	th->source = syn->dest;
	th->dest = syn->source;
	th->seq = bpf_htonl(cookie);
	th->ack_seq = bpf_htonl(bpf_ntohl(syn->seq) + 1);
	th->syn = 1;
	th->ack = 1;
	th->ece = ecn && so->ts;
	/* Window 0, as netfilter's SYN proxy answers: the client sends nothing but its ACK until
	 * the proxy has the real connection and opens the window. */
	th->window = 0;
	opt[n++] = bpf_htonl((TCPOPT_MSS << 24) | (4 << 16) | (mss & 0xffff));
	/* Without a timestamp to carry them, the cookie cannot keep the options. */
	if (so->ts) {
		__u32 ts = (__u32)(bpf_ktime_get_ns() / 1000000) & ~TSMASK;

		ts |= so->wscale;
		if (so->sack)
			ts |= TS_OPT_SACK;
		if (ecn)
			ts |= TS_OPT_ECN;
		opt[n++] = bpf_htonl(((so->sack ? TCPOPT_SACK_PERM : TCPOPT_NOP) << 24) |
				     ((so->sack ? 2 : TCPOPT_NOP) << 16) | (TCPOPT_TIMESTAMP << 8) |
				     10);
		opt[n++] = bpf_htonl(ts);
		opt[n++] = so->tsval;
		if (so->wscale != TS_OPT_WSCALE_MASK)
			opt[n++] = bpf_htonl((TCPOPT_NOP << 24) | (TCPOPT_WINDOW << 16) | (3 << 8) |
					     (cfg->syn_wscale & 0xff));
	}
	th->doff = 5 + n;
	return sizeof(*th) + 4 * n;
}

/* A SYN as copied out of the packet: header and options, contiguous. */
struct syn_copy {
	struct tcphdr h;
	struct syn_optbuf o;
};

/*
 * Answers a SYN with a SYN cookie: VIGIL_R_SYN_COOKIE when the packet has become the SYN-ACK,
 * VIGIL_R_SYN_GUARD_DROP for a SYN the guard will not answer (IP options or fragments, data,
 * bad checksum), VIGIL_R_PASS when the frame cannot be resized (the stack's own SYN cookies
 * take over). `v6` is a constant in each instance.
 */
static __always_inline __u32 syn_answer(struct xdp_md *ctx, const struct l3 *n,
					const struct vigil_config *cfg, const int v6)
{
	const __u32 ip_len = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	struct syn_copy in;
	__u8 out[80];
	struct tcphdr *reply = (struct tcphdr *)(out + ip_len);
	struct syn_opts so;
	__u32 tcp_len, seg_len, out_tcp, optlen;
	struct ethhdr *eth;
	__s64 v;
	__u64 sum;
	int delta;

	__builtin_memset(&in, 0, sizeof(in));
	if (v6) {
		struct ipv6hdr *ip6 = n->ip;

		seg_len = bpf_ntohs(ip6->payload_len);
	} else {
		struct iphdr *ip4 = n->ip;

		if (ip4->ihl != 5 || (ip4->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return VIGIL_R_SYN_GUARD_DROP;
		if (csum_fold(bpf_csum_diff(0, 0, (__be32 *)ip4, sizeof(*ip4), 0)) != 0)
			return VIGIL_R_SYN_GUARD_DROP;
		seg_len = bpf_ntohs(ip4->tot_len) - sizeof(*ip4);
	}
	if (bpf_xdp_load_bytes(ctx, n->l4_off, &in.h, sizeof(in.h)))
		return VIGIL_R_SYN_GUARD_DROP;
	tcp_len = in.h.doff * 4;
	/* A SYN with data (TCP Fast Open) is not answered: the cookie would lose the data. */
	if (tcp_len < sizeof(in.h) || tcp_len > 60 || seg_len != tcp_len)
		return VIGIL_R_SYN_GUARD_DROP;
	optlen = tcp_len - sizeof(in.h);
	if (optlen > 0 &&
	    bpf_xdp_load_bytes(ctx, n->l4_off + sizeof(in.h), in.o.b, size_1_64(optlen)))
		return VIGIL_R_SYN_GUARD_DROP;
	sum = pseudo_sum(n, n->ip, tcp_len);
	v = bpf_csum_diff(0, 0, (__be32 *)&in, size_1_64(tcp_len), 0);
	if (v < 0 || csum_fold(sum + (__u64)v) != 0)
		return VIGIL_R_SYN_GUARD_DROP;

	if (v6)
		v = bpf_tcp_raw_gen_syncookie_ipv6(n->ip, &in.h, size_1_64(tcp_len));
	else
		v = bpf_tcp_raw_gen_syncookie_ipv4(n->ip, &in.h, size_1_64(tcp_len));
	if (v < 0)
		return VIGIL_R_SYN_GUARD_DROP;
	parse_syn_opts(&in.o, tcp_len - sizeof(in.h), &so);

	/* The reply, network header then TCP, built on the stack and written in one store. */
	out_tcp = synack_tcp((__u8 *)reply, &in.h, (__u32)v, &so, cfg, v6);
	if (v6) {
		struct ipv6hdr *o6 = (struct ipv6hdr *)out, *i6 = n->ip;

		*(__be32 *)o6 = bpf_htonl(0x60000000);
		o6->payload_len = bpf_htons(out_tcp);
		o6->nexthdr = IPPROTO_TCP;
		o6->hop_limit = cfg->syn_ttl;
		o6->saddr = i6->daddr;
		o6->daddr = i6->saddr;
	} else {
		struct iphdr *o4 = (struct iphdr *)out, *i4 = n->ip;

		__builtin_memset(o4, 0, sizeof(*o4));
		o4->version = 4;
		o4->ihl = 5;
		o4->tot_len = bpf_htons(sizeof(*o4) + out_tcp);
		o4->frag_off = bpf_htons(IP_DF);
		o4->ttl = cfg->syn_ttl;
		o4->protocol = IPPROTO_TCP;
		o4->saddr = i4->daddr;
		o4->daddr = i4->saddr;
		o4->check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)o4, sizeof(*o4), 0));
	}
	sum = pseudo_sum(n, out, out_tcp);
	v = bpf_csum_diff(0, 0, (__be32 *)reply, size_1_64(out_tcp), 0);
	if (v < 0)
		return VIGIL_R_SYN_GUARD_DROP;
	reply->check = csum_fold(sum + (__u64)v);

	/* Resize the frame to the reply (a SYN's options may be shorter or longer than ours). */
	delta = (int)(n->off + ip_len + out_tcp) - (int)(ctx->data_end - ctx->data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return VIGIL_R_PASS;
	if (bpf_xdp_store_bytes(ctx, n->off, out, ip_len + out_tcp))
		return VIGIL_R_SYN_GUARD_DROP;
	eth = ptr_at(ctx, 0, sizeof(*eth));
	if (!eth)
		return VIGIL_R_SYN_GUARD_DROP;
	{
		__u8 mac[ETH_ALEN];

		__builtin_memcpy(mac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
	}
	return VIGIL_R_SYN_COOKIE;
}

/* Whether the host has a socket for the segment's connection, other than the listener
 * (established, in its handshake, or in TIME_WAIT). */
static __always_inline int has_connection(struct xdp_md *ctx, const struct l3 *n,
					  const struct tcphdr *th, const int v6)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u32 size;
	int found;

	if (v6) {
		struct ipv6hdr *ip6 = n->ip;

		__builtin_memcpy(t.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(t.ipv6.daddr, &ip6->daddr, 16);
		t.ipv6.sport = th->source;
		t.ipv6.dport = th->dest;
		size = sizeof(t.ipv6);
	} else {
		struct iphdr *ip4 = n->ip;

		t.ipv4.saddr = ip4->saddr;
		t.ipv4.daddr = ip4->daddr;
		t.ipv4.sport = th->source;
		t.ipv4.dport = th->dest;
		size = sizeof(t.ipv4);
	}
	sk = bpf_skc_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	found = sk->state != BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return found;
}

/*
 * A window probe standing in for a lost handshake ACK. The SYN-ACK offers a zero window (no
 * data before the proxy has the connection), so a client whose ACK was lost has nothing to
 * send but zero-window probes, and a probe carries the sequence number before the next one
 * (seq = ISN, not ISN + 1): its cookie does not check, and without this the client would
 * probe a dead end until it gave up. A bare ACK whose cookie checks with seq + 1 is that
 * probe; it is rewritten into the ACK it stands for (seq + 1, checksum updated) and passed,
 * and the proxy completes the handshake and opens the window. It proves as much as the ACK.
 * Called only for a segment whose cookie does not check as it is: one off in seq shifts the
 * cookie's MSS index by one, so unless the SYN's MSS had the table's last index (IPv4 MSS
 * >= 1460, the Ethernet case; IPv6 >= 8940) a probe can also check as an ACK with the
 * neighbouring MSS, and one packet cannot tell which it is. That case is taken as the ACK,
 * as netfilter's SYN proxy takes it, and a lost ACK stalls there as it does behind netfilter.
 */
static __always_inline int lost_ack_probe(struct xdp_md *ctx, const struct l3 *n,
					  const struct tcphdr *th)
{
	struct tcphdr probe;
	__u32 l4_len;
	__be32 from, to;
	__sum16 check;
	long err;
	__s64 v;

	if (th->fin || th->psh || th->urg)
		return 0;
	if (n->v6)
		l4_len = bpf_ntohs(((const struct ipv6hdr *)n->ip)->payload_len) -
			 (__u32)(n->l4_off - n->off - sizeof(struct ipv6hdr));
	else
		l4_len = bpf_ntohs(((const struct iphdr *)n->ip)->tot_len) -
			 (__u32)(n->l4_off - n->off);
	if (l4_len != (__u32)th->doff * 4)
		return 0; /* it carries data: not a probe */
	__builtin_memcpy(&probe, th, sizeof(probe));
	probe.seq = bpf_htonl(bpf_ntohl(th->seq) + 1);
	err = n->v6 ? bpf_tcp_raw_check_syncookie_ipv6(n->ip, &probe) :
		      bpf_tcp_raw_check_syncookie_ipv4(n->ip, &probe);
	if (err != 0)
		return 0;
	from = th->seq;
	to = probe.seq;
	/* RFC 1624: HC' = ~(~HC + ~m + m') */
	v = bpf_csum_diff(&from, sizeof(from), &to, sizeof(to), (__u16)~th->check);
	if (v < 0)
		return 0;
	check = csum_fold((__u64)v);
	if (bpf_xdp_store_bytes(ctx, n->l4_off + offsetof(struct tcphdr, seq), &to, sizeof(to)) ||
	    bpf_xdp_store_bytes(ctx, n->l4_off + offsetof(struct tcphdr, check), &check,
				sizeof(check)))
		return 0;
	return 1;
}

/* The guard's verdict for a TCP segment the rules let through (see the top of this file). */
static __always_inline __u32 syn_guard(struct xdp_md *ctx, __u32 off, __u32 l4_off, const int v6)
{
	struct l3 local = { .off = off, .l4_off = l4_off, .v6 = v6 };
	struct vigil_config *cfg = config();
	struct vigil_syn_state *st;
	/* Copies, not packet pointers: the verifier keeps a copy's bounds through every path,
	 * where a packet pointer's range can be lost to how the compiler spills it. */
	union {
		struct iphdr v4;
		struct ipv6hdr v6;
	} ip;
	struct tcphdr tcp, *th = &tcp;
	__u32 port, g, limit, r;
	__u64 now;

	if (!cfg || off > 64 || l4_off > 128)
		return VIGIL_R_PASS;
	if (bpf_xdp_load_bytes(ctx, off, &ip, v6 ? sizeof(ip.v6) : sizeof(ip.v4)) ||
	    bpf_xdp_load_bytes(ctx, l4_off, &tcp, sizeof(tcp)))
		return VIGIL_R_PASS;
	local.ip = &ip;
	port = bpf_ntohs(th->dest);
	{
		__u32 *gp = bpf_map_lookup_elem(&vigil_synp, &port);

		if (!gp || *gp == 0 || *gp > VIGIL_SYN_GUARDS)
			return VIGIL_R_PASS;
		g = *gp;
	}
	st = bpf_map_lookup_elem(&vigil_syns, &g);
	if (!st)
		return VIGIL_R_PASS;
	limit = cfg->syn_limit[(g - 1) & (VIGIL_SYN_GUARDS - 1)];
	now = bpf_ktime_get_ns();

	if (th->syn && !th->ack) {
		if (now - st->window_ns >= 1000000000ULL / VIGIL_SYN_WINDOWS_PER_SEC) {
			st->window_ns = now;
			st->window_syns = 0;
		}
		st->window_syns++;
		st->syns++;
		if (limit == 0 || st->window_syns > limit)
			st->armed_until_ns = now + cfg->syn_hold_ns;
		if (limit != 0 && now >= st->armed_until_ns)
			return VIGIL_R_PASS;
		r = (th->rst || th->fin) ? VIGIL_R_SYN_GUARD_DROP : syn_answer(ctx, &local, cfg, v6);
		if (r == VIGIL_R_SYN_COOKIE)
			st->cookies++;
		else if (r == VIGIL_R_SYN_GUARD_DROP)
			st->dropped++;
		return r;
	}
	if (limit != 0 && now >= st->armed_until_ns)
		return VIGIL_R_PASS;
	if (has_connection(ctx, &local, th, v6))
		return VIGIL_R_PASS;
	/* No connection: only the ACK that completes a cookie handshake may pass. */
	if (th->ack && !th->syn && !th->rst) {
		long err = v6 ? bpf_tcp_raw_check_syncookie_ipv6(local.ip, th) :
				bpf_tcp_raw_check_syncookie_ipv4(local.ip, th);

		if (err == 0 || lost_ack_probe(ctx, &local, th)) {
			st->cookie_acks++;
			return VIGIL_R_SYN_COOKIE_ACK;
		}
	}
	st->dropped++;
	return VIGIL_R_SYN_GUARD_DROP;
}

/* One global function per family: each is verified once, on its own, rather than once per
 * path of the rule lookups that lead to it. */
__attribute__((noinline)) __u32 vigil_syn_guard4(struct xdp_md *ctx, __u32 off, __u32 l4_off)
{
	return syn_guard(ctx, off, l4_off, 0);
}

__attribute__((noinline)) __u32 vigil_syn_guard6(struct xdp_md *ctx, __u32 off, __u32 l4_off)
{
	return syn_guard(ctx, off, l4_off, 1);
}

#endif /* VIGIL_NO_SYN_GUARD_CODE */
#endif /* VIGIL_SYN_GUARD_H */
