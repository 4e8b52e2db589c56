/* SPDX-License-Identifier: Apache-2.0 */
/* Policy: the allow-list of every local endpoint, in one LPM trie.
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
 * (endPort) becomes a handful of power-of-two aligned prefixes, never one entry per
 * port. The identity and endpoint id are host byte order: they are always fully
 * covered by the prefix, so their bit order does not matter, only that the agent
 * writes them as the C reads them (layout.py).
 *
 * A packet (one without a current cached verdict in conntrack, see revision.h) is
 * looked up up to three times with the full 80-bit key: with the peer's
 * ipcache identity, with its CIDR identity (when an ipBlock prefix holds the peer), and
 * with ANY (0). The kernel returns the longest matching prefix in each; the most
 * specific of the three wins (L3-L4 > L3-only > L4-only > all), as
 * EndpointPolicy.evaluate in agent/policy/mapstate.py does.
 */
#ifndef MEMBRANE_POLICY_H
#define MEMBRANE_POLICY_H

#include "common.h"

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

/* Counters first (u64, naturally aligned). They count DECISIONS, not traffic: a policy
 * evaluation this entry won (it allowed the packet), i.e. the first packet of each new
 * connection, the first forward packet of an established connection after each policy
 * revision change (revision.h: its cached verdict was stale), and every packet of a
 * flow conntrack does not track (other IP protocols, ICMP other than echo, non-first
 * fragments). Forward packets that pass on a connection's cached verdict are not
 * counted: that keeps these shared lines (LPM tries have no per-CPU flavour; the adds
 * are atomic) off the per-packet path. `membrane bpf policy get` shows them as
 * PACKETS/BYTES. */
struct policy_entry {
	__u64 packets;   /* allow decisions this entry won */
	__u64 bytes;     /* skb->len sum of the packets so decided */
	__u8 match_type; /* MATCH_*, written by the agent (PolicyKey.match_type) */
	__u8 pad[7];
};

BPF_TABLE_PINNED("lpm_trie", struct policy_key, struct policy_entry, policy,
		 MEMBRANE_POLICY_MAX, MEMBRANE_PIN_DIR "/policy", BPF_F_NO_PREALLOC);

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

/* The best allow entry for a forward packet, or NULL (denied). *match_type is set to
 * the entry's match type (MATCH_NONE on deny). On allow, the entry's decision counters
 * grow (see struct policy_entry). Called only when no current cached verdict exists. */
static __always_inline struct policy_entry *
policy_match(__u16 endpoint_id, __u8 dir, __u32 peer_id, __u32 cidr_id, __u8 protocol,
	     __u16 port, __u32 len, __u8 *match_type)
{
	struct policy_entry *best = NULL, *e;
	int best_spec = 0, spec;

	e = policy_lookup_one(endpoint_id, dir, peer_id, protocol, port);
	if (e) {
		best = e;
		best_spec = match_specificity(e->match_type);
	}
	if (cidr_id && cidr_id != peer_id) {
		e = policy_lookup_one(endpoint_id, dir, cidr_id, protocol, port);
		if (e) {
			spec = match_specificity(e->match_type);
			if (!best || spec > best_spec) {
				best = e;
				best_spec = spec;
			}
		}
	}
	e = policy_lookup_one(endpoint_id, dir, 0, protocol, port);
	if (e) {
		spec = match_specificity(e->match_type);
		if (!best || spec > best_spec) {
			best = e;
			best_spec = spec;
		}
	}
	if (!best) {
		*match_type = MATCH_NONE;
		return NULL;
	}
	*match_type = best->match_type;
	__sync_fetch_and_add(&best->packets, 1);
	__sync_fetch_and_add(&best->bytes, len);
	return best;
}

#endif /* MEMBRANE_POLICY_H */
