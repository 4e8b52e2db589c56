/* SPDX-License-Identifier: Apache-2.0 */
/* Per-CPU counters: drops by reason, and ring buffer records lost.
 *
 * drop_metrics: BPF_MAP_TYPE_PERCPU_ARRAY, key u32 drop reason (drop.h) -> struct
 *   metrics_value. Written by the datapath only; the agent sums over CPUs (bpf.py
 *   stats()). Size DROP_REASON_MAX. Per-CPU so the hot path never contends on a
 *   cache line and needs no atomics.
 * lost_events: BPF_MAP_TYPE_PERCPU_ARRAY, key u32 0 -> u64 records the ring buffer had
 *   no room for. Size 1. The agent shows it, never hides it.
 * Both are pinned so counts survive an agent restart.
 */
#ifndef MEMBRANE_METRICS_H
#define MEMBRANE_METRICS_H

#include "common.h"
#include "drop.h"

/* Counters of one reason on one CPU. packets first: both u64, no padding. */
struct metrics_value {
	__u64 packets;
	__u64 bytes; /* L3 and above as skb->len saw it at tc (includes the L2 header) */
};

BPF_TABLE_PINNED("percpu_array", __u32, struct metrics_value, drop_metrics,
		 DROP_REASON_MAX, MEMBRANE_PIN_DIR "/drop_metrics");
BPF_TABLE_PINNED("percpu_array", __u32, __u64, lost_events, 1,
		 MEMBRANE_PIN_DIR "/lost_events");

static __always_inline void count_drop(__u32 reason, __u32 len)
{
	struct metrics_value *m = drop_metrics.lookup(&reason);

	if (m) {
		m->packets += 1;
		m->bytes += len;
	}
}

static __always_inline void count_lost_event(void)
{
	__u32 zero = 0;
	__u64 *lost = lost_events.lookup(&zero);

	if (lost)
		*lost += 1;
}

#endif /* MEMBRANE_METRICS_H */
