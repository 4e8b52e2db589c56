/* SPDX-License-Identifier: Apache-2.0 */
/* IPv6 parsing: the fixed header, the extension header chain, link-local control.
 *
 * An IPv6 packet is the fixed 40-byte header, then a chain of extension headers, each
 * naming the next, then the upper-layer header (TCP, UDP, SCTP, ICMPv6, ...). The
 * chain is walked here (ipv6_skip_exthdrs) over the headers RFC 8200 defines with a
 * common shape: hop-by-hop options, routing, fragment, destination options, and the
 * authentication header (RFC 4302, another length unit). ESP and anything unknown end
 * the walk: they are the "upper layer" as far as policy can see (port 0).
 *
 * Fragments are handled as IPv4's: a non-first fragment (fragment offset != 0) has no
 * upper-layer header, so the walk stops at its fragment header with that header's
 * next header as the protocol, l4.fragment set, port 0; conntrack does not track it and
 * policy decides it per packet. A first fragment (offset 0) carries the upper-layer
 * header and is parsed on through it, like an unfragmented packet.
 *
 * Verifier notes (the choices it forced):
 *   - The chain's length comes from the packet, so the walk is a loop with a constant
 *     bound, IPV6_EXT_MAX headers, unrolled: every iteration is checked once, with no
 *     reliance on the verifier's bounded-loop support converging on a data-dependent
 *     trip count. A chain longer than the bound is dropped (DROP_INVALID_EXTHDR) rather
 *     than judged on a header we did not reach. 8 covers every chain RFC 8200's order
 *     allows (hop-by-hop, destination, routing, fragment, AH, destination: six).
 *   - Extension headers are read with bpf_skb_load_bytes (2-4 bytes each), not direct
 *     packet access: each header moves the offset by a packet-supplied (len + 1) * 8,
 *     and proving a packet pointer at a sum of such offsets needs a bounds check per
 *     header anyway; the helper does that and also works on non-linear skbs. Only the
 *     common case (no extension header: TCP, UDP, SCTP or ICMPv6 right after the fixed
 *     header) takes the direct path (parse_ipv6_direct), so that costs an IPv6 packet
 *     what parse_ipv4_direct costs an IPv4 one.
 */
#ifndef MEMBRANE_IPV6_H
#define MEMBRANE_IPV6_H

#include "common.h"
#include "drop.h"
#include "parse.h"

/* Next header values of the extension headers the walk steps over. */
#define EXTHDR_HOP 0        /* hop-by-hop options: only ever first */
#define EXTHDR_ROUTING 43
#define EXTHDR_FRAGMENT 44  /* fixed 8 bytes */
#define EXTHDR_AUTH 51      /* length in 4-byte units, minus 2 */
#define EXTHDR_DEST 60

/* The most extension headers one packet may carry (see the verifier notes above). */
#define IPV6_EXT_MAX 8

/* ICMPv6 neighbour and router discovery (RFC 4861): router solicitation 133 to
 * redirect 137. Their numbers live in the kernel's net/ndisc.h, which is not uapi. */
#define ICMP6_ND_FIRST 133
#define ICMP6_ND_LAST 137
/* What the RFCs require of link-local control: ND hop limit 255, MLD hop limit 1. */
#define ICMP6_ND_HOP_LIMIT 255
#define ICMP6_MLD_HOP_LIMIT 1

static __always_inline int ipv6_is_exthdr(__u8 nexthdr)
{
	return nexthdr == EXTHDR_HOP || nexthdr == EXTHDR_ROUTING ||
	       nexthdr == EXTHDR_FRAGMENT || nexthdr == EXTHDR_AUTH || nexthdr == EXTHDR_DEST;
}

/* Steps over the extension headers starting at *off, whose first header has type
 * *nexthdr. On PARSE_OK, *nexthdr is the upper-layer protocol and *off where its header
 * starts; *fragment is set (and the walk stopped) at a non-first fragment. Returns
 * DROP_INVALID_EXTHDR for a chain longer than IPV6_EXT_MAX, a hop-by-hop header that
 * is not first (RFC 8200 4.1; the kernel drops those too), or a header cut short. */
static __always_inline int ipv6_skip_exthdrs(struct __sk_buff *skb, __u8 *nexthdr, __u32 *off,
					     __u16 *fragment)
{
	int i;

#pragma unroll
	for (i = 0; i < IPV6_EXT_MAX; i++) {
		/* The first 4 bytes of any of them: next header, length (fragment:
		 * reserved), then for a fragment the offset and flags. Every extension
		 * header is at least 8 bytes long. */
		__u8 h[4];
		__u8 cur = *nexthdr;

		if (!ipv6_is_exthdr(cur))
			return PARSE_OK;
		if (cur == EXTHDR_HOP && i > 0)
			return DROP_INVALID_EXTHDR;
		if (bpf_skb_load_bytes(skb, *off, h, sizeof(h)) < 0)
			return DROP_INVALID_EXTHDR;
		*nexthdr = h[0];
		if (cur == EXTHDR_FRAGMENT) {
			*off += 8;
			/* The 13-bit offset in 8-byte units, above the M flag's 3 bits. */
			if ((((__u16)h[2] << 8) | h[3]) & 0xfff8) {
				*fragment = 1;
				return PARSE_OK;
			}
		} else if (cur == EXTHDR_AUTH) {
			*off += ((__u32)h[1] + 2) * 4;
		} else {
			*off += ((__u32)h[1] + 1) * 8;
		}
	}
	return ipv6_is_exthdr(*nexthdr) ? DROP_INVALID_EXTHDR : PARSE_OK;
}

/* Link-local control that passes as ARP does: neighbour and router discovery with hop
 * limit 255, multicast listener discovery (130-132, MLDv2 report 143) with hop limit
 * 1. Those hop limits are what RFC 4861 and RFC 2710/3810 require, and they keep the
 * message on its link: a router decrements the hop limit, so an "ND" packet that
 * crossed one arrives with 254 (and its receiver discards it), an MLD one never
 * crosses. Such a packet from farther away is no link control here: policy decides
 * it as any other ICMPv6. */
static __always_inline int ipv6_link_control(const struct flow6 *f)
{
	__u8 t = f->l4.icmp_type;

	if (f->l4.protocol != IPPROTO_ICMPV6 || f->l4.fragment)
		return 0;
	if (t >= ICMP6_ND_FIRST && t <= ICMP6_ND_LAST)
		return f->hop_limit == ICMP6_ND_HOP_LIMIT;
	if (t == ICMPV6_MGM_QUERY || t == ICMPV6_MGM_REPORT || t == ICMPV6_MGM_REDUCTION ||
	    t == ICMPV6_MLD2_REPORT)
		return f->hop_limit == ICMP6_MLD_HOP_LIMIT;
	return 0;
}

/* Is this ICMPv6 type an error (it embeds the packet that caused it)? */
static __always_inline int icmp6_is_error(__u8 type)
{
	return type == ICMPV6_DEST_UNREACH || type == ICMPV6_PKT_TOOBIG ||
	       type == ICMPV6_TIME_EXCEED || type == ICMPV6_PARAMPROB;
}

/* Parses the IPv6 header at off, its extension headers and the upper-layer ports.
 * Returns PARSE_OK or a drop reason (invalid_reason for an unreadable or non-IPv6
 * fixed header); *l4off is set to where the upper-layer header starts. */
static __always_inline int parse_ipv6_at(struct __sk_buff *skb, __u32 off, struct flow6 *f,
					 __u32 *l4off, int invalid_reason)
{
	struct ipv6hdr ip6;
	__u8 nexthdr;
	int ret;

	if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
		return invalid_reason;
	if (ip6.version != 6)
		return invalid_reason;
	__builtin_memcpy(f->saddr, &ip6.saddr, sizeof(f->saddr));
	__builtin_memcpy(f->daddr, &ip6.daddr, sizeof(f->daddr));
	f->hop_limit = ip6.hop_limit;
	nexthdr = ip6.nexthdr;
	off += sizeof(ip6);
	ret = ipv6_skip_exthdrs(skb, &nexthdr, &off, &f->l4.fragment);
	if (ret != PARSE_OK)
		return ret;
	f->l4.protocol = nexthdr;
	*l4off = off;
	if (f->l4.fragment)
		return PARSE_OK; /* no upper-layer header: port 0 */
	return parse_l4(skb, off, &f->l4, IPPROTO_ICMPV6);
}

/* The outer IPv6 header and an upper-layer header right behind it, by direct packet
 * access (the contract of parse_ipv4_direct in parse.h). PARSE_SLOW for an extension
 * header (or an upper layer without ports) as well as for headers outside the linear
 * area: parse_ipv6_at then walks the chain. */
static __always_inline int parse_ipv6_direct(struct __sk_buff *skb, struct flow6 *f,
					     __u32 *l4off)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	void *l4 = (void *)(ip6 + 1);

	if (l4 > data_end)
		return PARSE_SLOW;
	if (ip6->version != 6)
		return DROP_INVALID;
	switch (ip6->nexthdr) {
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
	case IPPROTO_ICMPV6:
		if (l4 + sizeof(struct icmp6hdr) > data_end)
			return PARSE_SLOW;
		l4_icmp6(&f->l4, l4);
		break;
	default:
		return PARSE_SLOW;
	}
	__builtin_memcpy(f->saddr, &ip6->saddr, sizeof(f->saddr));
	__builtin_memcpy(f->daddr, &ip6->daddr, sizeof(f->daddr));
	f->hop_limit = ip6->hop_limit;
	f->l4.protocol = ip6->nexthdr;
	*l4off = ETH_HLEN + sizeof(struct ipv6hdr);
	return PARSE_OK;
}

#endif /* MEMBRANE_IPV6_H */
