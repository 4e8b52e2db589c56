"""The tiered resolver: cluster-wide policies -> the tier entries one endpoint gets.

A `TieredPolicy` (ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy,
agent.k8s.clusterpolicy) is compiled once (`CompiledTierPolicy.of`): its subject and
`pods`/`namespaces` peers become selector-cache Selectors, its `networks` and `nodes`
peers prefixes (a node is its InternalIPs, /32 and /128), each with a CIDR identity the engine
allocates, as for NetworkPolicy ipBlocks. For an endpoint the policy selects it
contributes, per rule, (peer identity, protocol, port range) triples with the rule's
action; `rank` then orders every selecting policy's rules of one tier and direction
into TierEntries: rank 1 is the first rule of the first policy (priority, then API and
name: `TieredPolicy.order_key`), and the datapath lets the smallest rank decide
(bpf/lib/policy.h). Ranks are per endpoint and direction, so they stay small and a
change elsewhere in the cluster does not renumber this endpoint's entries.

Ports: none is every protocol and port; a number or range is one protocol's; a named
port is the destination's container port of that name, with that port's own protocol:
ingress resolves it on the endpoint itself, egress on the pods of each peer identity
(on the pods inside a `networks` prefix for networks peers). `domainNames` peers give no
entries (reported as not enforced). Networks of both families get identities, as the
engine's ipBlocks do, each matched in its family's cidr map.

Every entry carries a TierProvenance (tier, policy, rule index and name, action, peer,
port) so `policy trace`, flows and `bpf policy get` can say which rule decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

from core.protocols import ANY_PROTOCOL, Direction
from agent.k8s.objects import (IPBlock, Node, Pod, RuleAction, Tier, TieredPolicy, TierPeer,
                               TierPort, TierRule, TierSelector)
from agent.policy.mapstate import MAX_TIER_RANK, TierAction, TierEntry, TierLevel
from agent.policy.ports import ANY_PORTS, PortRange
from agent.policy.resolver import ResolveContext
from agent.policy.selectorcache import Selector

LEVELS = {Tier.ADMIN: TierLevel.ADMIN, Tier.BASELINE: TierLevel.BASELINE}
ACTIONS = {RuleAction.ALLOW: TierAction.ALLOW, RuleAction.DENY: TierAction.DENY,
           RuleAction.PASS: TierAction.PASS}
HOST_RANK = 0     # the built-in "node reaches its pods" entry: before every rule


@dataclass(frozen=True, order=True)
class TierProvenance:
    """Why a tier entry exists: which rule of which policy. `peer`/`port` index the
    rule's lists (None: the rule has no ports)."""

    policy: str            # "ClusterNetworkPolicy/name"; "" for the built-in host entry
    tier: Tier
    direction: Direction
    rule: int              # index in spec.ingress / spec.egress
    rule_name: str
    action: RuleAction
    peer: int | None
    port: int | None
    text: str

    @property
    def rule_path(self) -> str:
        """spec.egress[2] "deny-all", as validation names fields."""
        name = f' "{self.rule_name}"' if self.rule_name else ""
        return f"spec.{self.direction.name.lower()}[{self.rule}]{name}"


HOST_TIER_PROVENANCE = TierProvenance(
    "", Tier.ADMIN, Direction.INGRESS, -1, "", RuleAction.ALLOW, None, None,
    "built in: the node always reaches its pods (kubelet probes, node health checks)")

# Before ranking: (direction, tier, rule index, action, peer, protocol, low, high).
Hit = tuple[Direction, Tier, int, RuleAction, int, int, int, int]
TierContribution = list[tuple[Hit, TierProvenance]]


def selector_of(selection: TierSelector) -> Selector:
    return Selector(None, selection.pod_selector, selection.namespace_selector)


def node_blocks(selector_nodes: Iterable[Node]) -> tuple[IPBlock, ...]:
    return tuple(sorted({IPBlock(f"{a}/{128 if ':' in a else 32}")
                         for n in selector_nodes for a in n.addresses},
                        key=lambda b: b.cidr))


@dataclass(frozen=True)
class CompiledTierPolicy:
    """A tier policy with what the engine indexes it by."""

    policy: TieredPolicy
    subject: Selector
    peer_selectors: frozenset[Selector]
    ip_blocks: frozenset[IPBlock]              # networks and node addresses (both families)
    # The node addresses each `nodes` peer selects, by (direction, rule, peer) index.
    nodes: Mapping[tuple[Direction, int, int], tuple[IPBlock, ...]]
    ingress_named: bool
    egress_named: bool

    @property
    def key(self) -> str:
        return self.policy.key

    def enforces(self, direction: Direction) -> bool:
        """A policy without rules in a direction does not affect it."""
        return bool(_rules(self.policy, direction))

    @classmethod
    def of(cls, policy: TieredPolicy, nodes: Mapping[str, Node]) -> "CompiledTierPolicy":
        selectors: set[Selector] = set()
        blocks: set[IPBlock] = set()
        node_peers: dict[tuple[Direction, int, int], tuple[IPBlock, ...]] = {}
        named = {Direction.INGRESS: False, Direction.EGRESS: False}
        for direction in Direction:
            for ri, rule in enumerate(_rules(policy, direction)):
                for pi, peer in enumerate(rule.peers):
                    if peer.pods is not None:
                        selectors.add(selector_of(peer.pods))
                    elif peer.nodes is not None:
                        selected = node_blocks(n for n in nodes.values()
                                               if peer.nodes.matches(n.labels))
                        node_peers[(direction, ri, pi)] = selected
                        blocks.update(selected)
                    blocks.update(IPBlock(network) for network in peer.networks)
                named[direction] |= any(p.name is not None for p in rule.ports)
        return cls(policy, selector_of(policy.subject), frozenset(selectors),
                   frozenset(blocks), node_peers, named[Direction.INGRESS],
                   named[Direction.EGRESS])

    def depends_on_nodes(self) -> bool:
        return bool(self.nodes)

    def contribution(self, endpoint: Pod, ctx: ResolveContext) -> TierContribution:
        """Both directions' hits this policy gives `endpoint` (which it must select)."""
        out: TierContribution = []
        for direction in Direction:
            for ri, rule in enumerate(_rules(self.policy, direction)):
                out += self._rule_hits(direction, ri, rule, endpoint, ctx)
        return out

    def _rule_hits(self, direction: Direction, ri: int, rule: TierRule, endpoint: Pod,
                   ctx: ResolveContext) -> TierContribution:
        out: TierContribution = []
        ports: list[tuple[int | None, TierPort | None]] = (
            list(enumerate(rule.ports)) or [(None, None)])
        for pi, peer in enumerate(rule.peers):
            targets = self._peer_identities(peer, self.nodes.get((direction, ri, pi), ()), ctx)
            for qi, port in ports:
                prov = TierProvenance(self.key, self.policy.tier, direction, ri, rule.name,
                                      rule.action, pi, qi,
                                      _text(self.policy, direction, ri, rule, pi, peer, qi,
                                            port))
                for ident, (proto, low, high) in _expand(direction, peer, targets, port,
                                                         endpoint, ctx):
                    out.append(((direction, self.policy.tier, ri, rule.action, ident, proto,
                                 low, high), prov))
        return out

    @staticmethod
    def _peer_identities(peer: TierPeer, node_addresses: Sequence[IPBlock],
                         ctx: ResolveContext) -> Sequence[int]:
        if peer.pods is not None:
            return sorted(ctx.selected(selector_of(peer.pods)))
        if peer.nodes is not None:
            return _block_ids(node_addresses, ctx)
        if peer.networks:
            return _block_ids(map(IPBlock, peer.networks), ctx)
        return ()   # domainNames: not enforced


def _block_ids(blocks: Iterable[IPBlock], ctx: ResolveContext) -> list[int]:
    found: set[int] = set()
    for block in blocks:
        found.update(ctx.block_identities(block))
    return sorted(found)


def _rules(policy: TieredPolicy, direction: Direction) -> tuple[TierRule, ...]:
    return policy.ingress if direction is Direction.INGRESS else policy.egress


def _text(policy: TieredPolicy, direction: Direction, ri: int, rule: TierRule, pi: int,
          peer: TierPeer, qi: int | None, port: TierPort | None) -> str:
    word = "from" if direction is Direction.INGRESS else "to"
    name = f' "{rule.name}"' if rule.name else ""
    port_part = f"ports[{qi}] {port}" if qi is not None else "any protocol and port"
    return (f"{policy}: spec.{direction.name.lower()}[{ri}]{name} {rule.action.value} "
            f"{word}[{pi}] {peer}, {port_part}")


def _named_on(name: str, pods: Iterable[Pod]) -> set[PortRange]:
    """A named port on pods: every container port so named, with its own protocol."""
    return {(p.protocol.number, p.port, p.port) for pod in pods for p in pod.ports
            if p.name == name}


def _expand(direction: Direction, peer: TierPeer, targets: Sequence[int],
            port: TierPort | None, endpoint: Pod,
            ctx: ResolveContext) -> list[tuple[int, PortRange]]:
    if port is None:
        return [(t, ANY_PORTS) for t in targets]
    if port.name is None:
        if port.protocol is None:
            return []   # stored by the API server, matched by nothing
        return [(t, (port.protocol.number, port.start, port.end)) for t in targets]
    if direction is Direction.INGRESS:
        ranges = sorted(_named_on(port.name, [endpoint]))
        return [(t, r) for t in targets for r in ranges]
    out: list[tuple[int, PortRange]] = []
    for ident in targets:
        pods = ctx.pods_in_cidr(ident) if peer.networks else ctx.pods_of(ident)
        out += [(ident, r) for r in sorted(_named_on(port.name, pods))]
    return out


def rank(selecting: Sequence[CompiledTierPolicy],
         contributions: Mapping[str, TierContribution]
         ) -> dict[TierEntry, list[TierProvenance]]:
    """The endpoint's tier entries from its selecting policies' hits: ranks per tier and
    direction, in evaluation order."""
    base: dict[tuple[Direction, Tier, str], int] = {}
    counted: dict[tuple[Direction, Tier], int] = {}
    for cp in sorted(selecting, key=lambda c: c.policy.order_key):
        for direction in Direction:
            slot = (direction, cp.policy.tier)
            base[(direction, cp.policy.tier, cp.key)] = counted.get(slot, 0)
            counted[slot] = counted.get(slot, 0) + len(_rules(cp.policy, direction))
    out: dict[TierEntry, list[TierProvenance]] = {}
    for cp in selecting:
        for hit, why in contributions.get(cp.key, ()):
            direction, tier, ri, action, peer, proto, low, high = hit
            # Past 65535 rules of one tier for one pod (the map's u16), rules share the
            # last rank: their order among themselves is then the map's, not the API's.
            place = min(base[(direction, tier, cp.key)] + ri + 1, MAX_TIER_RANK)
            entry = TierEntry(direction, LEVELS[tier], peer, proto, low, high, place,
                              ACTIONS[action], cp.policy.audit)
            out.setdefault(entry, []).append(why)
    return out


def host_entry(direction: Direction = Direction.INGRESS, host: int = 1) -> TierEntry:
    """The node reaching its pods, before any tier rule (enforcement mode always)."""
    return TierEntry(direction, TierLevel.ADMIN, host, ANY_PROTOCOL, rank=HOST_RANK,
                     action=TierAction.ALLOW)


class TierIndex:
    """The engine's cluster-wide policies (PolicyEngine.tiers): the compiled ones, what
    each contributes per endpoint (cached like NetworkPolicy contributions: ingress
    named ports make it depend on the endpoint's ports), and the provenance of every
    endpoint's tier entries. The engine registers their selectors and prefixes."""

    def __init__(self) -> None:
        self.compiled: dict[str, CompiledTierPolicy] = {}
        self._nodes: Mapping[str, Node] = {}          # the nodes they were compiled with
        self._contrib: dict[str, dict[object, TierContribution]] = {}
        self._provenance: dict[str, dict[TierEntry, list[TierProvenance]]] = {}

    def policy(self, key: str) -> CompiledTierPolicy | None:
        return self.compiled.get(key)

    def policies(self) -> list[TieredPolicy]:
        """In evaluation order: the Admin tier, then the Baseline tier."""
        return sorted((cp.policy for cp in self.compiled.values()),
                      key=lambda p: (p.tier.value, p.order_key))

    def provenance(self, pod_key: str) -> dict[TierEntry, list[TierProvenance]]:
        return {k: list(v) for k, v in self._provenance.get(pod_key, {}).items()}

    def stale(self, wanted: Mapping[str, TieredPolicy],
              nodes: Mapping[str, Node]) -> list[CompiledTierPolicy]:
        """Compiled policies gone or changed, or with `nodes` peers when the nodes
        changed (their labels or addresses) since the last call."""
        nodes_changed, self._nodes = nodes != self._nodes, dict(nodes)
        keyed = {p.key: p for p in wanted.values()}   # whatever the caller keys them by
        return [cp for key, cp in self.compiled.items()
                if keyed.get(key) != cp.policy or (nodes_changed and cp.depends_on_nodes())]

    def new(self, wanted: Mapping[str, TieredPolicy]) -> list[TieredPolicy]:
        """Wanted policies not compiled yet (after the stale ones were dropped)."""
        return sorted((p for p in wanted.values() if p.key not in self.compiled),
                      key=lambda p: p.key)

    def invalidate(self, key: str) -> CompiledTierPolicy | None:
        """Forgets what a policy contributed; the policy, if it is a compiled one."""
        self._contrib.pop(key, None)
        return self.compiled.get(key)

    def selecting(self, selects: Callable[[Selector], bool]) -> list[CompiledTierPolicy]:
        """The compiled policies whose subject `selects`, by key."""
        return [cp for _, cp in sorted(self.compiled.items()) if selects(cp.subject)]

    def drop(self, key: str) -> None:
        del self.compiled[key]
        self._contrib.pop(key, None)

    def entries(self, pod_key: str, endpoint: Pod, selecting: Sequence[CompiledTierPolicy],
                ctx: ResolveContext) -> dict[TierEntry, list[TierProvenance]]:
        """The endpoint's ranked tier entries (kept as its provenance)."""
        hits = {}
        for cp in selecting:
            per_policy = self._contrib.setdefault(cp.key, {})
            signature: object = endpoint.ports if cp.ingress_named else None
            found = per_policy.get(signature)
            if found is None:
                found = per_policy[signature] = cp.contribution(endpoint, ctx)
            hits[cp.key] = found
        self._provenance[pod_key] = ranked = rank(selecting, hits)
        return ranked

    def forget(self, pod_key: str) -> None:
        self._provenance.pop(pod_key, None)
