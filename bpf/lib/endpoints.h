/* SPDX-License-Identifier: Apache-2.0 */
/* Local endpoints: which host-side veth belongs to which pod.
 *
 * endpoints: BPF_MAP_TYPE_HASH, key u32 ifindex (of the host-side veth in the node's
 *   network namespace, as skb->ifindex shows it at tc on that device) ->
 *   struct endpoint_info. Written by the agent (agent/datapath/bpf.py) before it
 *   attaches the programs, so the first packet is already decided. Size
 *   MEMBRANE_ENDPOINTS_MAX.
 * endpoints6: BPF_MAP_TYPE_ARRAY, key u32 endpoint id -> struct endpoint6_info: the
 *   pod's IPv6 address, for IPv6 anti-spoofing. Written by the agent with the endpoints
 *   entry (and before it, so a dual-stack pod's first IPv6 packet is judged against its
 *   own address); all zeros (the unspecified address, no pod's) for a pod without one,
 *   whose IPv6 packets then all fail the source check. Looked up only for IPv6 packets
 *   leaving a pod. A map apart from `endpoints` so that the value every packet reads
 *   stays 12 bytes and keeps the layout earlier builds pinned; an array indexed by the
 *   endpoint id (a u16: MEMBRANE_ENDPOINT_IDS slots, 1 MiB) rather than a hash, because
 *   the kernel inlines an array lookup: it costs an IPv6 packet a few nanoseconds where
 *   a hash lookup cost ~25 (tests/datapath/prog_cost.py).
 */
#ifndef MEMBRANE_ENDPOINTS_H
#define MEMBRANE_ENDPOINTS_H

#include "common.h"

#define EP_F_INGRESS_ENFORCED 0x01 /* some policy selects the pod for ingress */
#define EP_F_EGRESS_ENFORCED 0x02  /* some policy selects the pod for egress */

/* Endpoint ids are u16 (1..65535): endpoints6 has a slot for each. */
#define MEMBRANE_ENDPOINT_IDS 65536

/* Fields ordered largest first so the struct has no holes (12 bytes). */
struct endpoint_info {
	__u32 identity;    /* the pod's security identity, host byte order */
	__be32 ipv4;       /* the pod's IPv4 address, network byte order */
	__u16 endpoint_id; /* 1..65535, the key the policy and conntrack maps use */
	__u8 flags;        /* EP_F_* */
	__u8 pad;
};

BPF_TABLE_PINNED("hash", __u32, struct endpoint_info, endpoints,
		 MEMBRANE_ENDPOINTS_MAX, MEMBRANE_PIN_DIR "/endpoints");

/* 16 bytes: one IPv6 address (Kubernetes gives a pod at most one per family). */
struct endpoint6_info {
	__be32 ipv6[4]; /* network byte order */
};

BPF_TABLE_PINNED("array", __u32, struct endpoint6_info, endpoints6,
		 MEMBRANE_ENDPOINT_IDS, MEMBRANE_PIN_DIR "/endpoints6");

static __always_inline struct endpoint_info *lookup_endpoint(__u32 ifindex)
{
	return endpoints.lookup(&ifindex);
}

static __always_inline int endpoint_enforced(const struct endpoint_info *ep, __u8 dir)
{
	return ep->flags & (dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCED : EP_F_EGRESS_ENFORCED);
}

/* Is addr (16 bytes) the endpoint's IPv6 address? Never for the unspecified address
 * (all zeros), which is also what the slot of a pod without IPv6 holds. */
static __always_inline int endpoint_owns_ipv6(const struct endpoint_info *ep,
					      const __be32 *addr)
{
	__u32 id = ep->endpoint_id;
	struct endpoint6_info *ep6 = endpoints6.lookup(&id);

	if (!ep6 || !(addr[0] | addr[1] | addr[2] | addr[3]))
		return 0;
	return ep6->ipv6[0] == addr[0] && ep6->ipv6[1] == addr[1] &&
	       ep6->ipv6[2] == addr[2] && ep6->ipv6[3] == addr[3];
}

#endif /* MEMBRANE_ENDPOINTS_H */
