"""The resolver: one NetworkPolicy -> the allow entries it gives one endpoint.

A policy's contribution depends on the endpoint only through ingress named ports (they
resolve against the endpoint's own pod); everything else depends on the cluster: which
identities its peer selectors match, which CIDR identities its ipBlocks cover, and, for
egress named ports, which ports the destination pods declare. The engine caches
contributions per policy and asks again only when one of those inputs changed.

Every entry carries its provenance (policy, direction, rule, peer, port), so `trace`
and `membrane bpf policy get` can say why an entry exists.

`map_entries` counts what a contribution would take of the policy map without building
it (the engine bounds each endpoint's entries before expanding anything), and a policy
the engine cannot enforce (too many ipBlock prefixes) is compiled `isolating`: it still
selects and isolates its pods, and contributes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Protocol, Sequence

from core.protocols import Direction
from agent.k8s.objects import (IPBlock, NetworkPolicy, Pod, PolicyPeer, PolicyPort, PolicyRule,
                               PolicyType)
from agent.policy.mapstate import ANY_IDENTITY, PolicyKey
from agent.policy.ports import (ANY_PORTS, PortRange, describe_port, is_named, map_entries,
                                named_on, numeric_range)
from agent.policy.selectorcache import Selector

NODE_REACHES_PODS = "node can always reach its pods (kubelet probes)"


@dataclass(frozen=True, order=True)
class Provenance:
    """Why an entry exists. rule/peer/port are indexes into the policy's lists; None
    when the list was empty (every peer / every port) or the entry is built in."""

    policy: str            # "ns/name", or "" for built-in entries
    direction: Direction
    rule: int | None
    peer: int | None
    port: int | None
    text: str


HOST_PROVENANCE = Provenance("", Direction.INGRESS, None, None, None, NODE_REACHES_PODS)

Contribution = list[tuple[PolicyKey, Provenance]]


class ResolveContext(Protocol):
    """What the resolver needs to know about the cluster (the engine provides it)."""

    def selected(self, selector: Selector) -> frozenset[int]: ...

    def block_identities(self, block: IPBlock) -> Sequence[int]: ...

    def label_identities(self) -> Iterable[int]: ...

    def pods_of(self, identity: int) -> Iterable[Pod]: ...

    def pods_in_cidr(self, cidr_identity: int) -> Iterable[Pod]: ...


_TYPE_OF = {Direction.INGRESS: PolicyType.INGRESS, Direction.EGRESS: PolicyType.EGRESS}


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy with what the engine indexes it by."""

    policy: NetworkPolicy
    subject: Selector
    peer_selectors: frozenset[Selector]
    ip_blocks: frozenset[IPBlock]   # of both families
    ingress_named: bool   # contribution depends on the endpoint's own ports
    egress_named: bool    # contribution depends on the ports other pods declare
    not_enforced: str = ""   # why only its isolation applies (see `isolating`)

    @property
    def key(self) -> str:
        return self.policy.key

    def enforces(self, direction: Direction) -> bool:
        return _TYPE_OF[direction] in self.policy.policy_types

    @classmethod
    def of(cls, policy: NetworkPolicy) -> "CompiledPolicy":
        selectors: set[Selector] = set()
        blocks: set[IPBlock] = set()
        named = {Direction.INGRESS: False, Direction.EGRESS: False}
        for direction in Direction:
            if _TYPE_OF[direction] not in policy.policy_types:
                continue  # rules of a type the policy does not declare are ignored
            for rule in _rules(policy, direction):
                for peer in rule.peers:
                    if peer.ip_block is not None:
                        blocks.add(peer.ip_block)
                    else:
                        selectors.add(Selector.of_peer(policy.namespace, peer))
                named[direction] |= any(is_named(p) for p in rule.ports)
        return cls(policy, Selector.subject(policy.namespace, policy.pod_selector),
                   frozenset(selectors), frozenset(blocks),
                   named[Direction.INGRESS], named[Direction.EGRESS])

    @classmethod
    def isolating(cls, policy: NetworkPolicy, reason: str) -> "CompiledPolicy":
        """A policy that cannot be enforced as written: it selects and isolates the pods
        it would, in the directions it declares, and allows nothing (fail closed)."""
        return cls(policy, Selector.subject(policy.namespace, policy.pod_selector),
                   frozenset(), frozenset(), False, False, reason)

    def contribution(self, endpoint: Pod, ctx: ResolveContext) -> Contribution:
        """Both directions' entries this policy gives `endpoint` (which it must select)."""
        out: Contribution = []
        if self.not_enforced:
            return out
        for direction in Direction:
            if self.enforces(direction):
                out += _resolve(self.policy, direction, endpoint, ctx)
        return out

    def map_entries(self, endpoint: Pod, ctx: ResolveContext) -> int:
        """Policy map entries `contribution` would take, at most, counted without
        building it: peers x port blocks per rule (named ports resolved, they are few)."""
        if self.not_enforced:
            return 0
        total = 0
        for direction in Direction:
            if not self.enforces(direction):
                continue
            for rule in _rules(self.policy, direction):
                numeric = sum(map_entries(*numeric_range(p)) for p in rule.ports
                              if not is_named(p)) if rule.ports else 1
                named = [p for p in rule.ports if is_named(p)]
                for peer in rule.peers or (None,):
                    targets = _peer_identities(peer, self.policy.namespace, ctx)
                    total += len(targets) * numeric
                    for port in named:
                        total += len(list(_expand(direction, peer, targets, port, endpoint,
                                                  ctx)))
        return total


def _rules(policy: NetworkPolicy, direction: Direction) -> tuple[PolicyRule, ...]:
    return policy.ingress if direction is Direction.INGRESS else policy.egress


def describe_peer(peer: PolicyPeer | None, policy_namespace: str) -> str:
    if peer is None:
        return "any peer"
    if peer.ip_block is not None:
        block = peer.ip_block
        excepts = f" except {', '.join(block.except_)}" if block.except_ else ""
        return f"ipBlock {block.cidr}{excepts}"
    return str(Selector.of_peer(policy_namespace, peer))


def _resolve(policy: NetworkPolicy, direction: Direction, endpoint: Pod,
             ctx: ResolveContext) -> Contribution:
    out: Contribution = []
    for ri, rule in enumerate(_rules(policy, direction)):
        # An empty list means "every": one wildcard stands for the whole list.
        peers: list[tuple[int | None, PolicyPeer | None]] = (
            list(enumerate(rule.peers)) or [(None, None)])
        ports: list[tuple[int | None, PolicyPort | None]] = (
            list(enumerate(rule.ports)) or [(None, None)])
        for pi, peer in peers:
            targets = _peer_identities(peer, policy.namespace, ctx)
            for qi, port in ports:
                prov = Provenance(policy.key, direction, ri, pi, qi,
                                  _text(policy, direction, ri, pi, peer, qi, port))
                for peer_id, (proto, low, high) in _expand(
                        direction, peer, targets, port, endpoint, ctx):
                    out.append((PolicyKey(direction, peer_id, proto, low, high), prov))
    return out


def _text(policy: NetworkPolicy, direction: Direction, ri: int, pi: int | None,
          peer: PolicyPeer | None, qi: int | None, port: PolicyPort | None) -> str:
    """Names the rule by its field path, as validation errors do: spec.ingress[0].from[1]."""
    word = "from" if direction is Direction.INGRESS else "to"
    peer_part = (f".{word}[{pi}] {describe_peer(peer, policy.namespace)}" if pi is not None
                 else f" any peer (no {word})")
    port_part = (f"ports[{qi}] {describe_port(port)}" if qi is not None
                 else "any protocol and port (no ports)")
    return f"{policy.key}: spec.{direction.name.lower()}[{ri}]{peer_part}, {port_part}"


def _peer_identities(peer: PolicyPeer | None, namespace: str,
                     ctx: ResolveContext) -> Sequence[int]:
    if peer is None:
        return (ANY_IDENTITY,)
    if peer.ip_block is not None:
        # CIDR identities of the block's own family (validation keeps its excepts in
        # it): the datapath looks each family's addresses up in that family's tries.
        return ctx.block_identities(peer.ip_block)
    return sorted(ctx.selected(Selector.of_peer(namespace, peer)))


def _expand(direction: Direction, peer: PolicyPeer | None, targets: Sequence[int],
            port: PolicyPort | None, endpoint: Pod,
            ctx: ResolveContext) -> Iterable[tuple[int, PortRange]]:
    if port is None:
        return [(t, ANY_PORTS) for t in targets]
    if not is_named(port):
        return [(t, numeric_range(port)) for t in targets]
    if direction is Direction.INGRESS:
        # Ingress: the port is the endpoint's own; the peer does not matter.
        ranges = named_on(port, [endpoint])
        return [(t, r) for t in targets for r in sorted(ranges)]
    # Egress: the port is the destination's, so resolve it per destination identity.
    out: list[tuple[int, PortRange]] = []
    if peer is None:
        for ident in sorted(ctx.label_identities()):
            out += [(ident, r) for r in sorted(named_on(port, ctx.pods_of(ident)))]
    elif peer.ip_block is not None:
        for cidr_id in targets:
            out += [(cidr_id, r) for r in sorted(named_on(port, ctx.pods_in_cidr(cidr_id)))]
    else:
        for ident in targets:
            out += [(ident, r) for r in sorted(named_on(port, ctx.pods_of(ident)))]
    return out
