// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * For the far end of a test veth pair. Frames addressed to the phantom station that spoofed
 * floods claim to come from (02:de:ad:be:ef:01, `frames::PHANTOM_MAC`) are dropped at once, as
 * a router would carry them off to hosts that are not there; everything else passes. It also
 * lets the pair deliver XDP_TX frames at all: veth hands them to its peer only when the peer
 * runs XDP too.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int test_peer(struct xdp_md *ctx)
{
	const __u8 phantom[ETH_ALEN] = { 0x02, 0xde, 0xad, 0xbe, 0xef, 0x01 };
	__u8 *data = (void *)(long)ctx->data;
	__u8 *end = (void *)(long)ctx->data_end;

	if (data + ETH_ALEN > end)
		return XDP_PASS;
	for (int i = 0; i < ETH_ALEN; i++)
		if (data[i] != phantom[i])
			return XDP_PASS;
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
