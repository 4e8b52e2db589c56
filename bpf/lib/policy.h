/* SPDX-License-Identifier: Apache-2.0 */
/* Policy: every local endpoint's verdicts, in one LPM trie, decided by three lookups.
 *
 * policy: BPF_MAP_TYPE_LPM_TRIE, key struct policy_key -> struct policy_entry.
 *   Written by the agent's writer (agent/datapath/writer.py), which diffs the engine's
 *   EndpointPolicy against this map. Size MEMBRANE_POLICY_MAX (all endpoints share it;
 *   a full map is MapFullError in the agent, never a silent allow).
 *
 * Why an LPM trie: the key's fields are ordered from "always exact" to "may be
 * wildcarded", so a shorter prefix is a wildcard over the trailing fields:
 *
 *   bits  0..31  peer identity   always exact (ANY peer is identity 0, looked up apart)
 *   bits 32..47  endpoint id     always exact
 *   bits 48..55  direction       always exact
 *   bits 56..63  protocol        prefixlen 56 = any protocol, any port (L3 only)
 *   bits 64..79  port (BE)       prefixlen 64 = this protocol, any port;
 *                                64 + n = a block of 2^(16-n) ports; 80 = one port
 *
 * The port is big-endian so that its high bits come first in the trie: a port range
 * (endPort, a tier rule's range) becomes a handful of power-of-two aligned prefixes,
 * never one entry per port. The identity and endpoint id are host byte order: they
 * are always fully covered by the prefix, so their bit order does not matter, only
 * that the agent writes them as the C reads them (layout.py).
 *
 * Tiers. A direction's verdict has up to four steps (agent/policy/mapstate.py):
 *   1. the Admin tier: the first matching rule (lowest rank) decides, unless it Passes;
 *   2. NetworkPolicy, when it isolates the direction: allowed iff an allow matches;
 *   3. the Baseline tier, as the Admin tier;
 *   4. the default: allowed, or denied under the enforcement mode "always".
 * One entry holds all three kinds of facts about its key, so the steps need no more
 * lookups than NetworkPolicy alone did. The value carries:
 *   match_type   the NetworkPolicy step: the best allow covering the key (MATCH_NONE:
 *                no allow does);
 *   admin_*      the Admin step: the first Admin-tier rule covering the key, as its rank
 *                (its place among the tier's rules for this endpoint and direction) and
 *                a flags byte (action, audit, its own match type); flags 0: no rule;
 *   baseline_*   the same for the Baseline tier.
 * "Covering" is what makes one lookup enough: the LPM returns only the longest prefix
 * of a key, so the agent writes every prefix with the facts of every rule whose range
 * contains it, not only its own (writer.py `flatten`: an Admin Deny of TCP any port and
 * a NetworkPolicy allow of TCP/80 give the /80 entry both). Every rule matching a packet
 * then shows in the entry of one of the three lookups, and the verdict is
 *   admin    = the earliest admin rule of the three entries (lowest rank)
 *   np       = the most specific allow of the three (L3-L4 > L3-only > L4-only > all)
 *   baseline = the earliest baseline rule of the three
 * combined by the four steps above: a fixed cost, whatever the number of rules.
 * An entry written by an earlier Membrane has zero tier bytes (they were padding): it
 * reads as "no tier rule", so pinned maps keep their meaning across the upgrade.
 *
 * A packet (one without a current cached verdict in conntrack, see revision.h) is
 * looked up up to three times with the full 80-bit key: with the peer's ipcache
 * identity, with its CIDR identity (when an ipBlock or networks prefix holds the peer),
 * and with ANY (0). Verdicts are cached in conntrack stamps exactly as before: the
 * agent bumps the policy revision after every write, tier entries included, so a
 * revoked allow (or a new Deny) cuts established connections at their next packet.
 */
#ifndef MEMBRANE_POLICY_H
#define MEMBRANE_POLICY_H

#include "common.h"
#include "endpoints.h"

#define POLICY_PREFIX_ANY_PROTO 56 /* peer + endpoint + direction */
#define POLICY_PREFIX_ANY_PORT 64  /* ... + protocol */
#define POLICY_PREFIX_FULL 80      /* ... + port */

/* 16 bytes: prefixlen (kernel LPM layout) then 12 data bytes; the trailing pad is never
 * covered by a prefix (max prefixlen used is 80 of the 96 data bits). */
struct policy_key {
	__u32 prefixlen;
	__u32 peer_identity; /* host byte order; 0 = any peer */
	__u16 endpoint_id;   /* host byte order */
	__u8 direction;      /* DIR_INGRESS / DIR_EGRESS */
	__u8 protocol;       /* IP protocol number; wildcarded by prefixlen 56 */
	__be16 dport;        /* network byte order; wildcarded bit-wise by prefixlen */
	__u16 pad;
};

/* 24 bytes. Counters first (u64, naturally aligned). They count DECISIONS, not
 * traffic: a policy evaluation this entry won (it decided an allow), i.e. the first
 * packet of each new connection, the first forward packet of an established
 * connection after each policy revision change (revision.h: its cached verdict was
 * stale), and every packet of a flow conntrack does not track (other IP protocols,
 * ICMP other than echo, non-first fragments). Forward packets that pass on a
 * connection's cached verdict are not counted: that keeps these shared lines (LPM tries
 * have no per-CPU flavour; the adds are atomic) off the per-packet path. `membrane bpf
 * policy get` shows them as PACKETS/BYTES. The tier fields sit where 7 bytes of padding
 * were (see the header comment), match_type where it always was. */
struct policy_entry {
	__u64 packets;        /* allow decisions this entry won */
	__u64 bytes;          /* skb->len sum of the packets so decided */
	__u8 match_type;      /* NetworkPolicy step: MATCH_* of the best covering allow */
	__u8 admin_flags;     /* TIER_* of the first covering Admin-tier rule; 0: none */
	__u16 admin_rank;     /* its rank: lower decides first (0: the built-in host allow) */
	__u8 baseline_flags;  /* the same for the Baseline tier */
	__u8 pad;
	__u16 baseline_rank;
};

BPF_TABLE_PINNED("lpm_trie", struct policy_key, struct policy_entry, policy,
		 MEMBRANE_POLICY_MAX, MEMBRANE_PIN_DIR "/policy", BPF_F_NO_PREALLOC);

/* A tier rule's flags byte: action in bits 0-1, audit in bit 2, the rule's own match
 * type (MATCH_*, for events) in bits 3-5. Never 0 for a rule: every action is >= 1. */
#define TIER_ALLOW 1
#define TIER_DENY 2
#define TIER_PASS 3
#define TIER_ACTION_MASK 0x03
#define TIER_AUDIT 0x04 /* the rule's policy is in audit mode */
#define TIER_MATCH_SHIFT 3

/* Bits of struct endpoint_info.flags (endpoints.h) the decision reads, beside
 * EP_F_*_ENFORCED there (a NetworkPolicy isolates the direction: step 2 decides). */
#define EP_F_INGRESS_TIERED 0x04       /* look up ingress even when not ENFORCED */
#define EP_F_EGRESS_TIERED 0x08
#define EP_F_INGRESS_DEFAULT_DENY 0x10 /* step 4 denies ingress: enforcement "always" */
#define EP_F_EGRESS_DEFAULT_DENY 0x20
#define EP_F_AUDIT 0x40                /* the endpoint's denials pass, reported AUDIT */

/* What policy_decide() returns: the values of struct event.allowed (events.h). */
#define POLICY_DENIED 0
#define POLICY_ALLOWED 1
#define POLICY_AUDITED 2 /* denied by policy, let through by audit mode */

/* Is policy looked up for this direction at all? (Else the packet is allowed unseen.) */
static __always_inline int policy_applies(const struct endpoint_info *ep, __u8 dir)
{
	__u8 bits = dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCED | EP_F_INGRESS_TIERED
				       : EP_F_EGRESS_ENFORCED | EP_F_EGRESS_TIERED;

	return ep->flags & bits;
}

/* If-chains rather than a switch: clang turns a dense switch into a lookup table in
 * .rodata, which bcc cannot relocate (the load fails with "unknown opcode"). */
static __always_inline int match_specificity(__u8 match_type)
{
	if (match_type == MATCH_L3_L4)
		return 4;
	if (match_type == MATCH_L3_ONLY)
		return 3;
	if (match_type == MATCH_L4_ONLY)
		return 2;
	if (match_type == MATCH_ALL)
		return 1;
	return 0;
}

static __always_inline struct policy_entry *
policy_lookup_one(__u16 endpoint_id, __u8 dir, __u32 peer, __u8 protocol, __u16 port)
{
	struct policy_key key = {
		.prefixlen = POLICY_PREFIX_FULL,
		.peer_identity = peer,
		.endpoint_id = endpoint_id,
		.direction = dir,
		.protocol = protocol,
		.dport = bpf_htons(port),
	};

	return policy.lookup(&key);
}

/* Folds one lookup's entry (or NULL) into the best of each step so far: the earliest
 * Admin rule, the most specific NetworkPolicy allow, the earliest Baseline rule. */
static __always_inline void policy_best(struct policy_entry **admin, struct policy_entry **np,
					struct policy_entry **baseline, struct policy_entry *e)
{
	if (!e)
		return;
	if (e->admin_flags && (!*admin || e->admin_rank < (*admin)->admin_rank))
		*admin = e;
	if (e->match_type != MATCH_NONE &&
	    (!*np || match_specificity(e->match_type) > match_specificity((*np)->match_type)))
		*np = e;
	if (e->baseline_flags && (!*baseline || e->baseline_rank < (*baseline)->baseline_rank))
		*baseline = e;
}

/* The verdict for a forward packet of a direction policy_applies() to: POLICY_ALLOWED,
 * POLICY_DENIED or POLICY_AUDITED (see the header comment for the steps). *match_type
 * is the deciding rule's (MATCH_NONE when the default decided). The deciding entry's
 * counters grow when it allowed (struct policy_entry). Called only when no current
 * cached verdict exists. */
static __always_inline int policy_decide(const struct endpoint_info *ep, __u8 dir,
					 __u32 peer_id, __u32 cidr_id, __u8 protocol,
					 __u16 port, __u32 len, __u8 *match_type)
{
	struct policy_entry *admin = NULL, *np = NULL, *baseline = NULL, *decider = NULL;
	__u8 flags = 0, deny_bit;
	int allowed;

	policy_best(&admin, &np, &baseline,
		    policy_lookup_one(ep->endpoint_id, dir, peer_id, protocol, port));
	if (cidr_id && cidr_id != peer_id)
		policy_best(&admin, &np, &baseline,
			    policy_lookup_one(ep->endpoint_id, dir, cidr_id, protocol, port));
	policy_best(&admin, &np, &baseline,
		    policy_lookup_one(ep->endpoint_id, dir, 0, protocol, port));

	if (admin && (admin->admin_flags & TIER_ACTION_MASK) != TIER_PASS) {
		decider = admin;
		flags = admin->admin_flags;
	} else if (ep->flags & (dir == DIR_INGRESS ? EP_F_INGRESS_ENFORCED
						   : EP_F_EGRESS_ENFORCED)) {
		decider = np;
		/* The allow's own match type, in the position a tier rule keeps it. */
		flags = np ? TIER_ALLOW | (np->match_type << TIER_MATCH_SHIFT) : TIER_DENY;
	} else if (baseline && (baseline->baseline_flags & TIER_ACTION_MASK) != TIER_PASS) {
		decider = baseline;
		flags = baseline->baseline_flags;
	} else {
		deny_bit = dir == DIR_INGRESS ? EP_F_INGRESS_DEFAULT_DENY : EP_F_EGRESS_DEFAULT_DENY;
		flags = (ep->flags & deny_bit) ? TIER_DENY : TIER_ALLOW;
	}
	*match_type = (flags >> TIER_MATCH_SHIFT) & 0x7;

	allowed = (flags & TIER_ACTION_MASK) == TIER_ALLOW;
	if (allowed && decider) {
		__sync_fetch_and_add(&decider->packets, 1);
		__sync_fetch_and_add(&decider->bytes, len);
	}
	if (allowed)
		return POLICY_ALLOWED;
	if ((ep->flags & EP_F_AUDIT) || (flags & TIER_AUDIT))
		return POLICY_AUDITED;
	return POLICY_DENIED;
}

#endif /* MEMBRANE_POLICY_H */
