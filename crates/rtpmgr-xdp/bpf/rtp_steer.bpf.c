// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * rtp_steer - XDP program of rtpmgr's AF_XDP receive path.
 *
 * Redirects RTP, and only RTP, to the AF_XDP socket bound to the receiving queue; everything else
 * goes on to the kernel stack (XDP_PASS). "RTP" means: Ethernet, at most one VLAN tag (802.1Q or
 * 802.1ad), IPv4 (not a fragment) or IPv6 (UDP as the first next header), UDP to one of the
 * destination ports in rtp_ports. RTP header validation is user space's job: a datagram to an RTP
 * port that is not RTP v2 is counted there as malformed, the same as on the socket path.
 *
 * Maps (names are the loader's contract, see crates/rtpmgr-xdp/src/steer.rs):
 *   xsks_map   XSKMAP       rx queue index -> AF_XDP socket
 *   rtp_ports  HASH         UDP destination port (host byte order) -> 1
 *   xdp_stats  PERCPU_ARRAY rx queue index -> struct rtp_steer_stats
 *
 * Built by crates/rtpmgr-xdp/build.rs with clang -O2 -g -target bpf; never committed as a binary.
 *
 * User-space sketch (what rtpmgr_xdp does with aya and xdpilone):
 *   load the object, attach "rtp_steer" to IFACE (native or skb mode),
 *   rtp_ports[5004] = 1, create a UMEM + socket bound to (IFACE, Q), xsks_map[Q] = socket fd,
 *   fill the fill ring, read the rx ring; on exit: xsks_map[Q] deleted, program detached.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/* Must match MAX_QUEUES and MAX_PORTS in src/steer.rs. */
#define RTP_STEER_MAX_QUEUES 64
#define RTP_STEER_MAX_PORTS 16

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* Per-queue counters; one copy per CPU, summed by user space. seen = redirected + passed. */
struct rtp_steer_stats {
	__u64 seen;       /* frames the program ran on */
	__u64 redirected; /* handed to the AF_XDP socket (or the redirect was attempted) */
	__u64 passed;     /* given to the kernel stack: not RTP, or no socket on this queue */
	__u64 malformed;  /* headers cut short or impossible (also counted in passed) */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, RTP_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, RTP_STEER_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} rtp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RTP_STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct rtp_steer_stats);
} xdp_stats SEC(".maps");

enum verdict { V_PASS, V_RTP, V_MALFORMED };

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

/* Classify one frame. Every header read is preceded by a bounds check against data_end: the
 * verifier rejects the program otherwise, and a short frame is malformed, not a crash. */
static __always_inline enum verdict classify(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	void *l3;
	__u16 proto;
	struct udphdr *udp;

	if ((void *)(eth + 1) > data_end)
		return V_MALFORMED;
	proto = bpf_ntohs(eth->h_proto);
	l3 = eth + 1;
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		struct vlan_tag *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return V_MALFORMED;
		proto = bpf_ntohs(tag->proto);
		l3 = tag + 1;
	}

	if (proto == ETH_P_IP) {
		struct iphdr *ip = l3;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			return V_MALFORMED;
		ihl = ip->ihl * 4;
		if (ip->version != 4 || ihl < sizeof(*ip))
			return V_MALFORMED;
		if (ip->protocol != IPPROTO_UDP)
			return V_PASS;
		/* Fragments go to the kernel, which reassembles them: only fragment 0 has a UDP header,
		 * and user space cannot put the pieces together. */
		if (ip->frag_off & bpf_htons(0x3fff))
			return V_PASS;
		udp = l3 + ihl;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = l3;

		if ((void *)(ip6 + 1) > data_end)
			return V_MALFORMED;
		if (ip6->version != 6)
			return V_MALFORMED;
		/* Extension headers (rare for RTP) are left to the kernel stack. */
		if (ip6->nexthdr != IPPROTO_UDP)
			return V_PASS;
		udp = (void *)(ip6 + 1);
	} else {
		return V_PASS;
	}

	if ((void *)(udp + 1) > data_end)
		return V_MALFORMED;
	{
		__u16 dport = bpf_ntohs(udp->dest);

		if (!bpf_map_lookup_elem(&rtp_ports, &dport))
			return V_PASS;
	}
	/* A UDP length shorter than its own header is impossible; user space checks the rest. */
	if (bpf_ntohs(udp->len) < sizeof(*udp))
		return V_MALFORMED;
	return V_RTP;
}

SEC("xdp")
int rtp_steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 queue = ctx->rx_queue_index;
	struct rtp_steer_stats *st = bpf_map_lookup_elem(&xdp_stats, &queue);
	enum verdict v = classify(data, data_end);

	/* Per-CPU values: plain increments, no atomics needed. */
	if (st)
		st->seen++;
	if (v == V_RTP) {
		/* The lower bits of flags are the action when xsks_map[queue] is empty (no socket bound
		 * to this queue): the frame goes to the kernel stack instead of being dropped. */
		long act = bpf_redirect_map(&xsks_map, queue, XDP_PASS);

		if (st) {
			if (act == XDP_REDIRECT)
				st->redirected++;
			else
				st->passed++;
		}
		return act;
	}
	if (st) {
		st->passed++;
		if (v == V_MALFORMED)
			st->malformed++;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual MIT/GPL";
