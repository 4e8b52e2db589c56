"""ctypes mirrors of the C datapath's structs (bpf/lib/*.h): C is the source.

One class per C struct, same name and field order. Byte order is as the C comment
says: addresses in keys/values are network byte order (we store them as the raw u32
that `socket.inet_aton` bytes give on this little-endian host: see `ip_to_be32`; an
IPv6 address is four such words, `ip6_to_words`), identities and endpoint ids host byte
order, the policy key's port big-endian. Each IPv4 map has an IPv6 twin (`ipcache6`,
`cidr6`, `conntrack6`, `endpoints6`), so keys of both families exist side by side.
tests/unit/test_datapath_layout.py compares sizes and offsets with what bcc compiled
(Cilium's alignchecker idea); tests/unit/test_c_mirrors.py parses bpf/ and checks every
constant, struct and map copied here (and everywhere else in Python) against the C.
Pure ctypes: importing this needs no bcc.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct
from typing import Any, Iterable

# --- constants mirrored from bpf/lib/endpoints.h, policy.h, conntrack.h, ipv6.h --
# (directions are core.protocols.Direction, event types observe.events.EventType;
# revision.h: 0 is "no revision", the agent never writes it, see next_revision)

EP_F_INGRESS_ENFORCED = 0x01
EP_F_EGRESS_ENFORCED = 0x02
# endpoints6 slots, one per u16 endpoint id (agent/endpoints.py gives ids 1..65535).
ENDPOINT_IDS = 65536
# policy.h: the endpoint flags the tiered decision reads, and a tier rule's flags byte
EP_F_INGRESS_TIERED = 0x04
EP_F_EGRESS_TIERED = 0x08
EP_F_INGRESS_DEFAULT_DENY = 0x10
EP_F_EGRESS_DEFAULT_DENY = 0x20
EP_F_AUDIT = 0x40
# policy.h POLICY_*: policy_decide()'s results, the values of struct event.allowed
POLICY_DENIED = 0
POLICY_ALLOWED = 1
POLICY_AUDITED = 2

POLICY_PREFIX_ANY_PROTO = 56
POLICY_PREFIX_ANY_PORT = 64
POLICY_PREFIX_FULL = 80

# ipv6.h: the most IPv6 extension headers one packet may carry; a longer chain is
# dropped as DROP_INVALID_EXTHDR.
IPV6_EXT_MAX = 8

# fastpath.h: the full programs' slots in the tail_calls program array.
TAIL_FROM_CONTAINER = 0
TAIL_TO_CONTAINER = 1
TAIL_CALLS = {"from_container_full": TAIL_FROM_CONTAINER,
              "to_container_full": TAIL_TO_CONTAINER}

# ct_entry.flags: the connection's first packet came INTO the endpoint. Conntrack keys
# hold the tuple as it leaves the endpoint (key.direction is always egress), so both
# sides of a connection find one key; this bit says which side opened it.
CT_F_INGRESS_FIRST = 0x02

# CT_STATE_* value -> the name `membrane bpf ct list` shows.
CT_STATE_NAMES = {1: "syn-sent", 2: "established", 3: "fin-wait", 4: "closing",
                  5: "udp", 6: "icmp", 7: "sctp", 8: "midstream"}


Words4 = ctypes.c_uint32 * 4     # an IPv6 address: __be32 addr[4]


class ipcache_key(ctypes.Structure):
    """LPM key of `ipcache` and `cidr`: prefixlen 0..32, IPv4 address big-endian."""
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", ctypes.c_uint32)]


class ipcache6_key(ctypes.Structure):
    """LPM key of `ipcache6` and `cidr6`: prefixlen 0..128, IPv6 address big-endian."""
    _fields_ = [("prefixlen", ctypes.c_uint32), ("addr", Words4)]


class remote_identity(ctypes.Structure):
    _fields_ = [("identity", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class endpoint_info(ctypes.Structure):
    """`endpoints` value; the key is a u32 ifindex."""
    _fields_ = [("identity", ctypes.c_uint32), ("ipv4", ctypes.c_uint32),
                ("endpoint_id", ctypes.c_uint16), ("flags", ctypes.c_uint8),
                ("pad", ctypes.c_uint8)]


class endpoint6_info(ctypes.Structure):
    """`endpoints6` value (the pod's IPv6 address, zeros for none); the key is a u32
    endpoint id (an array slot)."""
    _fields_ = [("ipv6", Words4)]


class policy_key(ctypes.Structure):
    """`policy` LPM key: peer, endpoint, direction exact; protocol and port by prefix."""
    _fields_ = [("prefixlen", ctypes.c_uint32), ("peer_identity", ctypes.c_uint32),
                ("endpoint_id", ctypes.c_uint16), ("direction", ctypes.c_uint8),
                ("protocol", ctypes.c_uint8), ("dport", ctypes.c_uint16),
                ("pad", ctypes.c_uint16)]


class policy_entry(ctypes.Structure):
    """`policy` value: decision counters, the NetworkPolicy allow's match type, and the
    first Admin- and Baseline-tier rules covering the key (flags 0: none)."""
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64),
                ("match_type", ctypes.c_uint8), ("admin_flags", ctypes.c_uint8),
                ("admin_rank", ctypes.c_uint16), ("baseline_flags", ctypes.c_uint8),
                ("pad", ctypes.c_uint8), ("baseline_rank", ctypes.c_uint16)]


class ct_key(ctypes.Structure):
    _fields_ = [("saddr", ctypes.c_uint32), ("daddr", ctypes.c_uint32),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                ("endpoint_id", ctypes.c_uint16), ("protocol", ctypes.c_uint8),
                ("direction", ctypes.c_uint8)]


class ct6_key(ctypes.Structure):
    _fields_ = [("saddr", Words4), ("daddr", Words4),
                ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                ("endpoint_id", ctypes.c_uint16), ("protocol", ctypes.c_uint8),
                ("direction", ctypes.c_uint8)]


class ct_entry(ctypes.Structure):
    _fields_ = [("expires_ns", ctypes.c_uint64), ("packets", ctypes.c_uint64),
                ("bytes", ctypes.c_uint64), ("state", ctypes.c_uint8),
                ("tx_flags", ctypes.c_uint8), ("rx_flags", ctypes.c_uint8),
                ("flags", ctypes.c_uint8), ("policy_rev", ctypes.c_uint32)]


class policy_revision(ctypes.Structure):
    """`policy_revision` value (bpf/lib/revision.h); the key is u32 0."""
    _fields_ = [("revision", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


class metrics_value(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class event(ctypes.Structure):
    """A ring buffer record (bpf/lib/events.h)."""
    _fields_ = [("ktime_ns", ctypes.c_uint64),
                ("type", ctypes.c_uint8), ("direction", ctypes.c_uint8),
                ("allowed", ctypes.c_uint8), ("match_type", ctypes.c_uint8),
                ("protocol", ctypes.c_uint8), ("tcp_flags", ctypes.c_uint8),
                ("is_reply", ctypes.c_uint8), ("drop_reason", ctypes.c_uint8),
                ("endpoint_id", ctypes.c_uint16), ("sport", ctypes.c_uint16),
                ("dport", ctypes.c_uint16), ("ip_version", ctypes.c_uint8),
                ("pad", ctypes.c_uint8),
                ("src_identity", ctypes.c_uint32), ("dst_identity", ctypes.c_uint32),
                ("saddr", Words4), ("daddr", Words4),
                ("packet_len", ctypes.c_uint32), ("pad2", ctypes.c_uint32)]


# C struct name -> mirror, for the parity test and for callers that want them all.
STRUCTS: dict[str, type[ctypes.Structure]] = {
    cls.__name__: cls for cls in (ipcache_key, ipcache6_key, remote_identity, endpoint_info,
                                  endpoint6_info, policy_key, policy_entry, ct_key, ct6_key,
                                  ct_entry, policy_revision, metrics_value, event)
}

# map name -> (key mirror or None for u32, value mirror)
MAPS: dict[str, tuple[type[ctypes.Structure] | None, type[ctypes.Structure] | None]] = {
    "ipcache": (ipcache_key, remote_identity),
    "cidr": (ipcache_key, remote_identity),
    "ipcache6": (ipcache6_key, remote_identity),
    "cidr6": (ipcache6_key, remote_identity),
    "endpoints": (None, endpoint_info),
    "endpoints6": (None, endpoint6_info),
    "policy": (policy_key, policy_entry),
    "conntrack": (ct_key, ct_entry),
    "ct_unreplied": (ct_key, ct_entry),
    "conntrack6": (ct6_key, ct_entry),
    "ct6_unreplied": (ct6_key, ct_entry),
    "policy_revision": (None, policy_revision),
    "drop_metrics": (None, metrics_value),
}


def next_revision(revision: int) -> int:
    """The policy revision after `revision` (u32, wrapping past 0: 0 means none)."""
    nxt = (revision + 1) & 0xFFFFFFFF
    return nxt or 1


# --- byte order helpers -------------------------------------------------------

def ip_to_be32(ip: str) -> int:
    """IPv4 text -> the u32 whose in-memory bytes are the address in network order."""
    return int(struct.unpack("=I", socket.inet_aton(ip))[0])


def be32_to_ip(value: int) -> str:
    return socket.inet_ntoa(struct.pack("=I", value & 0xFFFFFFFF))


def ip6_to_words(ip: str) -> ctypes.Array[ctypes.c_uint32]:
    """IPv6 text -> the four u32 words whose in-memory bytes are the address in network
    order (`__be32 addr[4]`)."""
    return Words4(*struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, ip)))


def words_to_ip6(words: Iterable[int] | ctypes.Array[Any]) -> str:
    return socket.inet_ntop(socket.AF_INET6, struct.pack("=4I", *(w & 0xFFFFFFFF
                                                                  for w in words)))


def htons(port: int) -> int:
    return socket.htons(port)


def ntohs(port: int) -> int:
    return socket.ntohs(port)


def prefix_key(prefix: str) -> ipcache_key | ipcache6_key:
    """The LPM key of a prefix of either family (ipcache_key or ipcache6_key)."""
    net = ipaddress.ip_network(prefix, strict=False)
    if net.version == 6:
        return ipcache6_key(net.prefixlen, ip6_to_words(str(net.network_address)))
    return ipcache_key(net.prefixlen, ip_to_be32(str(net.network_address)))


def key_prefix(key: ipcache_key | ipcache6_key) -> str:
    """The prefix of an LPM key of either family: a mirror, or bcc's own ctypes type of
    the map's key (told apart by the address's shape, one word or four)."""
    if isinstance(key.addr, ctypes.Array):
        return f"{words_to_ip6(key.addr)}/{key.prefixlen}"
    return f"{be32_to_ip(key.addr)}/{key.prefixlen}"

