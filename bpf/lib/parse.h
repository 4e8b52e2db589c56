/* SPDX-License-Identifier: Apache-2.0 */
/* Packet parsing: IPv4 and the L4 headers both families share (IPv6 is lib/ipv6.h).
 *
 * Two ways of reading, one definition of what is read:
 *   - direct packet access (parse_ipv4_direct): skb->data..data_end, bounds-checked per
 *     header, no helper call and no copy; nearly every packet has its headers in the
 *     linear area;
 *   - bpf_skb_load_bytes() into stack copies (parse_ipv4_at, parse_l4): any skb (also a
 *     non-linear one) and any offset, e.g. the packet embedded in an ICMP error.
 * The L4 helpers (l4_tcp, l4_ports, l4_icmp, l4_icmp6) take a header either way.
 *
 * Results are PARSE_OK, PARSE_SLOW (direct access could not see the headers: use the
 * load_bytes path, which then judges the packet exactly) or a drop reason (drop.h).
 */
#ifndef MEMBRANE_PARSE_H
#define MEMBRANE_PARSE_H

#include "common.h"
#include "drop.h"

#define PARSE_OK 0
/* The headers are not all in the linear area; parse with the load_bytes path instead.
 * Never a drop reason (those are > 0). */
#define PARSE_SLOW -1

static __always_inline void l4_tcp(struct flow_l4 *l, const struct tcphdr *th)
{
	l->sport = bpf_ntohs(th->source);
	l->dport = bpf_ntohs(th->dest);
	/* The flags byte follows doff/res1 at offset 13. */
	l->tcp_flags = ((const __u8 *)th)[13];
	l->policy_port = l->dport;
}

/* UDP and SCTP both start with source port, destination port. */
static __always_inline void l4_ports(struct flow_l4 *l, const __be16 *ports)
{
	l->sport = bpf_ntohs(ports[0]);
	l->dport = bpf_ntohs(ports[1]);
	l->policy_port = l->dport;
}

/* ICMP and ICMPv6 share their first 8 bytes' shape: type, code, checksum, then (for
 * echo) identifier and sequence. The echo id goes where conntrack.h expects it. */
static __always_inline void l4_icmp_any(struct flow_l4 *l, const __u8 *h, __u8 echo_request,
					__u8 echo_reply)
{
	__u16 id = bpf_ntohs(*(const __be16 *)(h + 4));

	l->icmp_type = h[0];
	l->icmp_code = h[1];
	if (h[0] == echo_request)
		l->sport = id;
	else if (h[0] == echo_reply)
		l->dport = id;
	/* Kubernetes policy names no ICMP ports: only any-protocol entries (and
	 * explicit every-port entries) match, with port 0. */
	l->policy_port = 0;
}

static __always_inline void l4_icmp(struct flow_l4 *l, const struct icmphdr *ih)
{
	l4_icmp_any(l, (const __u8 *)ih, ICMP_ECHO, ICMP_ECHOREPLY);
}

static __always_inline void l4_icmp6(struct flow_l4 *l, const struct icmp6hdr *ih)
{
	l4_icmp_any(l, (const __u8 *)ih, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
}

/* Is this the family's ICMP echo (request or reply)? icmp_proto is IPPROTO_ICMP or
 * IPPROTO_ICMPV6, a constant once inlined. */
static __always_inline int icmp_is_echo(__u8 icmp_proto, __u8 type)
{
	if (icmp_proto == IPPROTO_ICMP)
		return type == ICMP_ECHO || type == ICMP_ECHOREPLY;
	return type == ICMPV6_ECHO_REQUEST || type == ICMPV6_ECHO_REPLY;
}

/* Reads the L4 ports (or ICMP id) at off into l with bpf_skb_load_bytes (any skb, and
 * any offset: the ICMP error's embedded header too). icmp_proto: the family's ICMP
 * (IPPROTO_ICMP or IPPROTO_ICMPV6); the other one is an unknown protocol here. Returns
 * PARSE_OK or a drop reason. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct flow_l4 *l,
				    __u8 icmp_proto)
{
	switch (l->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)) < 0)
			return DROP_CT_INVALID_HDR;
		l4_tcp(l, &th);
		return PARSE_OK;
	}
	case IPPROTO_UDP:
	case MEMBRANE_IPPROTO_SCTP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return DROP_CT_INVALID_HDR;
		l4_ports(l, ports);
		return PARSE_OK;
	}
	}
	if (l->protocol == icmp_proto) {
		struct icmphdr ih; /* 8 bytes: the shape of an icmp6hdr's first 8 too */

		if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)) < 0)
			return DROP_CT_INVALID_HDR;
		if (icmp_proto == IPPROTO_ICMP)
			l4_icmp(l, &ih);
		else
			l4_icmp6(l, (const struct icmp6hdr *)&ih);
		return PARSE_OK;
	}
	l->policy_port = 0;
	return PARSE_OK;
}

/* Parses the IPv4 header at off (and its L4 ports). Returns PARSE_OK or a drop
 * reason; *l4off is set to where the L4 header starts. */
static __always_inline int parse_ipv4_at(struct __sk_buff *skb, __u32 off, struct flow4 *f,
					 __u32 *l4off, int invalid_reason)
{
	struct iphdr ip;
	__u32 ihl;

	if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0)
		return invalid_reason;
	if (ip.version != 4 || ip.ihl < 5)
		return invalid_reason;
	ihl = ip.ihl * 4;
	f->saddr = ip.saddr;
	f->daddr = ip.daddr;
	f->l4.protocol = ip.protocol;
	*l4off = off + ihl;
	if (bpf_ntohs(ip.frag_off) & 0x1fff) {
		/* A non-first fragment has no L4 header. It is not tracked; policy decides
		 * it with port 0 (so only any-protocol entries allow it). */
		f->l4.fragment = 1;
		return PARSE_OK;
	}
	return parse_l4(skb, *l4off, &f->l4, IPPROTO_ICMP);
}

/* The outer headers of the packet (IPv4 at ETH_HLEN, then L4) by direct packet access:
 * no helper call and no copy. Same result as parse_ipv4_at(skb, ETH_HLEN, ...,
 * DROP_INVALID) whenever it returns PARSE_OK or a drop reason; PARSE_SLOW when a header
 * it needs is not entirely within skb->data..data_end (a non-linear skb, or a packet
 * too short, which the slow path then judges exactly as before). f and *l4off are
 * written only when the result is final, so the slow path starts from a clean flow.
 *
 * Verifier notes:
 *   - No bpf_skb_pull_data: it invalidates every packet pointer (data/data_end must be
 *     re-read after it) and may reallocate the skb for a packet this program only
 *     reads; the load_bytes fallback handles the rare non-linear header instead.
 *   - The L4 header is at a variable offset (IHL). ihl is a 4-bit field times 4, so
 *     the verifier knows it is at most 60; ip + ihl is then a packet pointer with a
 *     bounded variable offset, and its own "+ size > data_end" test is what proves the
 *     L4 reads (the IPv4 header's test does not carry over to them).
 *   - Each protocol tests exactly the size the load_bytes path copies (tcphdr 20,
 *     ports 4, icmphdr 8), so a short header falls to the slow path and gets the same
 *     DROP_CT_INVALID_HDR as before. */
static __always_inline int parse_ipv4_direct(struct __sk_buff *skb, struct flow4 *f,
					     __u32 *l4off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	void *l4;
	__u32 ihl;

	if ((void *)(ip + 1) > data_end)
		return PARSE_SLOW;
	if (ip->version != 4 || ip->ihl < 5)
		return DROP_INVALID;
	ihl = ip->ihl * 4;
	l4 = (void *)ip + ihl;

	if (bpf_ntohs(ip->frag_off) & 0x1fff) {
		/* A non-first fragment: no L4 header (see parse_ipv4_at). */
		f->saddr = ip->saddr;
		f->daddr = ip->daddr;
		f->l4.protocol = ip->protocol;
		f->l4.fragment = 1;
		*l4off = ETH_HLEN + ihl;
		return PARSE_OK;
	}
	switch (ip->protocol) {
	case IPPROTO_TCP:
		if (l4 + sizeof(struct tcphdr) > data_end)
			return PARSE_SLOW;
		l4_tcp(&f->l4, l4);
		break;
	case IPPROTO_UDP:
	case MEMBRANE_IPPROTO_SCTP:
		if (l4 + 2 * sizeof(__be16) > data_end)
			return PARSE_SLOW;
		l4_ports(&f->l4, l4);
		break;
	case IPPROTO_ICMP:
		if (l4 + sizeof(struct icmphdr) > data_end)
			return PARSE_SLOW;
		l4_icmp(&f->l4, l4);
		break;
	default:
		f->l4.policy_port = 0;
	}
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->l4.protocol = ip->protocol;
	*l4off = ETH_HLEN + ihl;
	return PARSE_OK;
}

#endif /* MEMBRANE_PARSE_H */
