/* SPDX-License-Identifier: Apache-2.0 */
/* Membrane datapath: shared constants, configuration macros and small helpers.
 *
 * Configuration comes in as -D cflags from agent/datapath/compiler.py (never by string
 * surgery on the source); every macro here has a default so the file compiles alone.
 *
 * Packet parsing: the outer IP (v4, or v6 without extension headers) and L4 headers are
 * read by direct packet access (skb->data..data_end, bounds-checked per header) when
 * they are in the linear area, which is nearly always; otherwise, for IPv6 extension
 * header chains (lib/ipv6.h) and for the nested header of ICMP errors (at a variable
 * offset, rarely on the fast path), with bpf_skb_load_bytes() into stack copies, which
 * works on non-linear skbs too (bpf_lxc.c: parse_ipv4_direct, parse_ipv6_direct).
 */
#ifndef MEMBRANE_COMMON_H
#define MEMBRANE_COMMON_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/pkt_cls.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/in.h>
#include <uapi/linux/tcp.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/icmp.h>
#include <uapi/linux/icmpv6.h>

/* Where the pinned maps live: one bpffs directory per node (and lab). */
#ifndef MEMBRANE_PIN_DIR
#define MEMBRANE_PIN_DIR "/sys/fs/bpf/membrane/default"
#endif

/* Map sizes (max_entries). A pinned map keeps the size it was created with; a new
 * size takes effect only after the pins are removed. Each size is that of one family's
 * map: ipcache6, cidr6 and conntrack6 get the same as their IPv4 twins (endpoints6 is
 * indexed by endpoint id, endpoints.h). */
#ifndef MEMBRANE_IPCACHE_MAX
#define MEMBRANE_IPCACHE_MAX 16384
#endif
#ifndef MEMBRANE_CIDR_MAX
#define MEMBRANE_CIDR_MAX 4096
#endif
#ifndef MEMBRANE_ENDPOINTS_MAX
#define MEMBRANE_ENDPOINTS_MAX 1024
#endif
#ifndef MEMBRANE_POLICY_MAX
#define MEMBRANE_POLICY_MAX 16384
#endif
#ifndef MEMBRANE_CT_MAX
#define MEMBRANE_CT_MAX 65536
#endif
/* Connections not answered yet (conntrack.h: ct_unreplied). */
#ifndef MEMBRANE_CT_UNREPLIED_MAX
#define MEMBRANE_CT_UNREPLIED_MAX 16384
#endif
/* Ring buffer size in pages (power of two). Tests shrink it to flood it. */
#ifndef MEMBRANE_RING_PAGES
#define MEMBRANE_RING_PAGES 64
#endif

/* Reserved identities (identity/ mirrors these; only the ones the C needs). */
#define IDENTITY_UNKNOWN 0
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2

/* mapstate.Direction values. */
#define DIR_INGRESS 0 /* into the endpoint: to_container */
#define DIR_EGRESS 1  /* out of the endpoint: from_container */

/* mapstate.MatchType values. */
#define MATCH_NONE 0
#define MATCH_L3_ONLY 1
#define MATCH_L3_L4 2
#define MATCH_L4_ONLY 3
#define MATCH_ALL 4

#define MEMBRANE_IPPROTO_SCTP 132

/* The L4 part of a parsed packet, the same for both families. Ports host byte order
 * (ICMP and ICMPv6: see conntrack.h for how echo id/type are placed). */
struct flow_l4 {
	__u16 sport;
	__u16 dport;
	__u8 protocol;     /* IPv4 protocol, IPv6 upper-layer next header */
	__u8 tcp_flags;    /* raw flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16) */
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 policy_port; /* port the policy lookup uses: TCP/UDP/SCTP dport, else 0 */
	__u16 fragment;    /* non-zero for non-first fragments: no L4 header */
};

/* A packet's IPv4 5-tuple as parsed. Addresses network byte order. The L4 part sits
 * where the flat fields of the IPv4-only struct were: same offsets, same code. */
struct flow4 {
	__be32 saddr;
	__be32 daddr;
	struct flow_l4 l4;
};

/* A packet's IPv6 5-tuple as parsed. Addresses network byte order, as four words. */
struct flow6 {
	__be32 saddr[4];
	__be32 daddr[4];
	struct flow_l4 l4;
	__u8 hop_limit;    /* link-local control (ND, MLD) is told apart by it */
};

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

#endif /* MEMBRANE_COMMON_H */
