"""The map state: what the policy engine hands the datapath.

The engine computes, per local endpoint, an immutable `EndpointPolicy`; for the whole
cluster, an immutable `ClusterMaps` (which address is which identity). The datapath
writer diffs these against the kernel maps and writes only the difference. Nothing here
knows about bcc or Kubernetes.

Lookup semantics the datapath implements (and `decide` below mirrors, so the engine,
`policy matrix` and the wire agree):

  peer identity  = ipcache LPM(peer address)            (pod, host, remote-node or world)
  cidr identity  = cidr LPM(peer address), if any        (ipBlock prefixes, pod IPs included)
  (each lookup in the tries of the address's family: an IPv4 prefix never holds an IPv6
  address, so an ipBlock matches peers of its own family only)
  an entry matches  when its peer is in {peer identity, cidr identity, ANY} and its
                    protocol is ANY, or equal with port_low <= port <= port_high
  verdict, per direction (bpf/lib/policy.h policy_decide):
    nothing decides the direction (no NetworkPolicy isolation, no tier entry, no
      default deny)                                  -> allowed, no lookup
    the first matching Admin-tier entry (lowest rank), unless it is a Pass
                                                     -> its action
    NetworkPolicy isolates the direction             -> allowed iff an allow entry matches
    the first matching Baseline-tier entry, unless a Pass -> its action
    otherwise                                        -> allowed, or denied under the
                                                        enforcement mode "always"
  and a denied packet passes, reported as AUDIT, when the endpoint is in audit mode or
  the deciding tier entry belongs to a policy in audit mode.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from enum import Enum, IntEnum
from functools import cached_property
from typing import Iterable, Mapping

# Direction and ANY_PROTOCOL are core.protocols' (one source; importable from here too).
from core.protocols import ANY_PROTOCOL, Direction
# How an allow matched is a flow fact (events carry it, Hubble prints it): observe owns it.
from observe.events import MatchType as MatchType

__all__ = ["ANY_IDENTITY", "ANY_PROTOCOL", "ClusterMaps", "DecidedBy", "Decision",
           "Direction", "EndpointPolicy", "MatchType", "PolicyKey", "TierAction", "TierEntry",
           "TierLevel"]

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


class TierLevel(IntEnum):
    """Which cluster-wide tier an entry belongs to (the value half of policy.h's entry)."""

    ADMIN = 1
    BASELINE = 2


class TierAction(IntEnum):
    """bpf/lib/policy.h TIER_ALLOW / TIER_DENY / TIER_PASS."""

    ALLOW = 1
    DENY = 2
    PASS = 3


# A tier rule's flags byte (bpf/lib/policy.h TIER_*): action, audit, its match type.
TIER_ACTION_MASK = 0x3
TIER_AUDIT = 0x4
TIER_MATCH_SHIFT = 3
MAX_TIER_RANK = 0xFFFF     # struct policy_entry's admin_rank / baseline_rank are u16


@dataclass(frozen=True, order=True)
class TierEntry:
    """One cluster-wide tier rule's entry for an endpoint: a peer and a port range like
    PolicyKey, with the rule's rank among the tier's rules for this endpoint and
    direction (1 first; 0 is the built-in host allow) and its action."""

    direction: Direction
    level: TierLevel
    peer: int                 # identity (never ANY: tier peers are selectors and CIDRs)
    protocol: int             # IP protocol number, or ANY_PROTOCOL
    port_low: int = 0
    port_high: int = 65535
    rank: int = 1
    action: TierAction = TierAction.DENY
    audit: bool = False       # its policy is in audit mode: a Deny lets traffic through

    def __post_init__(self) -> None:
        if self.protocol == ANY_PROTOCOL and (self.port_low, self.port_high) != (0, 65535):
            raise ValueError("an any-protocol entry covers every port")
        if not 0 <= self.port_low <= self.port_high <= 65535:
            raise ValueError(f"bad port range {self.port_low}-{self.port_high}")
        if not 0 <= self.rank <= MAX_TIER_RANK:
            raise ValueError(f"tier rank {self.rank} out of range")

    @property
    def key(self) -> PolicyKey:
        """The peer and ports as an allow entry would carry them (map key shape)."""
        return PolicyKey(self.direction, self.peer, self.protocol, self.port_low,
                         self.port_high)

    @property
    def match_type(self) -> MatchType:
        return self.key.match_type

    @property
    def flags(self) -> int:
        """The flags byte the datapath keeps beside the rank (never 0)."""
        return ((int(self.match_type) << TIER_MATCH_SHIFT) | (TIER_AUDIT if self.audit else 0)
                | int(self.action))

    def matches(self, peers: Iterable[int], protocol: int, port: int) -> bool:
        return self.key.matches(peers, protocol, port)


class DecidedBy(str, Enum):
    """Which step of the verdict (see the module docstring) decided it."""

    NOT_ENFORCED = "not enforced"
    ADMIN = "Admin tier"
    NETWORK_POLICY = "NetworkPolicy"
    BASELINE = "Baseline tier"
    DEFAULT = "default"


@dataclass(frozen=True)
class Decision:
    """One direction's verdict for a forward packet, and what made it."""

    allowed: bool                       # the policies' verdict
    by: DecidedBy
    match_type: MatchType = MatchType.NONE
    entry: TierEntry | None = None      # the deciding tier entry (ADMIN, BASELINE)
    passed: TierEntry | None = None     # an Admin-tier Pass that sent it further down
    audited: bool = False               # denied, and audit mode lets it through

    @property
    def passes(self) -> bool:
        """What the datapath does with the packet."""
        return self.allowed or self.audited


@dataclass(frozen=True)
class EndpointPolicy:
    """Everything the datapath needs to decide one endpoint's traffic.

    ingress/egress_enforced: a NetworkPolicy isolates that direction (the NetworkPolicy
    step decides: `entries` are its allows). tier_entries: the Admin and Baseline tiers'
    rules for this endpoint. default_deny: directions the enforcement mode "always"
    denies when no step decided. audit: the endpoint's denials pass, reported AUDIT.
    """

    ingress_enforced: bool = False
    egress_enforced: bool = False
    entries: frozenset[PolicyKey] = frozenset()
    tier_entries: frozenset[TierEntry] = frozenset()
    default_deny: frozenset[Direction] = frozenset()
    audit: bool = False

    def enforced(self, direction: Direction) -> bool:
        """NetworkPolicy isolates this direction."""
        return self.ingress_enforced if direction is Direction.INGRESS else self.egress_enforced

    def tiered(self, direction: Direction) -> bool:
        """Tier entries or a default deny make this direction looked up even when no
        NetworkPolicy isolates it (bpf/lib/policy.h EP_F_*_TIERED)."""
        return direction in self.default_deny or any(
            e.direction is direction for e in self.tier_entries)

    def decides(self, direction: Direction) -> bool:
        """Policy is looked up for this direction: what `endpoint list` calls enforced."""
        return self.enforced(direction) or self.tiered(direction)

    def evaluate(self, direction: Direction, peers: Iterable[int], protocol: int,
                 port: int) -> tuple[bool, MatchType]:
        """The datapath's treatment of a forward packet (AUDIT passes); its match type."""
        decision = self.decide(direction, peers, protocol, port)
        return decision.passes, decision.match_type

    def decide(self, direction: Direction, peers: Iterable[int], protocol: int,
               port: int) -> Decision:
        """The verdict the datapath gives a forward packet, step by step."""
        if not self.decides(direction):
            return Decision(True, DecidedBy.NOT_ENFORCED)
        peer_set = set(peers)
        admin = self._first(direction, TierLevel.ADMIN, peer_set, protocol, port)
        passed = admin if admin is not None and admin.action is TierAction.PASS else None
        if admin is not None and passed is None:
            return self._by_tier(DecidedBy.ADMIN, admin)
        if self.enforced(direction):
            best = self._best_allow(direction, peer_set, protocol, port)
            return Decision(best is not None, DecidedBy.NETWORK_POLICY,
                            best or MatchType.NONE, passed=passed,
                            audited=best is None and self.audit)
        baseline = self._first(direction, TierLevel.BASELINE, peer_set, protocol, port)
        if baseline is not None and baseline.action is not TierAction.PASS:
            return replace(self._by_tier(DecidedBy.BASELINE, baseline), passed=passed)
        deny = direction in self.default_deny
        return Decision(not deny, DecidedBy.DEFAULT, passed=passed,
                        audited=deny and self.audit)

    def _by_tier(self, by: DecidedBy, entry: TierEntry) -> Decision:
        allowed = entry.action is TierAction.ALLOW
        return Decision(allowed, by, entry.match_type, entry,
                        audited=not allowed and (self.audit or entry.audit))

    def _first(self, direction: Direction, level: TierLevel, peers: set[int], protocol: int,
               port: int) -> TierEntry | None:
        found = [e for e in self.tier_entries if e.direction is direction
                 and e.level is level and e.matches(peers, protocol, port)]
        return min(found, key=lambda e: e.rank) if found else None

    def _best_allow(self, direction: Direction, peers: set[int], protocol: int,
                    port: int) -> MatchType | None:
        best: MatchType | None = None
        for key in self.entries:
            if key.direction is direction and key.matches(peers, protocol, port):
                mt = key.match_type
                # Prefer the most specific match, as an LPM lookup in the kernel does.
                if best is None or _SPECIFICITY[mt] > _SPECIFICITY[best]:
                    best = mt
        return best


_SPECIFICITY = {MatchType.L3_L4: 4, MatchType.L3_ONLY: 3, MatchType.L4_ONLY: 2,
                MatchType.ALL: 1, MatchType.NONE: 0}


@dataclass(frozen=True)
class ClusterMaps:
    """Address -> identity for the whole cluster, both families.

    ipcache: every pod IP (/32, /128), node IPs (host / remote-node), 0.0.0.0/0 and ::/0
             -> world.
    cidrs:   every ipBlock cidr and except prefix -> its CIDR identity (>= 1<<24).
    Keys are normalised prefixes, "10.0.0.0/24" or "fd00:10:244::/64"; the datapath
    writes each family to its own tries (`family`). Identities do not depend on the
    family: a pod's one identity is the value of both its addresses.
    """

    ipcache: Mapping[str, int] = field(default_factory=dict)
    cidrs: Mapping[str, int] = field(default_factory=dict)

    def identities_of(self, address: str) -> tuple[int, int]:
        """(peer identity, cidr identity or 0) for an address: the two LPM lookups."""
        return _lpm(self.ipcache, address), _lpm(self.cidrs, address)

    def family(self, version: int) -> "ClusterMaps":
        """The entries of one family (4 or 6), as that family's maps hold them."""
        return self._families[version]

    @cached_property
    def _families(self) -> dict[int, "ClusterMaps"]:
        # Computed once per (immutable) map state: the engine caches its ClusterMaps,
        # so a sync that finds nothing changed does not split 100,000 prefixes again.
        split: dict[int, tuple[dict[str, int], dict[str, int]]] = {4: ({}, {}), 6: ({}, {})}
        for index, table in enumerate((self.ipcache, self.cidrs)):
            for prefix, ident in table.items():
                split[6 if ":" in prefix else 4][index][prefix] = ident
        return {v: ClusterMaps(ipcache, cidrs) for v, (ipcache, cidrs) in split.items()}


def _lpm(table: Mapping[str, int], address: str) -> int:
    ip = ipaddress.ip_address(address)
    best_len, best = -1, 0
    for prefix, ident in table.items():
        net = ipaddress.ip_network(prefix)
        if net.version == ip.version and ip in net and net.prefixlen > best_len:
            best_len, best = net.prefixlen, ident
    return best
