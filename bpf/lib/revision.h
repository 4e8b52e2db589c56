/* SPDX-License-Identifier: Apache-2.0 */
/* The policy revision: when may an established connection skip policy?
 *
 * policy_revision: BPF_MAP_TYPE_ARRAY, key u32 0 -> struct policy_revision. Size 1.
 *   Written only by the agent (BpfDatapath._bump_revision in agent/datapath/bpf.py),
 *   read by every packet of a tracked flow. Pinned like the other maps.
 *
 * Conntrack entries cache the forward verdict: ct_entry.policy_rev is the revision under
 * which the flow's forward direction was last allowed. An established forward packet
 * whose entry carries the current revision passes without the ipcache, cidr and policy
 * lookups; any other forward packet is evaluated as a new one would be and, if allowed,
 * re-stamps the entry. The agent bumps the revision after EVERY write that can change a
 * verdict (policy, endpoints, ipcache, cidr; also on start over existing pins, so no
 * stamp of a previous agent survives its reconcile), which makes every cached verdict
 * stale at once: revoking an allow cuts an established connection at its next packet.
 *
 * Ordering: the program reads the revision BEFORE its lookups and stamps with what it
 * read. A stamp R therefore always comes from lookups that ran after the agent's
 * writes preceding the bump to R; a packet racing a write stamps the old revision and
 * the next packet re-evaluates.
 *
 * 0 means "no revision yet" (a fresh map before the agent's first bump) and disables
 * the cache. The agent skips 0 when the u32 wraps; a stamp could then alias a value
 * 2^32 bumps old only if its entry saw no forward packet for all of them.
 */
#ifndef MEMBRANE_REVISION_H
#define MEMBRANE_REVISION_H

#include "common.h"

struct policy_revision {
	__u32 revision; /* host byte order; 0 = none yet */
	__u32 pad;
};

BPF_TABLE_PINNED("array", __u32, struct policy_revision, policy_revision, 1,
		 MEMBRANE_PIN_DIR "/policy_revision");

static __always_inline __u32 current_policy_revision(void)
{
	__u32 zero = 0;
	struct policy_revision *r = policy_revision.lookup(&zero);

	/* The verifier wants the NULL check (only recent kernels prove a constant
	 * in-range array key non-NULL); it costs nothing next to a wrong guess. */
	return r ? r->revision : 0;
}

#endif /* MEMBRANE_REVISION_H */
