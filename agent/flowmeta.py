"""Who is behind an address, what an identity means, which policies decided: one object
the observer and the API share (observe.metadata's EndpointMetadata and PolicyNamer,
agent.api.services.IdentityView).

Built once by the composition root. The regenerator calls `refresh` after each pass
with the snapshot and engine it applied, under the agent's lock; the peers table and the
policy index are replaced whole (one reference assignment each), so the observer's
threads always read complete tables without a lock, and `on_change` (the observer's
metadata_changed) is told so flows built from now on say what changed.

Policy names come from the engine's provenance, the same the `policy trace` command
prints, indexed per local endpoint and direction: the policies that select the pod for
that direction (isolating it) and, per allow entry, the policies that contributed it.
Policies are named "namespace/name", as trace names them. Where cluster-wide tiers (or
the enforcement mode) decide a direction, the endpoint's EndpointPolicy decides the flow
again as the datapath did (agent.policy.mapstate.decide): an Admin or Baseline rule that
decided names its policy and rule (an Allow in *_allowed_by; a Deny, also one audit mode
let through, in *_denied_by); a Pass, or no tier rule, leaves it to the NetworkPolicies
as above. The peer is the event's one identity: a rule on `networks` covering a pod's
address is not seen for that pod's flows (the datapath also matched its CIDR identity).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from agent.endpoints import Endpoint, interface_index
from agent.policy.engine import PolicyEngine
from agent.policy.mapstate import DecidedBy, EndpointPolicy, PolicyKey, TierEntry
from agent.policy.tiers import TierProvenance
from agent.pod_workloads import workloads_of
from agent.store import Snapshot
from core.protocols import Direction
from identity.allocator import Identity
from identity.reserved import MIN_LABEL_IDENTITY, ReservedIdentity
from observe.metadata import PeerInfo, PolicyRef, PolicyVerdictNames


class IdentityLookup(Protocol):
    """The part of an allocator that answers "which labels has number N"."""

    def lookup(self, identity_id: int) -> Identity | None: ...

    def identities(self) -> list[Identity]: ...


@dataclass(frozen=True)
class _DirectionPolicies:
    isolated_by: tuple[PolicyRef, ...]
    entries: tuple[tuple[PolicyKey, tuple[PolicyRef, ...]], ...]
    # Tiers or the enforcement mode decide this direction: the policy to decide with,
    # and the rule behind each of its tier entries.
    tiered: EndpointPolicy | None = None
    tier_refs: Mapping[TierEntry, PolicyRef] = field(default_factory=dict)


def _ref(policy_key: str, revision: int) -> PolicyRef:
    namespace, _, name = policy_key.partition("/")
    return PolicyRef(name=name, namespace=namespace, revision=revision)


def _tier_ref(why: TierProvenance, revision: int) -> PolicyRef:
    kind, _, name = why.policy.partition("/")
    return PolicyRef(name=name, namespace="", kind=kind, revision=revision,
                     rule=why.rule_path)


def policy_index(engine: PolicyEngine, pod_key: str, revision: int
                 ) -> dict[Direction, _DirectionPolicies]:
    """Per direction: who isolates the pod, and who contributed each allow entry (and,
    where tiers decide, the rule behind each tier entry)."""
    selecting = engine.selecting_policies(pod_key)
    provenance = engine.provenance(pod_key)
    policy = engine.endpoint_policy(pod_key)
    tier_refs = {entry: _tier_ref(min(whys), revision)
                 for entry, whys in engine.tiers.provenance(pod_key).items()
                 if whys and min(whys).policy}
    out = {}
    for direction in Direction:
        isolating = tuple(_ref(k, revision) for k in selecting
                          if (cp := engine.policy(k)) is not None and cp.enforces(direction))
        entries = tuple(
            (key, tuple(_ref(p, revision) for p in sorted({w.policy for w in whys if w.policy})))
            for key, whys in provenance.items() if key.direction is direction)
        tiered = policy.tiered(direction)
        out[direction] = _DirectionPolicies(
            isolating, entries, policy if tiered else None,
            {e: r for e, r in tier_refs.items() if e.direction is direction} if tiered else {})
    return out


def _tier_names(side: _DirectionPolicies, direction: Direction, peer_identity: int,
                protocol: int, port: int) -> PolicyVerdictNames | None:
    """The names when a tier rule or the mode's default decided; None: NetworkPolicy's
    step (or nothing) decided."""
    assert side.tiered is not None
    decision = side.tiered.decide(direction, (peer_identity,), protocol, port)
    if decision.by is DecidedBy.DEFAULT:
        return PolicyVerdictNames()
    if decision.by not in (DecidedBy.ADMIN, DecidedBy.BASELINE) or decision.entry is None:
        return None
    ref = side.tier_refs.get(decision.entry)
    refs = (ref,) if ref is not None else ()
    if decision.allowed:
        return PolicyVerdictNames(allowed_by=refs, isolated_by=side.isolated_by)
    return PolicyVerdictNames(isolated_by=refs)


class AgentMetadata:
    def __init__(self, node: str, identities: IdentityLookup,
                 cidr_identities: IdentityLookup,
                 on_change: Callable[[], None] | None = None) -> None:
        self._node = node
        self._identities = identities
        self._cidr_identities = cidr_identities
        self._peers: Mapping[str, PeerInfo] = {}
        self._policies: Mapping[int, Mapping[Direction, _DirectionPolicies]] = {}
        self.on_change = on_change

    def refresh(self, snapshot: Snapshot, engine: PolicyEngine,
                local_endpoints: Iterable[Endpoint]) -> None:
        """Rebuilds ip -> PeerInfo from the applied snapshot (every pod with an IP and an
        identity, the engine's; the nodes) and the policy index of the local endpoints."""
        local = {ep.key: ep for ep in local_endpoints}
        peers: dict[str, PeerInfo] = {}
        for key, pod in snapshot.objects.pods.items():
            ident = engine.identity_of(key)
            if not pod.addresses or ident is None:
                continue
            ep = local.get(key)
            interface = None
            if ep is not None:
                interface = (ep.ifindex or interface_index(ep.ifname), ep.ifname)
            info = PeerInfo(identity=ident.id, namespace=pod.namespace,
                            pod_name=pod.name, labels=ident.labels.lines(),
                            endpoint_id=ep.id if ep is not None else 0,
                            workloads=workloads_of(pod), interface=interface)
            # A dual-stack pod is the same peer under either of its addresses.
            peers.update(dict.fromkeys(pod.addresses, info))
        for node in snapshot.objects.nodes.values():
            reserved = (ReservedIdentity.HOST if node.name == self._node
                        else ReservedIdentity.REMOTE_NODE)
            peers.update(dict.fromkeys(node.addresses, PeerInfo(
                identity=int(reserved), namespace="", pod_name="",
                labels=reserved.labels.lines(), endpoint_id=0)))
        revision = snapshot.source_revision
        self._policies = {ep.id: policy_index(engine, key, revision)
                          for key, ep in local.items() if key in engine.pods()}
        self._peers = peers
        if self.on_change is not None:
            self.on_change()

    # -- EndpointMetadata (observe) ------------------------------------------------------
    def lookup_ip(self, ip: str) -> PeerInfo | None:
        return self._peers.get(ip)

    def identity_labels(self, identity: int) -> list[str]:
        if 0 < identity < MIN_LABEL_IDENTITY:
            try:
                return ReservedIdentity(identity).labels.lines()
            except ValueError:
                return []
        ident = self._identities.lookup(identity)
        if ident is None:
            ident = self._cidr_identities.lookup(identity)
        return ident.labels.lines() if ident is not None else []

    # -- PolicyNamer (observe) -------------------------------------------------------------
    def policy_names(self, endpoint_id: int, direction: Direction, peer_identity: int,
                     protocol: int, port: int) -> PolicyVerdictNames:
        sides = self._policies.get(endpoint_id)
        if sides is None:
            return PolicyVerdictNames()
        side = sides[direction]
        if side.tiered is not None:
            named = _tier_names(side, direction, peer_identity, protocol, port)
            if named is not None:
                return named
        allowed: dict[PolicyRef, None] = {}
        for key, refs in side.entries:
            if key.matches((peer_identity,), protocol, port):
                allowed.update(dict.fromkeys(refs))
        return PolicyVerdictNames(allowed_by=tuple(sorted(allowed, key=lambda r: r.text)),
                                  isolated_by=side.isolated_by)

    # -- IdentityView (API) ----------------------------------------------------------------
    def identities(self) -> list[Identity]:
        return sorted(self._identities.identities(), key=lambda i: i.id)
