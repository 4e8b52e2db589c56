/* SPDX-License-Identifier: Apache-2.0 */
/* Membrane datapath for local endpoints (pods): one program file, two hooks, each a
 * small fast-path program and the full program it tail-calls (lib/fastpath.h):
 *
 *   from_container  tc ingress of the pod's host-side veth: packets leaving the pod,
 *                   i.e. the pod's EGRESS (DIR_EGRESS); full: from_container_full.
 *   to_container    tc egress of the pod's host-side veth: packets going into the pod,
 *                   i.e. the pod's INGRESS (DIR_INGRESS); full: to_container_full.
 *
 * The attached ones (from_container, to_container) pass established packets with a
 * current conntrack stamp and tail-call the full program for everything else; the
 * full programs are the steps below, from the start. All four are direct-action
 * (return TC_ACT_OK / TC_ACT_SHOT). Compiled once per
 * agent start by bcc (agent/datapath/compiler.py); endpoints and policy are map writes.
 *
 * Per IPv4 or IPv6 packet (handle_ipv4, handle_ipv6: the same steps over each family's
 * maps; the policy decision itself is family-free, forward_verdict below):
 *   1. the endpoint (endpoints map, by skb->ifindex); none -> drop (fail closed);
 *   2. parse (lib/parse.h, lib/ipv6.h: the IPv6 extension header chain, fragments);
 *      IPv6 only: neighbour/router discovery and MLD pass here, as ARP does
 *      (ipv6_link_control says exactly which);
 *   3. from_container only: the source must be the pod's own address (endpoints for
 *      IPv4, endpoints6 for IPv6) -> else drop "Invalid source ip", enforced or not;
 *   4. conntrack (conntrack and ct_unreplied; conntrack6 and ct6_unreplied): a forward
 *      or reply packet of a connection whose entry carries the current policy revision
 *      (revision.h) passes on its cached verdict (the fast path: no identity or policy
 *      lookup, no event built, and no map write unless its entry's state or expiry must
 *      change, conntrack.h); so does a related ICMP / ICMPv6 error of such a
 *      connection;
 *   5. every other packet (new, untracked, or of a connection with a stale stamp):
 *      peer identity (ipcache / ipcache6 LPM, unknown = world) and CIDR identity (cidr /
 *      cidr6 LPM), then policy (the Admin tier, NetworkPolicy, the Baseline tier:
 *      policy.h) when it applies to the direction, a reply decided as its connection's
 *      forward packet; allowed tracked entries are re-stamped, a denied packet of a
 *      tracked connection is dropped whichever way it goes; in audit mode a denied
 *      packet passes as if allowed, reported as AUDIT;
 *   6. a new allowed tracked flow gets a conntrack entry (enforced or not) and one
 *      POLICY_VERDICT event; a denied packet a DROP event (plus a POLICY_VERDICT for a
 *      new flow). A failed conntrack insert drops the packet: never a silent allow.
 * The node reaches its pods through policy, not a bypass: the engine gives every
 * ingress-enforced endpoint an allow for the host identity, which the node's addresses
 * of both families map to.
 * Other L3 protocols: ARP passes; anything else is dropped as "Unsupported L3 protocol"
 * when the direction is enforced, passed otherwise.
 */
#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/endpoints.h"
#include "lib/ipcache.h"
#include "lib/policy.h"
#include "lib/revision.h"
#include "lib/parse.h"
#include "lib/ipv6.h"
#include "lib/conntrack.h"
#include "lib/fastpath.h"

/* --- events: built only for a packet that is reported ------------------------------ */

static __always_inline void event_start(struct event *ev, const struct endpoint_info *ep,
					__u8 dir)
{
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->direction = dir;
	ev->endpoint_id = ep->endpoint_id;
	if (dir == DIR_EGRESS)
		ev->src_identity = ep->identity;
	else
		ev->dst_identity = ep->identity;
}

/* The L4 fields; ICMP and ICMPv6 as events.h packs them (echo id, type << 8 | code). */
static __always_inline void event_l4(struct event *ev, const struct flow_l4 *l,
				     __u8 icmp_proto, __u8 echo_reply)
{
	ev->protocol = l->protocol;
	ev->tcp_flags = l->tcp_flags;
	if (l->protocol == icmp_proto) {
		ev->sport = l->icmp_type == echo_reply ? l->dport : l->sport;
		ev->dport = ((__u16)l->icmp_type << 8) | l->icmp_code;
	} else {
		ev->sport = l->sport;
		ev->dport = l->dport;
	}
}

static __always_inline void event_for4(struct event *ev, const struct endpoint_info *ep,
				       __u8 dir, const struct flow4 *f)
{
	event_start(ev, ep, dir);
	ev->ip_version = 4;
	ev->saddr[0] = f->saddr;
	ev->daddr[0] = f->daddr;
	event_l4(ev, &f->l4, IPPROTO_ICMP, ICMP_ECHOREPLY);
}

static __always_inline void event_for6(struct event *ev, const struct endpoint_info *ep,
				       __u8 dir, const struct flow6 *f)
{
	event_start(ev, ep, dir);
	ev->ip_version = 6;
	__builtin_memcpy(ev->saddr, f->saddr, sizeof(ev->saddr));
	__builtin_memcpy(ev->daddr, f->daddr, sizeof(ev->daddr));
	event_l4(ev, &f->l4, IPPROTO_ICMPV6, ICMPV6_ECHO_REPLY);
}

static __always_inline int drop_packet(struct __sk_buff *skb, struct event *ev, __u8 reason)
{
	count_drop(reason, skb->len);
	ev->type = EVENT_DROP;
	ev->allowed = 0;
	ev->drop_reason = reason;
	emit_event(skb, ev);
	return TC_ACT_SHOT;
}

/* --- the decision, the same for both families -------------------------------------- */

/* The peer's identities into the event, on the side the packet's hook says (a peer is
 * named by its CIDR identity when nothing more specific than world knows the address:
 * an off-cluster host inside an ipBlock). */
static __always_inline void event_peer(struct event *ev, __u8 dir, __u32 peer_id,
				       __u32 cidr_id)
{
	__u32 shown_id = (peer_id == IDENTITY_WORLD && cidr_id) ? cidr_id : peer_id;

	if (dir == DIR_EGRESS)
		ev->dst_identity = shown_id;
	else
		ev->src_identity = shown_id;
}

/* Step 5's verdict, the same for both families once the peer's identities are known:
 * policy (the Admin tier, NetworkPolicy, the Baseline tier: policy.h) in verdict_dir
 * (the connection's direction: a reply is decided as its forward packet, conntrack.h
 * rule 2) on protocol and port. Returns POLICY_ALLOWED or POLICY_AUDITED to pass (an
 * audited packet's AUDIT record already emitted), POLICY_DENIED to drop (a denied new
 * flow's POLICY_VERDICT record already emitted; the caller drops with DROP_POLICY).
 * The one place a policy verdict is made, for IPv4 and IPv6 alike. */
static __always_inline int forward_verdict(struct __sk_buff *skb, const struct endpoint_info *ep,
					   __u8 verdict_dir, struct event *ev, int ct,
					   __u32 peer_id, __u32 cidr_id, __u8 protocol, __u16 port)
{
	__u8 match = MATCH_NONE;
	int verdict;

	if (!policy_applies(ep, verdict_dir))
		return POLICY_ALLOWED;
	/* The tiers and NetworkPolicy, in a fixed number of lookups (policy.h). */
	verdict = policy_decide(ep, verdict_dir, peer_id, cidr_id, protocol, port, skb->len,
				&match);
	ev->match_type = match;
	if (verdict == POLICY_DENIED) {
		if (ct == CT_NEW) {
			ev->type = EVENT_POLICY_VERDICT;
			ev->allowed = 0;
			ev->drop_reason = DROP_POLICY;
			emit_event(skb, ev);
		}
		/* A tracked connection keeps its old stamp and expiry: every further packet
		 * of it, either way, is evaluated (and dropped, and reported) until an allow
		 * returns. */
		return POLICY_DENIED;
	}
	if (verdict == POLICY_AUDITED) {
		/* Audit mode: what policy denies passes, reported as AUDIT where a drop would
		 * have been; then it is tracked and stamped as allowed. */
		ev->type = EVENT_POLICY_VERDICT;
		ev->allowed = POLICY_AUDITED;
		ev->drop_reason = DROP_POLICY;
		emit_event(skb, ev);
	}
	return verdict;
}

static __always_inline void report_new_flow(struct __sk_buff *skb, struct event *ev)
{
	ev->type = EVENT_POLICY_VERDICT;
	ev->allowed = 1;
	ev->drop_reason = 0;
	emit_event(skb, ev);
}

/* --- IPv4 ----------------------------------------------------------------------------- */

/* For ICMP errors: does the embedded packet belong to a flow this endpoint tracks? */
static __always_inline int icmp4_error_related(struct __sk_buff *skb, __u32 l4off,
					       __u16 endpoint_id, __u8 dir,
					       const struct flow4 *f, __u64 now, __u32 rev)
{
	struct flow4 inner = {};
	__u32 inner_l4off;

	if (f->l4.protocol != IPPROTO_ICMP)
		return 0;
	if (f->l4.icmp_type != ICMP_DEST_UNREACH && f->l4.icmp_type != ICMP_TIME_EXCEEDED &&
	    f->l4.icmp_type != ICMP_PARAMETERPROB)
		return 0;
	/* The embedded IPv4 header follows the 8-byte ICMP header. */
	if (parse_ipv4_at(skb, l4off + sizeof(struct icmphdr), &inner, &inner_l4off,
			  DROP_INVALID) != PARSE_OK)
		return 0;
	if (!ct_tracked(&inner.l4, IPPROTO_ICMP))
		return 0;
	return ct_related(endpoint_id, dir, &inner, now, rev);
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, const struct endpoint_info *ep,
				       __u8 dir)
{
	struct flow4 f = {};
	struct event ev;
	struct ct_entry *entry = NULL;
	__u32 l4off = 0, peer_id, cidr_id, rev;
	__u8 unreplied = 0, verdict_dir;
	__be32 peer_addr;
	__u64 now;
	int ret, ct, is_reply, verdict;

	/* Linear headers (nearly every packet): direct access; otherwise copies. */
	ret = parse_ipv4_direct(skb, &f, &l4off);
	if (ret == PARSE_SLOW)
		ret = parse_ipv4_at(skb, ETH_HLEN, &f, &l4off, DROP_INVALID);
	if (ret != PARSE_OK) {
		event_for4(&ev, ep, dir, &f);
		return drop_packet(skb, &ev, ret);
	}

	if (dir == DIR_EGRESS && f.saddr != ep->ipv4) {
		event_for4(&ev, ep, dir, &f);
		ev.src_identity = 0;
		return drop_packet(skb, &ev, DROP_INVALID_SIP);
	}

	/* Read the revision BEFORE any lookup that decides the verdict: a stamp must
	 * never be newer than the maps it was decided from (revision.h). */
	rev = current_policy_revision();
	now = ct_now();
	if (ct_tracked(&f.l4, IPPROTO_ICMP))
		ct = ct_lookup(ep->endpoint_id, dir, &f, now, &entry, &unreplied);
	else if (icmp4_error_related(skb, l4off, ep->endpoint_id, dir, &f, now, rev))
		ct = CT_RELATED;
	else
		ct = CT_UNTRACKED;
	is_reply = ct == CT_REPLY;

	/* entry is non-NULL for CT_REPLY and CT_ESTABLISHED. The verifier follows that
	 * only because ct_lookup() is inlined (each result comes from a branch that tested
	 * the pointer); an out-of-line ct_lookup would need explicit NULL tests here. */
	if (ct == CT_RELATED)
		return TC_ACT_OK;
	if ((ct == CT_ESTABLISHED || is_reply) && rev && entry->policy_rev == rev) {
		/* The fast path, both directions: the connection is allowed under the
		 * current revision already (conntrack.h, rule 1). */
		ct_packet(entry, unreplied, ep->endpoint_id, dir, &f, is_reply, skb->len, now, 0);
		return TC_ACT_OK;
	}

	/* A packet to decide: new, untracked, or of a connection whose stamp is stale.
	 * A reply is decided as its connection's forward packet (conntrack.h, rule 2):
	 * the entry's direction, the forward destination port; the peer is the remote
	 * address either way. */
	event_for4(&ev, ep, dir, &f);
	ev.is_reply = is_reply;
	verdict_dir = is_reply ? !dir : dir;
	peer_addr = dir == DIR_EGRESS ? f.daddr : f.saddr;
	peer_id = lookup_peer_identity(peer_addr);
	cidr_id = lookup_cidr_identity(peer_addr);
	event_peer(&ev, dir, peer_id, cidr_id);
	verdict = forward_verdict(skb, ep, verdict_dir, &ev, ct, peer_id, cidr_id,
				  f.l4.protocol, ct_verdict_port(&f.l4, is_reply, IPPROTO_ICMP));
	if (verdict == POLICY_DENIED)
		return drop_packet(skb, &ev, DROP_POLICY);

	if (ct == CT_ESTABLISHED || is_reply) {
		ct_packet(entry, unreplied, ep->endpoint_id, dir, &f, is_reply, skb->len, now,
			  rev);
		return TC_ACT_OK;
	}
	if (ct == CT_NEW) {
		if (ct_create(ep->endpoint_id, dir, &f, skb->len, now, rev) < 0)
			return drop_packet(skb, &ev, DROP_CT_MAP_INSERTION);
		if (verdict == POLICY_ALLOWED)
			report_new_flow(skb, &ev);
	}
	return TC_ACT_OK;
}

/* --- IPv6: the same steps over the IPv6 maps -------------------------------------------- */

/* For ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter
 * problem): does the embedded packet belong to a flow this endpoint tracks? */
static __always_inline int icmp6_error_related(struct __sk_buff *skb, __u32 l4off,
					       __u16 endpoint_id, __u8 dir,
					       const struct flow6 *f, __u64 now, __u32 rev)
{
	struct flow6 inner = {};
	__u32 inner_l4off;

	if (f->l4.protocol != IPPROTO_ICMPV6 || f->l4.fragment ||
	    !icmp6_is_error(f->l4.icmp_type))
		return 0;
	/* The embedded IPv6 packet (with its own extension headers) follows the 8-byte
	 * ICMPv6 header. */
	if (parse_ipv6_at(skb, l4off + sizeof(struct icmp6hdr), &inner, &inner_l4off,
			  DROP_INVALID) != PARSE_OK)
		return 0;
	if (!ct_tracked(&inner.l4, IPPROTO_ICMPV6))
		return 0;
	return ct6_related(endpoint_id, dir, &inner, now, rev);
}

static __always_inline int handle_ipv6(struct __sk_buff *skb, const struct endpoint_info *ep,
				       __u8 dir)
{
	struct flow6 f = {};
	struct event ev;
	struct ct_entry *entry = NULL;
	__u32 l4off = 0, peer_id, cidr_id, rev;
	__u8 unreplied = 0, verdict_dir;
	const __be32 *peer_addr;
	__u64 now;
	int ret, ct, is_reply, verdict;

	ret = parse_ipv6_direct(skb, &f, &l4off);
	if (ret == PARSE_SLOW)
		ret = parse_ipv6_at(skb, ETH_HLEN, &f, &l4off, DROP_INVALID);
	if (ret != PARSE_OK) {
		event_for6(&ev, ep, dir, &f);
		return drop_packet(skb, &ev, ret);
	}
	if (ipv6_link_control(&f))
		return TC_ACT_OK;

	if (dir == DIR_EGRESS && !endpoint_owns_ipv6(ep, f.saddr)) {
		event_for6(&ev, ep, dir, &f);
		ev.src_identity = 0;
		return drop_packet(skb, &ev, DROP_INVALID_SIP);
	}

	rev = current_policy_revision();
	now = ct_now();
	if (ct_tracked(&f.l4, IPPROTO_ICMPV6))
		ct = ct6_lookup(ep->endpoint_id, dir, &f, now, &entry, &unreplied);
	else if (icmp6_error_related(skb, l4off, ep->endpoint_id, dir, &f, now, rev))
		ct = CT_RELATED;
	else
		ct = CT_UNTRACKED;
	is_reply = ct == CT_REPLY;

	/* entry is non-NULL for CT_REPLY and CT_ESTABLISHED (see handle_ipv4). */
	if (ct == CT_RELATED)
		return TC_ACT_OK;
	if ((ct == CT_ESTABLISHED || is_reply) && rev && entry->policy_rev == rev) {
		ct6_packet(entry, unreplied, ep->endpoint_id, dir, &f, is_reply, skb->len, now,
			   0);
		return TC_ACT_OK;
	}

	event_for6(&ev, ep, dir, &f);
	ev.is_reply = is_reply;
	verdict_dir = is_reply ? !dir : dir;
	peer_addr = dir == DIR_EGRESS ? f.daddr : f.saddr;
	peer_id = lookup_peer_identity6(peer_addr);
	cidr_id = lookup_cidr_identity6(peer_addr);
	event_peer(&ev, dir, peer_id, cidr_id);
	verdict = forward_verdict(skb, ep, verdict_dir, &ev, ct, peer_id, cidr_id,
				  f.l4.protocol, ct_verdict_port(&f.l4, is_reply, IPPROTO_ICMPV6));
	if (verdict == POLICY_DENIED)
		return drop_packet(skb, &ev, DROP_POLICY);

	if (ct == CT_ESTABLISHED || is_reply) {
		ct6_packet(entry, unreplied, ep->endpoint_id, dir, &f, is_reply, skb->len, now,
			   rev);
		return TC_ACT_OK;
	}
	if (ct == CT_NEW) {
		if (ct6_create(ep->endpoint_id, dir, &f, skb->len, now, rev) < 0)
			return drop_packet(skb, &ev, DROP_CT_MAP_INSERTION);
		if (verdict == POLICY_ALLOWED)
			report_new_flow(skb, &ev);
	}
	return TC_ACT_OK;
}

/* --- entry points --------------------------------------------------------------------- */

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_info *ep;
	struct event ev;

	ep = lookup_endpoint(skb->ifindex);
	if (!ep) {
		/* Programs are attached only after the endpoint entry is written and
		 * detached before it is deleted; an interface without one is an
		 * inconsistency, and we fail closed. */
		__builtin_memset(&ev, 0, sizeof(ev));
		ev.direction = dir;
		return drop_packet(skb, &ev, DROP_NO_ENDPOINT);
	}

	/* skb->protocol is the EtherType in network byte order (bcc's bpf_htons is not
	 * a constant expression, hence ifs rather than a switch). IPv4 is tested first:
	 * adding IPv6 put nothing in front of it. */
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return handle_ipv4(skb, ep, dir);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return handle_ipv6(skb, ep, dir);
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (endpoint_enforced(ep, dir)) {
		event_start(&ev, ep, dir);
		return drop_packet(skb, &ev, DROP_UNSUPPORTED_L3);
	}
	return TC_ACT_OK;
}

/* tc ingress of the host-side veth: the pod's egress. */
int from_container(struct __sk_buff *skb)
{
	return fast_path(skb, DIR_EGRESS, TAIL_FROM_CONTAINER);
}

/* tc egress of the host-side veth: the pod's ingress. */
int to_container(struct __sk_buff *skb)
{
	return fast_path(skb, DIR_INGRESS, TAIL_TO_CONTAINER);
}

/* The full programs, reached only through tail_calls. */
int from_container_full(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

int to_container_full(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}
