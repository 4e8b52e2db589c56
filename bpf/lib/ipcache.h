/* SPDX-License-Identifier: Apache-2.0 */
/* Address -> identity for the whole cluster.
 *
 * ipcache: BPF_MAP_TYPE_LPM_TRIE, key struct ipcache_key (IPv4 prefix) ->
 *   struct remote_identity. Every pod IP (/32), node IPs (host, remote-node) and
 *   0.0.0.0/0 -> world. Written by the agent (sync_cluster_maps). Size
 *   MEMBRANE_IPCACHE_MAX.
 * cidr: same layout; every ipBlock cidr and except prefix -> its CIDR identity
 *   (>= 1<<24). Kept apart from ipcache because an ipBlock may cover pod IPs, and a
 *   pod must still be seen with its own identity (mapstate.py: both lookups count).
 *   Size MEMBRANE_CIDR_MAX.
 * LPM tries need BPF_F_NO_PREALLOC (the kernel refuses them preallocated).
 */
#ifndef MEMBRANE_IPCACHE_H
#define MEMBRANE_IPCACHE_H

#include "common.h"

/* LPM key: prefixlen first (the kernel's struct bpf_lpm_trie_key layout), then the
 * address in network byte order, so the trie's bit-wise prefix is the IP prefix. */
struct ipcache_key {
	__u32 prefixlen; /* 0..32 */
	__be32 addr;     /* network byte order */
};

struct remote_identity {
	__u32 identity; /* host byte order */
	__u32 pad;      /* room for flags; keeps the value 8-byte sized */
};

BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct remote_identity, ipcache,
		 MEMBRANE_IPCACHE_MAX, MEMBRANE_PIN_DIR "/ipcache", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct remote_identity, cidr,
		 MEMBRANE_CIDR_MAX, MEMBRANE_PIN_DIR "/cidr", BPF_F_NO_PREALLOC);

/* Identity of a peer address: unknown addresses are world, as nothing else in the
 * cluster claims them. */
static __always_inline __u32 lookup_peer_identity(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	struct remote_identity *id = ipcache.lookup(&key);

	return id ? id->identity : IDENTITY_WORLD;
}

/* CIDR identity of the longest ipBlock prefix holding addr, or 0 when none does. */
static __always_inline __u32 lookup_cidr_identity(__be32 addr)
{
	struct ipcache_key key = { .prefixlen = 32, .addr = addr };
	struct remote_identity *id = cidr.lookup(&key);

	return id ? id->identity : 0;
}

#endif /* MEMBRANE_IPCACHE_H */
