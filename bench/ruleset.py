"""One synthetic policy set, expressed both ways: Membrane map state and kube-router iptables.

The set protects the `server` pod (ingress). It has `rules` allow rules; rule i allows
one peer identity (one of `identities` remote pods, one IP each) on one TCP port, and
the last rule allows the `client` pod on the benchmark's TCP ports (5200-5203). Every
(peer, port) pair is distinct, so Membrane writes one policy entry per rule and
kube-router one ipset-backed iptables rule per rule: the two enforce the same thing.
The ipcache always holds every identity, whatever the rule count (the issue asks for
10,000 identities in the ipcache at every size).

Membrane's map state also carries cluster-wide tier entries (issue 13: "the datapath
ratios still meet their targets with tiers in the maps"), which change no verdict: an
Admin-tier Pass of the client (so every new benchmark connection decides through the
Admin tier before NetworkPolicy allows it), an Admin-tier Deny of every tenth peer on a
port no rule allows, and a Baseline-tier Deny of every tenth peer (never reached: the
server is isolated by NetworkPolicy). The writer flattens them into the same entries.
iptables gets none of them: Membrane does more work than its peer, never less.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from agent.policy.mapstate import (ANY_PROTOCOL, ClusterMaps, Direction, EndpointPolicy,
                                   PolicyKey, TierAction, TierEntry, TierLevel)

TCP = 6
FIRST_PEER_IDENTITY = 1000
CLIENT_IDENTITY = 900
SERVER_IDENTITY = 901
HOST_IDENTITY = 1
WORLD_IDENTITY = 2
PEER_NET = ipaddress.IPv4Network("10.64.0.0/14")   # room for 262k remote pods
SINK_PORT, IPERF_PORT, RR_PORT, CRR_PORT, UDP_PORT = 5200, 5201, 5202, 5203, 5204
ALLOWED_PORTS = (SINK_PORT, CRR_PORT)              # inclusive range the client may use
DENIED_PORT = 5205                                 # nothing allows it: a probe for "enforcing"
TIER_DENIED_PORT = 9999                            # the Admin tier's Denies (no rule allows it)


@dataclass(frozen=True)
class Rule:
    peer: int              # identity
    peer_ips: tuple[str, ...]
    port_low: int
    port_high: int


def peer_ip(k: int) -> str:
    return str(PEER_NET.network_address + 1 + k)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    identities: int
    client_ip: str
    server_ip: str

    @classmethod
    def make(cls, rules: int, identities: int, client_ip: str, server_ip: str) -> "RuleSet":
        if rules < 1:
            raise ValueError("a rule set needs at least the client's rule")
        out = []
        for i in range(rules - 1):
            k = i % identities
            port = 10000 + i // identities
            out.append(Rule(FIRST_PEER_IDENTITY + k, (peer_ip(k),), port, port))
        out.append(Rule(CLIENT_IDENTITY, (client_ip,), *ALLOWED_PORTS))
        return cls(tuple(out), identities, client_ip, server_ip)

    # -- Membrane ------------------------------------------------------------------
    def server_policy(self, tiers: bool = True) -> EndpointPolicy:
        entries = {PolicyKey(Direction.INGRESS, r.peer, TCP, r.port_low, r.port_high)
                   for r in self.rules}
        # The engine always lets the node reach an ingress-enforced pod (kubelet probes).
        entries.add(PolicyKey(Direction.INGRESS, HOST_IDENTITY, 0))
        return EndpointPolicy(ingress_enforced=True, entries=frozenset(entries),
                              tier_entries=self.tier_entries() if tiers else frozenset())

    def tier_entries(self) -> frozenset[TierEntry]:
        """The module docstring's tier rules: ranks in rule order, verdicts unchanged."""
        ingress, admin, baseline = Direction.INGRESS, TierLevel.ADMIN, TierLevel.BASELINE
        out = {TierEntry(ingress, admin, CLIENT_IDENTITY, ANY_PROTOCOL, rank=1,
                         action=TierAction.PASS)}
        peers = self.rules[:-1]
        out |= {TierEntry(ingress, admin, r.peer, TCP, TIER_DENIED_PORT, TIER_DENIED_PORT,
                          rank=2 + i, action=TierAction.DENY)
                for i, r in enumerate(peers[::10])}
        out |= {TierEntry(ingress, baseline, r.peer, ANY_PROTOCOL, rank=1 + i,
                          action=TierAction.DENY)
                for i, r in enumerate(peers[5::10])}
        return frozenset(out)

    def cluster_maps(self, node_ip: str | None = None) -> ClusterMaps:
        ipcache = {f"{peer_ip(k)}/32": FIRST_PEER_IDENTITY + k for k in range(self.identities)}
        ipcache[f"{self.client_ip}/32"] = CLIENT_IDENTITY
        ipcache[f"{self.server_ip}/32"] = SERVER_IDENTITY
        ipcache["0.0.0.0/0"] = WORLD_IDENTITY
        if node_ip:
            ipcache[f"{node_ip}/32"] = HOST_IDENTITY
        return ClusterMaps(ipcache=ipcache, cidrs={})
