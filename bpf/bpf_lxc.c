/* SPDX-License-Identifier: Apache-2.0 */
/* Membrane datapath for local endpoints (pods): one program file, two entry points.
 *
 *   from_container  tc clsact INGRESS of the pod's host-side veth: packets leaving the
 *                   pod, i.e. the pod's EGRESS (DIR_EGRESS).
 *   to_container    tc clsact EGRESS of the pod's host-side veth: packets going into
 *                   the pod, i.e. the pod's INGRESS (DIR_INGRESS).
 *
 * Both are attached direct-action (return TC_ACT_OK / TC_ACT_SHOT). Compiled once per
 * agent start by bcc (agent/datapath/compiler.py); endpoints and policy are map writes.
 *
 * Per IPv4 packet:
 *   1. the endpoint (endpoints map, by skb->ifindex); none -> drop (fail closed);
 *   2. from_container only: the source must be the pod's own IPv4 -> else drop
 *      "Invalid source ip", enforced or not;
 *   3. conntrack: a forward or reply packet of a connection whose entry carries the
 *      current policy revision (revision.h) passes on its cached verdict (the fast
 *      path: no identity or policy lookup, and no map write unless its entry's state
 *      or expiry must change, conntrack.h); so does a related ICMP error of such a
 *      connection;
 *   4. every other packet (new, untracked, or of a connection with a stale stamp):
 *      peer identity (ipcache LPM, unknown = world) and CIDR identity (cidr LPM), then
 *      policy (the Admin tier, NetworkPolicy, the Baseline tier: policy.h) when it
 *      applies to the direction, a reply decided as its connection's forward packet;
 *      allowed tracked entries are re-stamped, a denied packet of a tracked connection
 *      is dropped whichever way it goes; in audit mode a denied packet passes as if
 *      allowed, reported as AUDIT;
 *   5. a new allowed tracked flow gets a conntrack entry (enforced or not) and one
 *      POLICY_VERDICT event; a denied packet a DROP event (plus a POLICY_VERDICT for a
 *      new flow). A failed conntrack insert drops the packet: never a silent allow.
 * Non-IPv4: ARP passes; anything else (IPv6 included) is dropped as "Unsupported L3
 * protocol" when the direction is enforced, passed otherwise.
 */
#include "lib/common.h"
#include "lib/drop.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/endpoints.h"
#include "lib/ipcache.h"
#include "lib/policy.h"
#include "lib/revision.h"
#include "lib/conntrack.h"

#define PARSE_OK 0
/* parse_ipv4_direct(): the headers are not all in the linear area; parse with
 * parse_ipv4_at() instead. Never a drop reason (those are > 0). */
#define PARSE_SLOW -1

/* The L4 fields of f from a TCP, UDP/SCTP or ICMP header, following conntrack.h's
 * conventions. The header is either a stack copy (parse_l4) or, inlined, a packet
 * pointer whose bounds the caller has checked (parse_ipv4_direct): one definition of
 * what is read, two ways of reading it. */
static __always_inline void l4_tcp(struct flow4 *f, const struct tcphdr *th)
{
	f->sport = bpf_ntohs(th->source);
	f->dport = bpf_ntohs(th->dest);
	/* The flags byte follows doff/res1 at offset 13. */
	f->tcp_flags = ((const __u8 *)th)[13];
	f->policy_port = f->dport;
}

/* UDP and SCTP both start with source port, destination port. */
static __always_inline void l4_ports(struct flow4 *f, const __be16 *ports)
{
	f->sport = bpf_ntohs(ports[0]);
	f->dport = bpf_ntohs(ports[1]);
	f->policy_port = f->dport;
}

static __always_inline void l4_icmp(struct flow4 *f, const struct icmphdr *ih)
{
	f->icmp_type = ih->type;
	f->icmp_code = ih->code;
	if (ih->type == ICMP_ECHO)
		f->sport = bpf_ntohs(ih->un.echo.id);
	else if (ih->type == ICMP_ECHOREPLY)
		f->dport = bpf_ntohs(ih->un.echo.id);
	/* Kubernetes policy names no ICMP ports: only any-protocol entries (and
	 * explicit ICMP every-port entries) match, with port 0. */
	f->policy_port = 0;
}

/* Reads the L4 ports (or ICMP id) at off into f with bpf_skb_load_bytes (any skb, and
 * any offset: the ICMP error's embedded header too). Returns PARSE_OK or a drop
 * reason. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct flow4 *f)
{
	switch (f->protocol) {
	case IPPROTO_TCP: {
		struct tcphdr th;

		if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)) < 0)
			return DROP_CT_INVALID_HDR;
		l4_tcp(f, &th);
		break;
	}
	case IPPROTO_UDP:
	case MEMBRANE_IPPROTO_SCTP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return DROP_CT_INVALID_HDR;
		l4_ports(f, ports);
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr ih;

		if (bpf_skb_load_bytes(skb, off, &ih, sizeof(ih)) < 0)
			return DROP_CT_INVALID_HDR;
		l4_icmp(f, &ih);
		break;
	}
	default:
		f->policy_port = 0;
	}
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
	f->protocol = ip.protocol;
	*l4off = off + ihl;
	if (bpf_ntohs(ip.frag_off) & 0x1fff) {
		/* A non-first fragment has no L4 header. It is not tracked; policy decides
		 * it with port 0 (so only any-protocol entries allow it). */
		f->fragment = 1;
		return PARSE_OK;
	}
	return parse_l4(skb, *l4off, f);
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
		f->protocol = ip->protocol;
		f->fragment = 1;
		*l4off = ETH_HLEN + ihl;
		return PARSE_OK;
	}
	switch (ip->protocol) {
	case IPPROTO_TCP:
		if (l4 + sizeof(struct tcphdr) > data_end)
			return PARSE_SLOW;
		l4_tcp(f, l4);
		break;
	case IPPROTO_UDP:
	case MEMBRANE_IPPROTO_SCTP:
		if (l4 + 2 * sizeof(__be16) > data_end)
			return PARSE_SLOW;
		l4_ports(f, l4);
		break;
	case IPPROTO_ICMP:
		if (l4 + sizeof(struct icmphdr) > data_end)
			return PARSE_SLOW;
		l4_icmp(f, l4);
		break;
	default:
		f->policy_port = 0;
	}
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->protocol = ip->protocol;
	*l4off = ETH_HLEN + ihl;
	return PARSE_OK;
}

/* For ICMP errors: does the embedded packet belong to a flow this endpoint tracks? */
static __always_inline int icmp_error_related(struct __sk_buff *skb, __u32 l4off,
					      __u16 endpoint_id, __u8 dir,
					      const struct flow4 *f, __u64 now,
					      __u32 rev)
{
	struct flow4 inner = {};
	__u32 inner_l4off;

	if (f->protocol != IPPROTO_ICMP)
		return 0;
	if (f->icmp_type != ICMP_DEST_UNREACH && f->icmp_type != ICMP_TIME_EXCEEDED &&
	    f->icmp_type != ICMP_PARAMETERPROB)
		return 0;
	/* The embedded IPv4 header follows the 8-byte ICMP header. */
	if (parse_ipv4_at(skb, l4off + sizeof(struct icmphdr), &inner, &inner_l4off,
			  DROP_INVALID) != PARSE_OK)
		return 0;
	if (!ct_tracked(&inner))
		return 0;
	return ct_related(endpoint_id, dir, &inner, now, rev);
}

static __always_inline void fill_event_flow(struct event *ev, const struct flow4 *f)
{
	ev->protocol = f->protocol;
	ev->saddr = f->saddr;
	ev->daddr = f->daddr;
	ev->tcp_flags = f->tcp_flags;
	if (f->protocol == IPPROTO_ICMP) {
		ev->sport = f->icmp_type == ICMP_ECHOREPLY ? f->dport : f->sport;
		ev->dport = ((__u16)f->icmp_type << 8) | f->icmp_code;
	} else {
		ev->sport = f->sport;
		ev->dport = f->dport;
	}
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

/* Peer identities of a forward packet into the event (slow path only). */
static __always_inline void lookup_peer(const struct flow4 *f, __u8 dir, struct event *ev,
					__u32 *peer_id, __u32 *cidr_id)
{
	__be32 peer_addr = dir == DIR_EGRESS ? f->daddr : f->saddr;
	__u32 shown_id;

	*peer_id = lookup_peer_identity(peer_addr);
	*cidr_id = lookup_cidr_identity(peer_addr);
	/* Events name the peer by its CIDR identity when nothing more specific than
	 * world knows the address (an off-cluster host inside an ipBlock). */
	shown_id = (*peer_id == IDENTITY_WORLD && *cidr_id) ? *cidr_id : *peer_id;
	if (dir == DIR_EGRESS)
		ev->dst_identity = shown_id;
	else
		ev->src_identity = shown_id;
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, const struct endpoint_info *ep,
				       __u8 dir, struct event *ev)
{
	struct flow4 f = {};
	struct ct_entry *entry = NULL;
	__u32 l4off = 0, peer_id, cidr_id, rev;
	__u8 match = MATCH_NONE, unreplied = 0, verdict_dir;
	__u64 now;
	int ret, ct, is_reply, verdict = POLICY_ALLOWED;

	/* Linear headers (nearly every packet): direct access; otherwise copies. */
	ret = parse_ipv4_direct(skb, &f, &l4off);
	if (ret == PARSE_SLOW)
		ret = parse_ipv4_at(skb, ETH_HLEN, &f, &l4off, DROP_INVALID);
	fill_event_flow(ev, &f);
	if (ret != PARSE_OK)
		return drop_packet(skb, ev, ret);

	if (dir == DIR_EGRESS && f.saddr != ep->ipv4) {
		ev->src_identity = 0;
		return drop_packet(skb, ev, DROP_INVALID_SIP);
	}

	/* Read the revision BEFORE any lookup that decides the verdict: a stamp must
	 * never be newer than the maps it was decided from (revision.h). */
	rev = current_policy_revision();
	now = bpf_ktime_get_ns();
	if (ct_tracked(&f))
		ct = ct_lookup(ep->endpoint_id, dir, &f, now, &entry, &unreplied);
	else if (icmp_error_related(skb, l4off, ep->endpoint_id, dir, &f, now, rev))
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
	ev->is_reply = is_reply;
	verdict_dir = is_reply ? !dir : dir;
	lookup_peer(&f, dir, ev, &peer_id, &cidr_id);
	if (policy_applies(ep, verdict_dir)) {
		/* The tiers and NetworkPolicy, in a fixed number of lookups (policy.h). */
		verdict = policy_decide(ep, verdict_dir, peer_id, cidr_id, f.protocol,
					ct_verdict_port(&f, is_reply), skb->len, &match);
		ev->match_type = match;
		if (verdict == POLICY_DENIED) {
			if (ct == CT_NEW) {
				ev->type = EVENT_POLICY_VERDICT;
				ev->allowed = 0;
				ev->drop_reason = DROP_POLICY;
				emit_event(skb, ev);
			}
			/* A tracked connection keeps its old stamp and expiry: every further
			 * packet of it, either way, is evaluated (and dropped, and reported)
			 * until an allow returns. */
			return drop_packet(skb, ev, DROP_POLICY);
		}
		if (verdict == POLICY_AUDITED) {
			/* Audit mode: what policy denies passes, reported as AUDIT where a
			 * drop would have been; then it is tracked and stamped as allowed. */
			ev->type = EVENT_POLICY_VERDICT;
			ev->allowed = POLICY_AUDITED;
			ev->drop_reason = DROP_POLICY;
			emit_event(skb, ev);
		}
	}

	if (ct == CT_ESTABLISHED || is_reply) {
		ct_packet(entry, unreplied, ep->endpoint_id, dir, &f, is_reply, skb->len, now,
			  rev);
		return TC_ACT_OK;
	}
	if (ct == CT_NEW) {
		if (ct_create(ep->endpoint_id, dir, &f, skb->len, now, rev) < 0)
			return drop_packet(skb, ev, DROP_CT_MAP_INSERTION);
		if (verdict == POLICY_ALLOWED) {
			ev->type = EVENT_POLICY_VERDICT;
			ev->allowed = 1;
			ev->drop_reason = 0;
			emit_event(skb, ev);
		}
	}
	return TC_ACT_OK;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct endpoint_info *ep;
	struct event ev = {};

	ev.direction = dir;
	ep = lookup_endpoint(skb->ifindex);
	if (!ep) {
		/* Programs are attached only after the endpoint entry is written and
		 * detached before it is deleted; an interface without one is an
		 * inconsistency, and we fail closed. */
		return drop_packet(skb, &ev, DROP_NO_ENDPOINT);
	}
	ev.endpoint_id = ep->endpoint_id;
	if (dir == DIR_EGRESS)
		ev.src_identity = ep->identity;
	else
		ev.dst_identity = ep->identity;

	/* skb->protocol is the EtherType in network byte order (bcc's bpf_htons is not
	 * a constant expression, hence ifs rather than a switch). */
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return handle_ipv4(skb, ep, dir, &ev);
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	if (endpoint_enforced(ep, dir))
		return drop_packet(skb, &ev, DROP_UNSUPPORTED_L3);
	return TC_ACT_OK;
}

/* tc clsact ingress of the host-side veth: the pod's egress. */
int from_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

/* tc clsact egress of the host-side veth: the pod's ingress. */
int to_container(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}
