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
 * ipcache6, cidr6: the same for IPv6, key struct ipcache6_key (prefixlen 0..128):
 *   every pod IPv6 (/128), node IPv6 addresses, ::/0 -> world; every IPv6 ipBlock
 *   prefix. Sizes MEMBRANE_IPCACHE_MAX and MEMBRANE_CIDR_MAX. Tries of their own, as
 *   the kernel's LPM trie compares whole keys: one trie for both families would make
 *   every IPv4 lookup walk 16-byte keys (or carry a family byte in the prefix).
 * An ipBlock of one family thus never matches an address of the other: a CIDR
 * identity lives in the trie of its prefix's family only.
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

/* The IPv6 LPM key: prefixlen 0..128, then the address in network byte order. */
struct ipcache6_key {
	__u32 prefixlen;
	__be32 addr[4];
};

BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct remote_identity, ipcache,
		 MEMBRANE_IPCACHE_MAX, MEMBRANE_PIN_DIR "/ipcache", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct ipcache_key, struct remote_identity, cidr,
		 MEMBRANE_CIDR_MAX, MEMBRANE_PIN_DIR "/cidr", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct ipcache6_key, struct remote_identity, ipcache6,
		 MEMBRANE_IPCACHE_MAX, MEMBRANE_PIN_DIR "/ipcache6", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("lpm_trie", struct ipcache6_key, struct remote_identity, cidr6,
		 MEMBRANE_CIDR_MAX, MEMBRANE_PIN_DIR "/cidr6", BPF_F_NO_PREALLOC);

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

static __always_inline __u32 lookup_peer_identity6(const __be32 *addr)
{
	struct ipcache6_key key = { .prefixlen = 128 };
	struct remote_identity *id;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	id = ipcache6.lookup(&key);
	return id ? id->identity : IDENTITY_WORLD;
}

static __always_inline __u32 lookup_cidr_identity6(const __be32 *addr)
{
	struct ipcache6_key key = { .prefixlen = 128 };
	struct remote_identity *id;

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	id = cidr6.lookup(&key);
	return id ? id->identity : 0;
}

#endif /* MEMBRANE_IPCACHE_H */
