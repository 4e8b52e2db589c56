/* SPDX-License-Identifier: Apache-2.0 */
/* The fast path: the program tc runs first on each hook, small, for the packets of
 * established connections whose verdict is cached; everything else tail-calls the full
 * program (bpf_lxc.c: from_container_full, to_container_full).
 *
 * tail_calls: BPF_MAP_TYPE_PROG_ARRAY, key u32 TAIL_* -> program. Size TAIL_CALL_SLOTS.
 *   Filled by the agent (agent/datapath/bpf.py) right after loading, before any program
 *   is attached. Pinned: a kernel empties a program array when the last user reference
 *   to it (fd or pin) goes away, so an unpinned one would leave the programs still
 *   attached after the agent exits (restart) without their full half, and every new
 *   connection would be dropped until the new agent re-attached. Pinned, a restarted
 *   agent overwrites the slots with its own full programs at load, which the previous
 *   agent's fast programs then reach until they are replaced.
 *
 * What passes here is exactly what the full program passes on its own fast path
 * (bpf_lxc.c, step 4): a tracked forward or reply packet, headers in the linear area,
 * a source that is the pod's own when leaving it, and a conntrack entry stamped with
 * the current revision. Any other packet (new, untracked, stale, an ICMP error, a
 * packet to drop, IPv6 link control, ARP, an interface without an endpoint) goes to
 * the full program, which decides it from scratch: the fast path never drops and never
 * emits an event. The cost of a miss is one tail call and a second parse.
 *
 * Why a program of its own rather than the same code in one program: the full
 * program's JITed image is ~8 KB per hook (policy, events, the ICMP error walk, the
 * IPv6 extension header chain), and an established packet touched a few hundred bytes
 * of it spread over that image; this one is a fraction of that, one i-cache footprint
 * for the packets that are nearly all the traffic.
 */
#ifndef MEMBRANE_FASTPATH_H
#define MEMBRANE_FASTPATH_H

#include "common.h"
#include "drop.h"
#include "metrics.h"
#include "endpoints.h"
#include "revision.h"
#include "parse.h"
#include "ipv6.h"
#include "conntrack.h"

#define TAIL_FROM_CONTAINER 0 /* from_container_full */
#define TAIL_TO_CONTAINER 1   /* to_container_full */
#define TAIL_CALL_SLOTS 2

BPF_TABLE_PINNED("prog", __u32, __u32, tail_calls, TAIL_CALL_SLOTS,
		 MEMBRANE_PIN_DIR "/tail_calls");

/* 1 when the packet was passed here (and accounted on its entry), 0 when the full
 * program must decide it. */
static __always_inline int fast_ipv4(struct __sk_buff *skb, const struct endpoint_info *ep,
				     __u8 dir)
{
	struct flow4 f = {};
	struct ct_entry *entry = NULL;
	__u32 l4off = 0, rev;
	__u8 unreplied = 0;
	__u64 now;
	int ct;

	if (parse_ipv4_direct(skb, &f, &l4off) != PARSE_OK)
		return 0;
	if (dir == DIR_EGRESS && f.saddr != ep->ipv4)
		return 0;
	if (!ct_tracked(&f.l4, IPPROTO_ICMP))
		return 0;
	/* The revision before the lookup, as in the full program (revision.h). */
	rev = current_policy_revision();
	if (!rev)
		return 0;
	now = ct_now();
	ct = ct_lookup(ep->endpoint_id, dir, &f, now, &entry, &unreplied);
	/* entry is non-NULL for CT_ESTABLISHED and CT_REPLY; the verifier sees it only
	 * because ct_lookup() is inlined (see handle_ipv4 in bpf_lxc.c). */
	if (ct != CT_ESTABLISHED && ct != CT_REPLY)
		return 0;
	if (entry->policy_rev != rev)
		return 0;
	ct_packet(entry, unreplied, ep->endpoint_id, dir, &f, ct == CT_REPLY, skb->len, now, 0);
	return 1;
}

static __always_inline int fast_ipv6(struct __sk_buff *skb, const struct endpoint_info *ep,
				     __u8 dir)
{
	struct flow6 f = {};
	struct ct_entry *entry = NULL;
	__u32 l4off = 0, rev;
	__u8 unreplied = 0;
	__u64 now;
	int ct;

	if (parse_ipv6_direct(skb, &f, &l4off) != PARSE_OK)
		return 0;
	if (ipv6_link_control(&f))
		return 0;
	if (dir == DIR_EGRESS && !endpoint_owns_ipv6(ep, f.saddr))
		return 0;
	if (!ct_tracked(&f.l4, IPPROTO_ICMPV6))
		return 0;
	rev = current_policy_revision();
	if (!rev)
		return 0;
	now = ct_now();
	ct = ct6_lookup(ep->endpoint_id, dir, &f, now, &entry, &unreplied);
	if (ct != CT_ESTABLISHED && ct != CT_REPLY)
		return 0;
	if (entry->policy_rev != rev)
		return 0;
	ct6_packet(entry, unreplied, ep->endpoint_id, dir, &f, ct == CT_REPLY, skb->len, now,
		   0);
	return 1;
}

/* The fast path of one hook; slot: its full program in tail_calls.
 * Everything in both programs is __always_inline, no bpf-to-bpf calls: the kernel lets a
 * program that tail-calls also make such calls only since 5.10 (x86-64 JIT), and then
 * caps every frame's stack at 256 bytes, which the full program's flow, event and key
 * copies on the stack exceed. */
static __always_inline int fast_path(struct __sk_buff *skb, __u8 dir, __u32 slot)
{
	struct endpoint_info *ep = lookup_endpoint(skb->ifindex);

	if (ep) {
		if (skb->protocol == bpf_htons(ETH_P_IP)) {
			if (fast_ipv4(skb, ep, dir))
				return TC_ACT_OK;
		} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
			if (fast_ipv6(skb, ep, dir))
				return TC_ACT_OK;
		}
	}
	/* bcc turns this into bpf_tail_call(skb, &tail_calls, slot); it does not return
	 * when the slot holds a program. */
	tail_calls.call(skb, slot);
	/* The slot is empty (the agent fills it before attaching: this is a bug or a
	 * foreign write): fail closed, counted, as Cilium's "missed tail call". No event:
	 * building one here would grow this program by what it is meant to leave out. */
	count_drop(DROP_MISSED_TAIL_CALL, skb->len);
	return TC_ACT_SHOT;
}

#endif /* MEMBRANE_FASTPATH_H */
