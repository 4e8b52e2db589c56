"""One synthetic policy set, expressed both ways: Membrane map state and kube-router iptables.

The set protects the `server` pod (ingress). It has `rules` allow rules; rule i allows
one peer identity (one of `identities` remote pods, one IP each) on one TCP port, and
the last rule allows the `client` pod on the benchmark's TCP ports (5200-5203). Every
(peer, port) pair is distinct, so Membrane writes one policy entry per rule and
kube-router one ipset-backed iptables rule per rule: the two enforce the same thing.
The ipcache always holds every identity, whatever the rule count (the issue asks for
10,000 identities in the ipcache at every size).

One family per rule set (`family`): its peers' addresses, and the pods' addresses it is
given, are of that family. Membrane's policy is family-free (identities), so both
families' rule sets give the same policy; their cluster maps together are a dual-stack
node's ipcache (`dual_stack_maps`). The iptables peer loads each family's into iptables
and ip6tables.

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
PEER_NET6 = ipaddress.IPv6Network("fd00:64::/96")  # the same remote pods' IPv6 twins
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


def peer_ip(k: int, family: int = 4) -> str:
    net = PEER_NET6 if family == 6 else PEER_NET
    return str(net.network_address + 1 + k)


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    identities: int
    client_ip: str
    server_ip: str
    family: int = 4

    @classmethod
    def make(cls, rules: int, identities: int, client_ip: str, server_ip: str,
             family: int = 4) -> "RuleSet":
        if rules < 1:
            raise ValueError("a rule set needs at least the client's rule")
        out = []
        for i in range(rules - 1):
            k = i % identities
            port = 10000 + i // identities
            out.append(Rule(FIRST_PEER_IDENTITY + k, (peer_ip(k, family),), port, port))
        out.append(Rule(CLIENT_IDENTITY, (client_ip,), *ALLOWED_PORTS))
        return cls(tuple(out), identities, client_ip, server_ip, family)

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
        host = "/128" if self.family == 6 else "/32"
        ipcache = {f"{peer_ip(k, self.family)}{host}": FIRST_PEER_IDENTITY + k
                   for k in range(self.identities)}
        ipcache[f"{self.client_ip}{host}"] = CLIENT_IDENTITY
        ipcache[f"{self.server_ip}{host}"] = SERVER_IDENTITY
        ipcache["::/0" if self.family == 6 else "0.0.0.0/0"] = WORLD_IDENTITY
        if node_ip:
            ipcache[f"{node_ip}{host}"] = HOST_IDENTITY
        return ClusterMaps(ipcache=ipcache, cidrs={})


def dual_stack_maps(*rule_sets: RuleSet) -> ClusterMaps:
    """The cluster maps of rule sets of both families together: a dual-stack ipcache."""
    ipcache: dict[str, int] = {}
    for rs in rule_sets:
        ipcache.update(rs.cluster_maps().ipcache)
    return ClusterMaps(ipcache=ipcache, cidrs={})
