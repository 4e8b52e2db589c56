/* SPDX-License-Identifier: Apache-2.0 */
/* Local endpoints: which host-side veth belongs to which pod.
 *
 * endpoints: BPF_MAP_TYPE_HASH, key u32 ifindex (of the host-side veth in the node's
 *   network namespace, as skb->ifindex shows it at tc on that device) ->
 *   struct endpoint_info. Written by the agent (agent/datapath/bpf.py) before it
 *   attaches the programs, so the first packet is already decided. Size
 *   MEMBRANE_ENDPOINTS_MAX.
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

static __always_inline struct endpoint_info *lookup_endpoint(__u32 ifindex)
{
	return endpoints.lookup(&ifindex);
}

static __always_inline int endpoint_enforced(const struct endpoint_info *ep, __u8 dir)
{
	return ep->flags & (dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCED : EP_F_EGRESS_ENFORCED);
}

#endif /* MEMBRANE_ENDPOINTS_H */
