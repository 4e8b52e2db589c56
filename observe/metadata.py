"""What the observer needs to know about addresses, identities and policies: the agent
implements it.

The flow builder only sees a `DatapathEvent` (addresses, identities, an endpoint id). To
show pods, namespaces, labels and workloads it asks an `EndpointMetadata`, which the
agent backs with its endpoint manager, store and identity allocator; to name the
policies behind a verdict it asks a `PolicyNamer`, which the agent backs with its
policy engine's provenance (the same the `policy trace` command prints). Keeping these
small protocols is what lets observe know flows, not maps (and lets tests use dicts).

Answers are cached per kind of flow by observe.flow.FlowEncoder: the agent calls
FlowObserver.metadata_changed() whenever what it would answer changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from core.protocols import Direction


@dataclass(frozen=True)
class Workload:
    """A pod's controller, as Hubble names it (kind "Deployment", "StatefulSet",
    "DaemonSet", "Job", "CronJob", or the owner's own kind)."""

    name: str
    kind: str


@dataclass(frozen=True)
class PeerInfo:
    """One address as the agent knows it: a pod (local or remote), a node, or a CIDR."""

    identity: int
    namespace: str = ""
    pod_name: str = ""
    labels: list[str] = field(default_factory=list)   # "source:key=value"
    endpoint_id: int = 0                               # local endpoint id, 0 elsewhere
    workloads: tuple[Workload, ...] = ()
    # The host side of a local endpoint's veth (ifindex, name); None elsewhere.
    interface: tuple[int, str] | None = None
    names: tuple[str, ...] = ()                        # DNS names, when known


class EndpointMetadata(Protocol):
    def lookup_ip(self, ip: str) -> PeerInfo | None:
        """The pod (or node, or ipBlock CIDR) holding this address, or None if unknown.

        Called once per new kind of flow on an observer thread: it must not block on
        I/O (answer from the agent's in-memory caches)."""
        ...

    def identity_labels(self, identity: int) -> list[str]:
        """Labels of an identity ("reserved:world", "cidr:10.0.0.0/8", "k8s:app=x");
        empty if unknown."""
        ...


@dataclass(frozen=True)
class PolicyRef:
    """A policy as flows name it (flow.Policy): a NetworkPolicy, or a cluster-wide tier
    policy (no namespace; its kind, and the rule that decided, agent/policy/tiers.py)."""

    name: str
    namespace: str
    kind: str = "NetworkPolicy"
    revision: int = 0
    rule: str = ""       # tier policies: the deciding rule, 'spec.ingress[0] "name"'

    @property
    def text(self) -> str:
        """"namespace/name" (a cluster-wide policy "Kind/name"), how printers and
        `policy trace` show it."""
        if self.namespace:
            return f"{self.namespace}/{self.name}"
        return self.name if self.kind == "NetworkPolicy" else f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PolicyVerdictNames:
    """Why one local endpoint's direction decided as it did for one peer and port.

    allowed_by: the policies with a rule that allows it (empty when denied).
    isolated_by: the policies that select the endpoint for that direction (what makes
    a missing allow a drop); Membrane reports them as *_denied_by on denied flows."""

    allowed_by: tuple[PolicyRef, ...] = ()
    isolated_by: tuple[PolicyRef, ...] = ()


class PolicyNamer(Protocol):
    def policy_names(self, endpoint_id: int, direction: Direction, peer_identity: int,
                     protocol: int, port: int) -> PolicyVerdictNames:
        """The policies behind the verdict of local endpoint `endpoint_id` in
        `direction` for a peer of `peer_identity` on `protocol`/`port` (the local
        port at ingress, the peer's at egress). Same rules as EndpointMetadata: in
        memory, no I/O."""
        ...


class StaticMetadata:
    """An `EndpointMetadata` and `PolicyNamer` from dicts: for tests, and for replaying
    recorded events. `policies` maps (endpoint id, direction, peer identity, protocol,
    port) to the names; anything not in it has none."""

    def __init__(self, peers: dict[str, PeerInfo] | None = None,
                 identities: dict[int, list[str]] | None = None,
                 policies: dict[tuple[int, Direction, int, int, int],
                                PolicyVerdictNames] | None = None) -> None:
        self.peers = dict(peers or {})
        self.identities = dict(identities or {})
        self.policies = dict(policies or {})

    def lookup_ip(self, ip: str) -> PeerInfo | None:
        return self.peers.get(ip)

    def identity_labels(self, identity: int) -> list[str]:
        return list(self.identities.get(identity, []))

    def policy_names(self, endpoint_id: int, direction: Direction, peer_identity: int,
                     protocol: int, port: int) -> PolicyVerdictNames:
        return self.policies.get((endpoint_id, direction, peer_identity, protocol, port),
                                 PolicyVerdictNames())
