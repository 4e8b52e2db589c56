/* SPDX-License-Identifier: Apache-2.0 */
/* Local endpoints: which host-side veth belongs to which pod.
 *
 * endpoints: BPF_MAP_TYPE_HASH, key u32 ifindex (of the host-side veth in the node's
 *   network namespace, as skb->ifindex shows it at tc on that device) ->
 *   struct endpoint_info. Written by the agent (agent/datapath/bpf.py) before it
 *   attaches the programs, so the first packet is already decided. Size
 *   MEMBRANE_ENDPOINTS_MAX.
 * endpoints6: BPF_MAP_TYPE_HASH, key u32 ifindex -> struct endpoint6_info: the pod's
 *   IPv6 address, for IPv6 anti-spoofing. Written by the agent with the endpoints entry
 *   (and before it, so a dual-stack pod's first IPv6 packet is judged against its own
 *   address); absent for a pod without one, whose IPv6 packets then all fail the
 *   source check. Looked up only for IPv6 packets leaving a pod. A map apart from
 *   `endpoints` so that the value every packet reads stays 12 bytes and keeps the
 *   layout earlier builds pinned. Size MEMBRANE_ENDPOINTS_MAX.
 */
#ifndef MEMBRANE_ENDPOINTS_H
#define MEMBRANE_ENDPOINTS_H

#include "common.h"

#define EP_F_INGRESS_ENFORCED 0x01 /* some policy selects the pod for ingress */
#define EP_F_EGRESS_ENFORCED 0x02  /* some policy selects the pod for egress */

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

BPF_TABLE_PINNED("hash", __u32, struct endpoint6_info, endpoints6,
		 MEMBRANE_ENDPOINTS_MAX, MEMBRANE_PIN_DIR "/endpoints6");

static __always_inline struct endpoint_info *lookup_endpoint(__u32 ifindex)
{
	return endpoints.lookup(&ifindex);
}

static __always_inline int endpoint_enforced(const struct endpoint_info *ep, __u8 dir)
{
	return ep->flags & (dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCED : EP_F_EGRESS_ENFORCED);
}

/* Is addr (16 bytes) the IPv6 address of the endpoint on ifindex? */
static __always_inline int endpoint_owns_ipv6(__u32 ifindex, const __be32 *addr)
{
	struct endpoint6_info *ep6 = endpoints6.lookup(&ifindex);

	return ep6 && ep6->ipv6[0] == addr[0] && ep6->ipv6[1] == addr[1] &&
	       ep6->ipv6[2] == addr[2] && ep6->ipv6[3] == addr[3];
}

#endif /* MEMBRANE_ENDPOINTS_H */
