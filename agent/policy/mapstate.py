"""The map state: what the policy engine hands the datapath.

The engine computes, per local endpoint, an immutable `EndpointPolicy`; for the whole
cluster, an immutable `ClusterMaps` (which address is which identity). The datapath
writer diffs these against the kernel maps and writes only the difference. Nothing here
knows about bcc or Kubernetes.

Lookup semantics the datapath implements (and `evaluate` below mirrors, so the engine,
`policy matrix` and the wire agree):

  peer identity  = ipcache LPM(peer address)            (pod, host, remote-node or world)
  cidr identity  = cidr LPM(peer address), if any        (ipBlock prefixes, pod IPs included)
  allowed        = direction not enforced
                   or an entry matches with peer in {peer identity, cidr identity, ANY}
                      and protocol ANY, or protocol equal and port_low <= port <= port_high
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping

# Direction and ANY_PROTOCOL are core.protocols' (one source; importable from here too).
from core.protocols import ANY_PROTOCOL, Direction
# How an allow matched is a flow fact (events carry it, Hubble prints it): observe owns it.
from observe.events import MatchType as MatchType

__all__ = ["ANY_IDENTITY", "ANY_PROTOCOL", "ClusterMaps", "Direction", "EndpointPolicy",
           "MatchType", "PolicyKey"]

ANY_IDENTITY = 0   # entry matches every peer (bpf/lib/common.h IDENTITY_UNKNOWN)


@dataclass(frozen=True, order=True)
class PolicyKey:
    """One allow entry. Ports are host byte order, inclusive."""

    direction: Direction
    peer: int                 # identity, or ANY_IDENTITY
    protocol: int             # IP protocol number, or ANY_PROTOCOL
    port_low: int = 0
    port_high: int = 65535

    def __post_init__(self) -> None:
        if self.protocol == ANY_PROTOCOL and (self.port_low, self.port_high) != (0, 65535):
            raise ValueError("an any-protocol entry covers every port")
        if not 0 <= self.port_low <= self.port_high <= 65535:
            raise ValueError(f"bad port range {self.port_low}-{self.port_high}")

    @property
    def every_port(self) -> bool:
        return (self.port_low, self.port_high) == (0, 65535)

    @property
    def match_type(self) -> MatchType:
        if self.peer == ANY_IDENTITY:
            return MatchType.ALL if self.every_port else MatchType.L4_ONLY
        return MatchType.L3_ONLY if self.every_port else MatchType.L3_L4

    def matches(self, peers: Iterable[int], protocol: int, port: int) -> bool:
        if self.peer != ANY_IDENTITY and self.peer not in peers:
            return False
        if self.protocol == ANY_PROTOCOL:
            return True
        return self.protocol == protocol and self.port_low <= port <= self.port_high


@dataclass(frozen=True)
class EndpointPolicy:
    """Everything the datapath needs to decide one endpoint's traffic."""

    ingress_enforced: bool = False
    egress_enforced: bool = False
    entries: frozenset[PolicyKey] = frozenset()

    def enforced(self, direction: Direction) -> bool:
        return self.ingress_enforced if direction is Direction.INGRESS else self.egress_enforced

    def evaluate(self, direction: Direction, peers: Iterable[int], protocol: int,
                 port: int) -> tuple[bool, MatchType]:
        """The verdict the datapath gives a forward packet; the best match type on allow."""
        if not self.enforced(direction):
            return True, MatchType.NONE
        peer_set = set(peers)
        best: MatchType | None = None
        for key in self.entries:
            if key.direction is direction and key.matches(peer_set, protocol, port):
                mt = key.match_type
                # Prefer the most specific match, as an LPM lookup in the kernel does.
                if best is None or _SPECIFICITY[mt] > _SPECIFICITY[best]:
                    best = mt
        return (best is not None), (best or MatchType.NONE)


_SPECIFICITY = {MatchType.L3_L4: 4, MatchType.L3_ONLY: 3, MatchType.L4_ONLY: 2,
                MatchType.ALL: 1, MatchType.NONE: 0}


@dataclass(frozen=True)
class ClusterMaps:
    """Address -> identity for the whole cluster.

    ipcache: every pod IP (/32), node IPs (host / remote-node), 0.0.0.0/0 -> world.
    cidrs:   every ipBlock cidr and except prefix -> its CIDR identity (>= 1<<24).
    Keys are normalised IPv4 prefixes, "10.0.0.0/24".
    """

    ipcache: Mapping[str, int] = field(default_factory=dict)
    cidrs: Mapping[str, int] = field(default_factory=dict)

    def identities_of(self, address: str) -> tuple[int, int]:
        """(peer identity, cidr identity or 0) for an address: the two LPM lookups."""
        return _lpm(self.ipcache, address), _lpm(self.cidrs, address)


def _lpm(table: Mapping[str, int], address: str) -> int:
    ip = ipaddress.IPv4Address(address)
    best_len, best = -1, 0
    for prefix, ident in table.items():
        net = ipaddress.IPv4Network(prefix)
        if ip in net and net.prefixlen > best_len:
            best_len, best = net.prefixlen, ident
    return best
