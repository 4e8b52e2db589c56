/* SPDX-License-Identifier: Apache-2.0 */
/* Events: policy verdicts and drops, for the agent's flow pipeline (Hubble-like).
 *
 * events: BPF_MAP_TYPE_RINGBUF of struct event records, MEMBRANE_RING_PAGES pages.
 *   Written by the datapath; read by agent/datapath/reader.py, which turns each record
 *   into an observe.events.DatapathEvent. Not pinned: records are transient, and a
 *   restarted agent starts reading afresh. When the ring is full the record is lost
 *   and lost_events (metrics.h) counts it.
 * Kernels before 5.8 have no ring buffer: compiler.py probes and defines
 *   MEMBRANE_USE_PERF_EVENTS, and the same records go through a perf event array.
 *
 * What is emitted:
 *   EVENT_POLICY_VERDICT  first packet of each new tracked connection, allowed (with
 *                         the match type; MATCH_NONE when the direction is not
 *                         enforced) or denied; and, in audit mode, every packet
 *                         policy denied and let through (allowed 2, drop_reason the
 *                         one it would have had: policy.h POLICY_AUDITED);
 *   EVENT_DROP            every dropped packet, with its reason (a denied new
 *                         connection's first packet gives both records, as Hubble
 *                         shows both lines).
 */
#ifndef MEMBRANE_EVENTS_H
#define MEMBRANE_EVENTS_H

#include "common.h"
#include "metrics.h"

/* observe.events.EventType */
#define EVENT_POLICY_VERDICT 1
#define EVENT_DROP 2

/* 72 bytes. ktime first (u64), then the byte-sized fields packed in eight, then the
 * u16s and the IP version, then the u32s and the addresses: natural alignment
 * everywhere, no holes (layout.py checks). Built only for a packet that is reported
 * (never on the established fast path), so its size costs no forwarded packet. */
struct event {
	__u64 ktime_ns;      /* bpf_ktime_get_ns(); the reader converts to realtime */
	__u8 type;           /* EVENT_* */
	__u8 direction;      /* DIR_* at the endpoint */
	__u8 allowed;        /* 1 forwarded, 0 dropped/denied, 2 audited (policy.h) */
	__u8 match_type;     /* MATCH_* */
	__u8 protocol;       /* IP protocol / IPv6 upper-layer header, 0 for non-IP */
	__u8 tcp_flags;      /* raw TCP flags byte */
	__u8 is_reply;       /* packet was a reply of a tracked flow */
	__u8 drop_reason;    /* DROP_* (drop.h), 0 when allowed */
	__u16 endpoint_id;   /* 0 when the interface has no endpoint */
	__u16 sport;         /* host byte order; ICMP/ICMPv6: echo id */
	__u16 dport;         /* host byte order; ICMP/ICMPv6: type << 8 | code */
	__u8 ip_version;     /* 4 or 6; 0 when the packet was not IP */
	__u8 pad;
	__u32 src_identity;  /* host byte order */
	__u32 dst_identity;
	__be32 saddr[4];     /* network byte order; IPv4 in saddr[0], the rest 0 */
	__be32 daddr[4];
	__u32 packet_len;    /* skb->len */
	__u32 pad2;
};

#ifdef MEMBRANE_USE_PERF_EVENTS
BPF_PERF_OUTPUT(events);
#else
BPF_RINGBUF_OUTPUT(events, MEMBRANE_RING_PAGES);
#endif

static __always_inline void emit_event(struct __sk_buff *skb, struct event *ev)
{
	int err;

	ev->ktime_ns = bpf_ktime_get_ns();
	ev->packet_len = skb->len;
#ifdef MEMBRANE_USE_PERF_EVENTS
	err = events.perf_submit(skb, ev, sizeof(*ev));
#else
	err = events.ringbuf_output(ev, sizeof(*ev), 0);
#endif
	if (err < 0)
		count_lost_event();
}

#endif /* MEMBRANE_EVENTS_H */
