/* SPDX-License-Identifier: Apache-2.0 */
/* Connection tracking: which flows a local endpoint is part of, and in which state.
 *
 * Two tables, same key and value, both BPF_MAP_TYPE_LRU_HASH:
 *
 * conntrack: struct ct_key -> struct ct_entry, size MEMBRANE_CT_MAX. Confirmed
 *   connections: both sides have spoken (the rule below).
 * ct_unreplied: struct ct_key -> struct ct_entry, size MEMBRANE_CT_UNREPLIED_MAX.
 *   Connections not confirmed yet: a SYN sent, a mid-stream TCP packet, a first UDP
 *   datagram or echo request. Every new entry is created here.
 * conntrack6, ct6_unreplied: the same two for IPv6, key struct ct6_key (the same fields,
 *   addresses of 16 bytes), value struct ct_entry, sizes MEMBRANE_CT_MAX and
 *   MEMBRANE_CT_UNREPLIED_MAX; every rule below holds for them alike. Tables of their
 *   own rather than one key wide enough for both: IPv4 packets keep hashing and
 *   comparing 16 bytes, not 40, and the IPv4 tables keep the layout earlier builds
 *   pinned. The entry logic (state machine, refresh, confirmation) is shared; only the
 *   key handling and the map calls are per family (bcc rewrites a map call only on the
 *   map's own name).
 *
 * Written by the datapath (entries are created by the first allowed packet of a
 * connection, in either direction, enforced or not, so replies pass when enforcement
 * starts later); the agent deletes expired entries of both (collect_conntrack_garbage)
 * and reads both for `bpf ct list`. LRU: when full, the least recently used entry is
 * evicted rather than the insert failing, so a full table can cut an idle old
 * connection but never opens anything; the agent reports the fill levels.
 *
 * Why two tables: LRU evicts by recency, not by worth. In one node-wide table a pod
 * sending packets nobody answers (a flood of bare ACKs or SYNs to random ports, each
 * its own flow) evicts other pods' idle established connections, whose next packet
 * in the reply direction then looks new and is dropped. Unanswered flows churn only
 * ct_unreplied; an entry moves to conntrack only once confirmed:
 *   - TCP: by the originator's first packet after the peer answered without RST (the
 *     handshake's final ACK, or the second packet of a mid-stream pickup). A raw-socket
 *     flooder's own kernel answers a SYN-ACK with RST, which closes the entry first;
 *   - UDP, SCTP, ICMP echo: by the first reply.
 * What this does not stop: a pod that completes real handshakes (or gets UDP answers)
 * at a high rate still fills conntrack; that needs per-endpoint quotas.
 *
 * One entry per (endpoint, 5-tuple as it leaves the endpoint): the key holds the
 * tuple oriented as a packet going OUT of the endpoint (a packet coming in is keyed by
 * its swapped tuple; key.direction is always DIR_EGRESS), so a forward packet and its
 * replies find the same key with ONE lookup. The direction of the first packet (the
 * forward direction) is in the entry (CT_F_INGRESS_FIRST). A later packet is:
 *   - forward  (its direction is the entry's forward direction);
 *   - reply    (the opposite direction: at one endpoint, the same key in the other
 *               direction is exactly the swapped tuple);
 *   - related  (an ICMP error whose embedded packet belongs to a tracked flow).
 * Earlier builds keyed an entry by the first packet's own tuple and direction: their
 * egress-first entries are the same key and value here (flag clear = egress first) and
 * keep working; their ingress-first entries are never looked up again and expire.
 * The entry's policy_rev caches the connection's verdict: the revision (revision.h)
 * under which its forward direction was last allowed. Every agent write that can
 * change a verdict bumps the revision. Rules every caller (IPv4 and IPv6 here)
 * keeps:
 *   1. A forward or reply packet passes on the entry alone only while policy_rev is
 *      the current revision (and not 0).
 *   2. Otherwise it is decided again, as the connection's FORWARD packet: direction
 *      the entry's (a reply's opposite), the peer the remote address, the port the
 *      forward destination port (ct_verdict_port). Allowed: re-stamp and pass. Denied:
 *      drop, leaving the entry untouched (not refreshed, not re-stamped), so a revoked
 *      connection gets no packet through in either direction and its entry expires.
 *   3. A related ICMP error passes only while its flow's stamp is current; otherwise it
 *      is decided by policy as the untracked ICMP packet it is.
 *   4. A TCP entry opened by anything but a SYN (or RST) is CT_STATE_MIDSTREAM, with a
 *      lifetime of seconds (CT_TIMEOUT_MIDSTREAM) until the peer answers.
 *   5. New entries go into ct_unreplied; ct_packet() moves them on confirmation.
 * An entry whose expiry has passed counts as absent even before GC deletes it.
 *
 * Per-packet writes: none in the steady state. An established packet writes its entry
 * only when something changed: a TCP flag not seen before on that side (SYN, FIN, RST:
 * state transitions are recorded at once), the first reply, a new policy stamp, or an
 * expiry that lags now + timeout by CT_REFRESH_INTERVAL_NS (1 s) or more, or by an
 * eighth of the timeout when that is shorter (so expiry is refreshed about once a
 * second per busy entry, and an idle flow expires up to that much early).
 * Both CPUs of a flow (data one way, ACKs the other) then share the entry's cache line
 * read-only instead of bouncing it on every packet. A confirmed connection costs what
 * it did with one table: its packets find it in conntrack, looked up first.
 *
 * packets/bytes are counted only when compiled with MEMBRANE_CT_ACCOUNTING
 * (CompileOptions.ct_accounting): two atomic adds per packet on a shared line, the
 * cost this file otherwise avoids (as Cilium's bpf-conntrack-accounting, off by
 * default). Without it both stay 0.
 *
 * Tracked: TCP (state machine below), UDP and SCTP (by ports, idle timeout; SCTP's
 * association state is not followed), ICMP echo (by echo id). Everything else (other
 * ICMP types, other IP protocols) is not tracked and is decided by policy on every
 * packet, in both directions: a reply of such a protocol needs its own allow.
 *
 * ICMP echo tuple convention: a request (type 8) has sport = echo id, dport = 0; a
 * reply (type 0) has sport = 0, dport = echo id. Swapping the reply's tuple then gives
 * the request's, which is how every reply is found.
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
#ifndef CT_TIMEOUT_MIDSTREAM
#define CT_TIMEOUT_MIDSTREAM 10    /* opened without a SYN, no reply yet */
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
#define CT_STATE_MIDSTREAM 8

/* ct_entry.flags */
#define CT_F_SEEN_REPLY 0x01
#define CT_F_INGRESS_FIRST 0x02 /* the first packet came into the endpoint (DIR_INGRESS) */

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
	__u8 direction;    /* always DIR_EGRESS: the tuple as it leaves the endpoint */
};

/* 32 bytes: u64 fields first, then the byte-sized state, then the policy stamp. The
 * stamp took the place of a zero pad, and nothing before it moved: entries a previous
 * build left in the pinned map read as "stamp 0" (never current: revalidated at their
 * next forward packet) with their state intact. */
struct ct_entry {
	__u64 expires_ns;  /* CLOCK_MONOTONIC deadline, from ct_now() */
	__u64 packets;     /* both directions; only with MEMBRANE_CT_ACCOUNTING, else 0 */
	__u64 bytes;       /* both directions, skb->len; idem */
	__u8 state;        /* CT_STATE_* */
	__u8 tx_flags;     /* OR of TCP flags seen on forward packets */
	__u8 rx_flags;     /* OR of TCP flags seen on replies */
	__u8 flags;        /* CT_F_* */
	__u32 policy_rev;  /* policy revision (revision.h) under which the forward
			    * direction was last allowed; 0 = never (no cached verdict) */
};

BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_entry, conntrack, MEMBRANE_CT_MAX,
		 MEMBRANE_PIN_DIR "/conntrack");
BPF_TABLE_PINNED("lru_hash", struct ct_key, struct ct_entry, ct_unreplied,
		 MEMBRANE_CT_UNREPLIED_MAX, MEMBRANE_PIN_DIR "/ct_unreplied");

/* 40 bytes, no holes: struct ct_key with 16-byte addresses. */
struct ct6_key {
	__be32 saddr[4];   /* of the first packet, network byte order */
	__be32 daddr[4];
	__u16 sport;       /* host byte order; ICMPv6: see the echo convention above */
	__u16 dport;
	__u16 endpoint_id; /* host byte order */
	__u8 protocol;
	__u8 direction;    /* always DIR_EGRESS, as in struct ct_key */
};

BPF_TABLE_PINNED("lru_hash", struct ct6_key, struct ct_entry, conntrack6, MEMBRANE_CT_MAX,
		 MEMBRANE_PIN_DIR "/conntrack6");
BPF_TABLE_PINNED("lru_hash", struct ct6_key, struct ct_entry, ct6_unreplied,
		 MEMBRANE_CT_UNREPLIED_MAX, MEMBRANE_PIN_DIR "/ct6_unreplied");

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
	else if (state == CT_STATE_MIDSTREAM)
		s = CT_TIMEOUT_MIDSTREAM;
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

/* The clock of expiries: CLOCK_MONOTONIC_COARSE (the last tick's time, a memory read)
 * rather than bpf_ktime_get_ns(), which reads the clocksource on every packet (on a VM
 * a paravirtual clock read). It is the same clock a tick (1-4 ms) behind, in the same
 * unit, so entries and the agent's GC (time.monotonic_ns()) still compare directly: the
 * agent may see an entry expire up to a tick before the datapath does, far inside the
 * refresh slack (CT_REFRESH_INTERVAL_NS). Not bpf_jiffies64: jiffies would change the
 * unit of expires_ns in pinned entries and make the agent convert with CONFIG_HZ. */
static __always_inline __u64 ct_now(void)
{
	return bpf_ktime_get_coarse_ns();
}

/* bcc rewrites map calls only on a map's own name, so each table has its getter. */
static __always_inline struct ct_entry *ct_get(struct ct_key *key, __u64 now)
{
	struct ct_entry *e = conntrack.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

static __always_inline struct ct_entry *ct_get_unreplied(struct ct_key *key, __u64 now)
{
	struct ct_entry *e = ct_unreplied.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

/* The key of the flow a packet seen in direction dir belongs to, forward or reply
 * alike: its tuple as it leaves the endpoint (see the top of this file). */
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
		.direction = DIR_EGRESS,
	};

	if (dir != DIR_EGRESS) {
		key.saddr = f->daddr;
		key.daddr = f->saddr;
		key.sport = f->l4.dport;
		key.dport = f->l4.sport;
	}
	return key;
}

/* Forward or reply, from the entry a packet in direction dir found. */
static __always_inline int ct_side(const struct ct_entry *e, __u8 dir)
{
	__u8 first = (e->flags & CT_F_INGRESS_FIRST) ? DIR_INGRESS : DIR_EGRESS;

	return dir == first ? CT_ESTABLISHED : CT_REPLY;
}

/* Forward, reply or new; *entry is set on forward and reply, *unreplied says which
 * table holds it. One key for both sides: a confirmed connection costs one lookup,
 * forward or reply; an unconfirmed one two (conntrack, then ct_unreplied). */
static __always_inline int ct_lookup(__u16 endpoint_id, __u8 dir, const struct flow4 *f,
				     __u64 now, struct ct_entry **entry, __u8 *unreplied)
{
	struct ct_key key = ct_key_of(endpoint_id, dir, f);

	*unreplied = 0;
	*entry = ct_get(&key, now);
	if (*entry)
		return ct_side(*entry, dir);
	*unreplied = 1;
	*entry = ct_get_unreplied(&key, now);
	if (*entry)
		return ct_side(*entry, dir);
	return CT_NEW;
}

/* The port a packet's connection is decided on (rule 2): the forward packet's
 * destination port, i.e. a reply's source port; 0 for ICMP and ICMPv6, as policy_port.
 * icmp_proto: the family's ICMP, constant once inlined. */
static __always_inline __u16 ct_verdict_port(const struct flow_l4 *l, int is_reply,
					     __u8 icmp_proto)
{
	if (is_reply && l->protocol != icmp_proto)
		return l->sport;
	return l->policy_port;
}

/* Is the packet embedded in an ICMP error (its tuple in *inner) part of a flow this
 * endpoint tracks, with a verdict current under rev (rule 3)? Either it was a forward
 * packet of a flow first seen in the other direction (our pod's packet bounced back to
 * it), or a reply of a flow first seen in this direction (our pod's reply bounced). */
static __always_inline int ct_related(__u16 endpoint_id, __u8 dir, const struct flow4 *inner,
				      __u64 now, __u32 rev)
{
	struct ct_key key = ct_key_of(endpoint_id, !dir, inner);
	struct ct_entry *e;

	if (!rev)
		return 0;
	e = ct_get(&key, now);
	if (!e)
		e = ct_get_unreplied(&key, now);
	return e && e->policy_rev == rev;
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
		*flags &= CT_F_INGRESS_FIRST; /* the same first direction */
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
	} else if (is_reply && (*state == CT_STATE_SYN_SENT || *state == CT_STATE_MIDSTREAM))
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

/* Is the connection of an entry in ct_unreplied confirmed by this packet (already
 * accounted on it)? See "Why two tables" at the top of this file. */
static __always_inline int ct_confirmed(const struct ct_entry *e, const struct flow_l4 *l,
					int is_reply)
{
	if (l->protocol == IPPROTO_TCP)
		return !is_reply && e->state == CT_STATE_ESTABLISHED;
	return is_reply;
}

/* Accounts a forward or reply packet on its entry (ct_refresh) and, when the entry
 * is in ct_unreplied and this packet confirms its connection, moves it to conntrack.
 * The caller must not touch e afterwards: the ct_unreplied copy is deleted. If the
 * insert fails the entry stays where it was; the next packet tries again. */
static __always_inline void ct_packet(struct ct_entry *e, __u8 unreplied, __u16 endpoint_id,
				      __u8 dir, const struct flow4 *f, int is_reply, __u32 len,
				      __u64 now, __u32 stamp)
{
	struct ct_key key;

	ct_refresh(e, &f->l4, is_reply, len, now, stamp);
	if (!unreplied || !ct_confirmed(e, &f->l4, is_reply))
		return;
	key = ct_key_of(endpoint_id, dir, f);
	/* e points into ct_unreplied; a map value is a valid value argument for another
	 * map of the same value size. */
	if (conntrack.update(&key, e) == 0)
		ct_unreplied.delete(&key);
}

/* The entry of a new allowed flow (either family), stamped with the policy revision
 * its verdict was evaluated under. */
static __always_inline struct ct_entry ct_entry_new(const struct flow_l4 *l, __u8 dir,
						    __u32 len, __u64 now, __u32 stamp)
{
	struct ct_entry e = { .policy_rev = stamp };

	if (dir == DIR_INGRESS)
		e.flags = CT_F_INGRESS_FIRST;

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
			/* Mid-stream (conntrack lost, a connection older than the program,
			 * or a forged ACK): allowed by policy, but it lives seconds until
			 * the peer answers (rule 4). */
			e.state = CT_STATE_MIDSTREAM;
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

/* Creates the entry for a new allowed IPv4 flow in ct_unreplied. Returns 0 or a
 * negative errno; the caller drops the packet on error (DROP_CT_MAP_INSERTION), never
 * forwards it untracked. */
static __always_inline int ct_create(__u16 endpoint_id, __u8 dir, const struct flow4 *f,
				     __u32 len, __u64 now, __u32 stamp)
{
	struct ct_key key = ct_key_of(endpoint_id, dir, f);
	struct ct_entry e = ct_entry_new(&f->l4, dir, len, now, stamp);

	/* BPF_ANY: an expired entry with the same key may still be there. */
	return ct_unreplied.update(&key, &e);
}

/* --- IPv6: the same lookups on conntrack6 and ct6_unreplied ------------------------- */

static __always_inline struct ct_entry *ct6_get(struct ct6_key *key, __u64 now)
{
	struct ct_entry *e = conntrack6.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

static __always_inline struct ct_entry *ct6_get_unreplied(struct ct6_key *key, __u64 now)
{
	struct ct_entry *e = ct6_unreplied.lookup(key);

	if (e && e->expires_ns > now)
		return e;
	return NULL;
}

/* ct_key_of for IPv6: the key of the flow a packet seen in direction dir belongs to,
 * its tuple as it leaves the endpoint. */
static __always_inline void ct6_key_of(struct ct6_key *key, __u16 endpoint_id, __u8 dir,
				       const struct flow6 *f)
{
	if (dir != DIR_EGRESS) {
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
	key->direction = DIR_EGRESS;
	key->endpoint_id = endpoint_id;
	key->protocol = f->l4.protocol;
}

/* ct_lookup for IPv6. */
static __always_inline int ct6_lookup(__u16 endpoint_id, __u8 dir, const struct flow6 *f,
				      __u64 now, struct ct_entry **entry, __u8 *unreplied)
{
	struct ct6_key key;

	ct6_key_of(&key, endpoint_id, dir, f);
	*unreplied = 0;
	*entry = ct6_get(&key, now);
	if (*entry)
		return ct_side(*entry, dir);
	*unreplied = 1;
	*entry = ct6_get_unreplied(&key, now);
	if (*entry)
		return ct_side(*entry, dir);
	return CT_NEW;
}

/* ct_related for IPv6 (the packet embedded in an ICMPv6 error; rule 3). */
static __always_inline int ct6_related(__u16 endpoint_id, __u8 dir, const struct flow6 *inner,
				       __u64 now, __u32 rev)
{
	struct ct6_key key;
	struct ct_entry *e;

	if (!rev)
		return 0;
	ct6_key_of(&key, endpoint_id, !dir, inner);
	e = ct6_get(&key, now);
	if (!e)
		e = ct6_get_unreplied(&key, now);
	return e && e->policy_rev == rev;
}

/* ct_packet for IPv6: account the packet, move a confirmed entry to conntrack6. */
static __always_inline void ct6_packet(struct ct_entry *e, __u8 unreplied, __u16 endpoint_id,
				       __u8 dir, const struct flow6 *f, int is_reply, __u32 len,
				       __u64 now, __u32 stamp)
{
	struct ct6_key key;

	ct_refresh(e, &f->l4, is_reply, len, now, stamp);
	if (!unreplied || !ct_confirmed(e, &f->l4, is_reply))
		return;
	ct6_key_of(&key, endpoint_id, dir, f);
	if (conntrack6.update(&key, e) == 0)
		ct6_unreplied.delete(&key);
}

/* ct_create for IPv6: the new flow's entry in ct6_unreplied. */
static __always_inline int ct6_create(__u16 endpoint_id, __u8 dir, const struct flow6 *f,
				      __u32 len, __u64 now, __u32 stamp)
{
	struct ct6_key key;
	struct ct_entry e = ct_entry_new(&f->l4, dir, len, now, stamp);

	ct6_key_of(&key, endpoint_id, dir, f);
	return ct6_unreplied.update(&key, &e);
}

#endif /* MEMBRANE_CONNTRACK_H */
