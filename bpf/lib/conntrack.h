/* SPDX-License-Identifier: Apache-2.0 */
/* Connection tracking: which flows a local endpoint is part of, and in which state.
 *
 * conntrack: BPF_MAP_TYPE_LRU_HASH, key struct ct_key -> struct ct_entry. Written by
 *   the datapath (entries are created by the first allowed packet of a connection, in
 *   either direction, enforced or not, so replies pass when enforcement starts later);
 *   the agent deletes expired entries (collect_conntrack_garbage) and reads it for
 *   `bpf ct list`. Size MEMBRANE_CT_MAX. LRU: when full, the least recently used entry
 *   is evicted rather than the insert failing, so a full table can cut an idle old
 *   connection but never opens anything; the agent reports the fill level.
 * conntrack6: the same for IPv6, key struct ct6_key (the same fields, addresses of 16
 *   bytes), value struct ct_entry, size MEMBRANE_CT_MAX. A map of its own rather than
 *   one key wide enough for both: IPv4 packets keep hashing and comparing 16 bytes,
 *   not 40, and the IPv4 map keeps the layout pinned by earlier builds.
 *
 * One entry per (endpoint, direction of the first packet, 5-tuple of the first
 * packet). A later packet is:
 *   - forward  (same tuple, same direction): allowed without a policy lookup only while
 *     the entry's policy_rev equals the current policy revision (revision.h); otherwise
 *     it is checked against policy again (identities, policy) and, if allowed,
 *     re-stamped. Every agent write that can change a verdict bumps the revision, so
 *     a revoked allow still cuts an established connection at its next packet;
 *   - reply    (swapped tuple, opposite direction): passes without a policy check;
 *   - related  (an ICMP error whose embedded packet belongs to a tracked flow): passes.
 * An entry whose expiry has passed counts as absent even before GC deletes it.
 *
 * Per-packet writes: none in the steady state. An established packet writes its entry
 * only when something changed: a TCP flag not seen before on that side (SYN, FIN, RST:
 * state transitions are recorded at once), the first reply, a new policy stamp, or an
 * expiry that lags now + timeout by CT_REFRESH_INTERVAL_NS (1 s) or more, or by an
 * eighth of the timeout when that is shorter (so expiry is refreshed about once a
 * second per busy entry, and an idle flow expires up to that much early).
 * Both CPUs of a flow (data one way, ACKs the other) then share the entry's cache line
 * read-only instead of bouncing it on every packet.
 *
 * packets/bytes are counted only when compiled with MEMBRANE_CT_ACCOUNTING
 * (CompileOptions.ct_accounting): two atomic adds per packet on a shared line, the
 * cost this file otherwise avoids (as Cilium's bpf-conntrack-accounting, off by
 * default). Without it both stay 0.
 *
 * Tracked: TCP (state machine below), UDP and SCTP (by ports, idle timeout; SCTP's
 * association state is not followed), ICMP and ICMPv6 echo (by echo id). Everything
 * else (other ICMP types, other IP protocols, non-first fragments) is not tracked and
 * is decided by policy on every packet, in both directions: a reply of such a protocol
 * needs its own allow.
 *
 * ICMP echo tuple convention: a request (ICMP type 8, ICMPv6 128) has sport = echo id,
 * dport = 0; a reply (ICMP type 0, ICMPv6 129) has sport = 0, dport = echo id. Swapping
 * the reply's tuple then gives the request's, which is how every reply is found.
 *
 * Timeouts (seconds; override with -D): like a stateful firewall's idle timeouts,
 * refreshed by the flow's packets (at most once per CT_REFRESH_INTERVAL_NS, above).
 */
#ifndef MEMBRANE_CONNTRACK_H
#define MEMBRANE_CONNTRACK_H

#include "common.h"
#include "parse.h"

#ifndef CT_TIMEOUT_SYN
#define CT_TIMEOUT_SYN 60          /* SYN sent, no reply yet */
#endif
#ifndef CT_TIMEOUT_ESTABLISHED
#define CT_TIMEOUT_ESTABLISHED 21600 /* 6 h, like Cilium's TCP lifetime */
#endif
#ifndef CT_TIMEOUT_FIN_WAIT
#define CT_TIMEOUT_FIN_WAIT 120    /* one side sent FIN: half-closed */
#endif
#ifndef CT_TIMEOUT_CLOSE
#define CT_TIMEOUT_CLOSE 10        /* both FINs or an RST seen */
#endif
#ifndef CT_TIMEOUT_UDP
#define CT_TIMEOUT_UDP 60
#endif
#ifndef CT_TIMEOUT_SCTP
#define CT_TIMEOUT_SCTP 300        /* heartbeats (30 s by default) keep it alive */
#endif
#ifndef CT_TIMEOUT_ICMP
#define CT_TIMEOUT_ICMP 30
#endif

#define CT_NSEC_PER_SEC 1000000000ULL

/* An established packet rewrites the expiry only when it lags now + timeout by this
 * much (see the top of this file). */
#ifndef CT_REFRESH_INTERVAL_NS
#define CT_REFRESH_INTERVAL_NS CT_NSEC_PER_SEC
#endif

/* ct_entry.state; bpf.py maps them to ConntrackEntry.state names. */
#define CT_STATE_SYN_SENT 1
#define CT_STATE_ESTABLISHED 2
#define CT_STATE_FIN_WAIT 3
#define CT_STATE_CLOSING 4
#define CT_STATE_UDP 5
#define CT_STATE_ICMP 6
#define CT_STATE_SCTP 7

/* ct_entry.flags */
#define CT_F_SEEN_REPLY 0x01

/* Result of ct_lookup(). */
#define CT_NEW 0
#define CT_ESTABLISHED 1 /* forward packet of a tracked flow */
#define CT_REPLY 2
#define CT_RELATED 3
#define CT_UNTRACKED 4   /* protocol not tracked: policy per packet */

/* 16 bytes, no holes: addresses, then ports, then the small fields. */
struct ct_key {
	__be32 saddr;      /* of the first packet, network byte order */
	__be32 daddr;
	__u16 sport;       /* host byte order; ICMP: see the echo convention above */
	__u16 dport;
	__u16 endpoint_id; /* host byte order */
	__u8 protocol;
	__u8 direction;    /* DIR_* of the first packet at this endpoint */
};

/* 32 bytes: u64 fields first, then the byte-sized state, then the policy stamp. The
 * stamp took the place of a zero pad, and nothing before it moved: entries a previous
 * build left in the pinned map read as "stamp 0" (never current: revalidated at their
 * next forward packet) with their state intact. */
struct ct_entry {
	__u64 expires_ns;  /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) deadline */
	__u64 packets;     /* both directions; only with MEMBRANE_CT_ACCOUNTING, else 0 */
	__u64 bytes;       /* both directions, skb->len; idem */
	__u8 state;        /* CT_STATE_* */
	__u8 tx_flags;     /* OR of TCP flags seen on forward packets */
	__u8 rx_flags;     /* OR of TCP flags seen on replies */
	__u8 flags;        /* CT_F_* */
	__u32 policy_rev;  /* policy revision (revision.h) under which the forward
			    * direction was last allowed; 0 = never (no cached verdict) */
};

/* 40 bytes, no holes: struct ct_key with 16-byte addresses. */
struct ct6_key {
	__be32 saddr[4];   /* of the first packet, network byte order */
	__be32 daddr[4];
	__u16 sport;       /* host byte order; ICMPv6: see the echo convention above */
	__u16 dport;
	__u16 endpoint_id; /* host byte order */
	__u8 protocol;
	__u8 direction;    /* DIR_* of the first packet at this endpoint */
};

BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_entry, conntrack, MEMBRANE_CT_MAX,
		 MEMBRANE_PIN_DIR "/conntrack");
BPF_TABLE_PINNED("lru_hash", struct ct6_key, struct ct_entry, conntrack6, MEMBRANE_CT_MAX,
		 MEMBRANE_PIN_DIR "/conntrack6");

/* icmp_proto: the family's ICMP (IPPROTO_ICMP or IPPROTO_ICMPV6), constant once inlined. */
static __always_inline int ct_tracked(const struct flow_l4 *l, __u8 icmp_proto)
{
	if (l->fragment)
		return 0;
	switch (l->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case MEMBRANE_IPPROTO_SCTP:
		return 1;
	}
	return l->protocol == icmp_proto && icmp_is_echo(icmp_proto, l->icmp_type);
}

/* If-chain, not a switch: see match_specificity() in policy.h. */
static __always_inline __u64 ct_timeout_ns(__u8 state)
{
	__u64 s = CT_TIMEOUT_ICMP;

	if (state == CT_STATE_SYN_SENT)
		s = CT_TIMEOUT_SYN;
	else if (state == CT_STATE_ESTABLISHED)
		s = CT_TIMEOUT_ESTABLISHED;
	else if (state == CT_STATE_FIN_WAIT)
		s = CT_TIMEOUT_FIN_WAIT;
	else if (state == CT_STATE_CLOSING)
		s = CT_TIMEOUT_CLOSE;
	else if (state == CT_STATE_UDP)
		s = CT_TIMEOUT_UDP;
	else if (state == CT_STATE_SCTP)
		s = CT_TIMEOUT_SCTP;
	return s * CT_NSEC_PER_SEC;
}

static __always_inline struct ct_entry *ct_get(struct ct_key *key, __u64 now)
{
	struct ct_entry *e = conntrack.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

/* The key of a flow as its first packet at this endpoint made it (the forward tuple). */
static __always_inline struct ct_key ct_key_of(__u16 endpoint_id, __u8 dir,
					       const struct flow4 *f)
{
	struct ct_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.sport = f->l4.sport,
		.dport = f->l4.dport,
		.endpoint_id = endpoint_id,
		.protocol = f->l4.protocol,
		.direction = dir,
	};
	return key;
}

/* Forward, reply or new. *entry is set on forward and reply. */

static __always_inline int ct_lookup(__u16 endpoint_id, __u8 dir, const struct flow4 *f,
				     __u64 now, struct ct_entry **entry)
{
	struct ct_key key = ct_key_of(endpoint_id, dir, f);

	*entry = ct_get(&key, now);
	if (*entry)
		return CT_ESTABLISHED;

	key.saddr = f->daddr;
	key.daddr = f->saddr;
	key.sport = f->l4.dport;
	key.dport = f->l4.sport;
	key.direction = !dir;
	*entry = ct_get(&key, now);
	if (*entry)
		return CT_REPLY;
	return CT_NEW;
}

/* Is the packet embedded in an ICMP error (its tuple in *inner) part of a flow this
 * endpoint tracks? Either it was a forward packet of a flow first seen in the other
 * direction (our pod's packet bounced back to it), or a reply of a flow first seen in
 * this direction (our pod's reply bounced). */
static __always_inline int ct_related(__u16 endpoint_id, __u8 dir, const struct flow4 *inner,
				      __u64 now)
{
	struct ct_key key = ct_key_of(endpoint_id, !dir, inner);

	if (ct_get(&key, now))
		return 1;
	key.saddr = inner->daddr;
	key.daddr = inner->saddr;
	key.sport = inner->l4.dport;
	key.dport = inner->l4.sport;
	key.direction = dir;
	return ct_get(&key, now) != NULL;
}

/* TCP state after this packet, computed on copies: the caller writes the entry only if
 * something changed. */
static __always_inline void ct_tcp_next(__u8 *state, __u8 *tx_flags, __u8 *rx_flags,
					__u8 *flags, __u8 tcp_flags, int is_reply)
{
	if (!is_reply && *state == CT_STATE_CLOSING && (tcp_flags & TCP_FLAG_SYN) &&
	    !(tcp_flags & TCP_FLAG_ACK)) {
		/* The tuple is reused by a new connection after the old one closed. */
		*state = CT_STATE_SYN_SENT;
		*tx_flags = 0;
		*rx_flags = 0;
		*flags = 0;
	}
	if (is_reply)
		*rx_flags |= tcp_flags;
	else
		*tx_flags |= tcp_flags;

	if (tcp_flags & TCP_FLAG_RST)
		*state = CT_STATE_CLOSING;
	else if ((*tx_flags & TCP_FLAG_FIN) && (*rx_flags & TCP_FLAG_FIN))
		*state = CT_STATE_CLOSING;
	else if (tcp_flags & TCP_FLAG_FIN) {
		if (*state != CT_STATE_CLOSING)
			*state = CT_STATE_FIN_WAIT;
	} else if (is_reply && *state == CT_STATE_SYN_SENT)
		*state = CT_STATE_ESTABLISHED;
}

/* Account a forward or reply packet on its entry and push its expiry out, writing the
 * entry only when a field changes (see the top of this file). stamp: for a forward
 * packet just allowed by a policy evaluation, the revision it was evaluated under
 * (written into policy_rev); 0 leaves the stamp alone. Races between CPUs on the state
 * bytes are benign: the last writer wins and the next packet corrects it; a lost stamp
 * only costs one more evaluation. */
static __always_inline void ct_refresh(struct ct_entry *e, const struct flow_l4 *l, int is_reply,
				       __u32 len, __u64 now, __u32 stamp)
{
	__u8 state = e->state, tx = e->tx_flags, rx = e->rx_flags, flags = e->flags;
	__u64 expires, timeout, slack;

#ifdef MEMBRANE_CT_ACCOUNTING
	__sync_fetch_and_add(&e->packets, 1);
	__sync_fetch_and_add(&e->bytes, len);
#endif
	if (l->protocol == IPPROTO_TCP)
		ct_tcp_next(&state, &tx, &rx, &flags, l->tcp_flags, is_reply);
	if (is_reply)
		flags |= CT_F_SEEN_REPLY;
	timeout = ct_timeout_ns(state);
	expires = now + timeout;
	/* Short timeouts (tests use 1 s) refresh at an eighth of the timeout instead, so
	 * a live flow never expires between refreshes. */
	slack = timeout >> 3;
	if (slack > CT_REFRESH_INTERVAL_NS)
		slack = CT_REFRESH_INTERVAL_NS;
	if (state != e->state || tx != e->tx_flags || rx != e->rx_flags ||
	    flags != e->flags) {
		/* A transition (or a flag seen for the first time): record it now, with
		 * the new state's expiry even when that is shorter (FIN, RST). */
		e->state = state;
		e->tx_flags = tx;
		e->rx_flags = rx;
		e->flags = flags;
		e->expires_ns = expires;
	} else if (expires >= e->expires_ns + slack) {
		e->expires_ns = expires;
	}
	if (stamp && e->policy_rev != stamp)
		e->policy_rev = stamp;
}

/* The entry of a new allowed flow (either family), stamped with the policy revision
 * its verdict was evaluated under. */
static __always_inline struct ct_entry ct_entry_new(const struct flow_l4 *l, __u32 len,
						    __u64 now, __u32 stamp)
{
	struct ct_entry e = { .policy_rev = stamp };

#ifdef MEMBRANE_CT_ACCOUNTING
	e.packets = 1;
	e.bytes = len;
#endif

	switch (l->protocol) {
	case IPPROTO_TCP:
		e.tx_flags = l->tcp_flags;
		if (l->tcp_flags & TCP_FLAG_RST)
			e.state = CT_STATE_CLOSING;
		else if ((l->tcp_flags & TCP_FLAG_SYN) && !(l->tcp_flags & TCP_FLAG_ACK))
			e.state = CT_STATE_SYN_SENT;
		else
			/* Mid-stream pickup (e.g. conntrack lost): allowed by policy, so
			 * trust it as established. */
			e.state = CT_STATE_ESTABLISHED;
		break;
	case IPPROTO_UDP:
		e.state = CT_STATE_UDP;
		break;
	case MEMBRANE_IPPROTO_SCTP:
		e.state = CT_STATE_SCTP;
		break;
	default:
		e.state = CT_STATE_ICMP;
	}
	e.expires_ns = now + ct_timeout_ns(e.state);
	return e;
}

/* Creates the entry for a new allowed IPv4 flow. Returns 0 or a negative errno; the
 * caller drops the packet on error (DROP_CT_MAP_INSERTION), never forwards it
 * untracked. */
static __always_inline int ct_create(__u16 endpoint_id, __u8 dir, const struct flow4 *f,
				     __u32 len, __u64 now, __u32 stamp)
{
	struct ct_key key = ct_key_of(endpoint_id, dir, f);
	struct ct_entry e = ct_entry_new(&f->l4, len, now, stamp);

	/* BPF_ANY: an expired entry with the same key may still be there. */
	return conntrack.update(&key, &e);
}

/* --- IPv6: the same lookups on conntrack6 (the entry logic above is shared) --- */

static __always_inline struct ct_entry *ct6_get(struct ct6_key *key, __u64 now)
{
	struct ct_entry *e = conntrack6.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

/* The key of f as seen in direction dir: its own tuple, or (swap) the tuple of the
 * packet it replies to. */
static __always_inline void ct6_key_fill(struct ct6_key *key, __u16 endpoint_id, __u8 dir,
					 const struct flow6 *f, int swap)
{
	if (swap) {
		__builtin_memcpy(key->saddr, f->daddr, sizeof(key->saddr));
		__builtin_memcpy(key->daddr, f->saddr, sizeof(key->daddr));
		key->sport = f->l4.dport;
		key->dport = f->l4.sport;
	} else {
		__builtin_memcpy(key->saddr, f->saddr, sizeof(key->saddr));
		__builtin_memcpy(key->daddr, f->daddr, sizeof(key->daddr));
		key->sport = f->l4.sport;
		key->dport = f->l4.dport;
	}
	key->endpoint_id = endpoint_id;
	key->protocol = f->l4.protocol;
	key->direction = dir;
}

/* ct_lookup for IPv6. */
static __always_inline int ct6_lookup(__u16 endpoint_id, __u8 dir, const struct flow6 *f,
				      __u64 now, struct ct_entry **entry)
{
	struct ct6_key key;

	ct6_key_fill(&key, endpoint_id, dir, f, 0);
	*entry = ct6_get(&key, now);
	if (*entry)
		return CT_ESTABLISHED;
	ct6_key_fill(&key, endpoint_id, !dir, f, 1);
	*entry = ct6_get(&key, now);
	if (*entry)
		return CT_REPLY;
	return CT_NEW;
}

/* ct_related for IPv6 (the packet embedded in an ICMPv6 error). */
static __always_inline int ct6_related(__u16 endpoint_id, __u8 dir, const struct flow6 *inner,
				       __u64 now)
{
	struct ct6_key key;

	ct6_key_fill(&key, endpoint_id, !dir, inner, 0);
	if (ct6_get(&key, now))
		return 1;
	ct6_key_fill(&key, endpoint_id, dir, inner, 1);
	return ct6_get(&key, now) != NULL;
}

/* ct_create for IPv6. */
static __always_inline int ct6_create(__u16 endpoint_id, __u8 dir, const struct flow6 *f,
				      __u32 len, __u64 now, __u32 stamp)
{
	struct ct6_key key;
	struct ct_entry e = ct_entry_new(&f->l4, len, now, stamp);

	ct6_key_fill(&key, endpoint_id, dir, f, 0);
	return conntrack6.update(&key, &e);
}

#endif /* MEMBRANE_CONNTRACK_H */
