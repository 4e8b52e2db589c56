"""What the observer needs to know about addresses and identities: the agent implements it.

The flow builder only sees a `DatapathEvent` (addresses, identities, an endpoint id). To
show pods, namespaces and labels it asks an `EndpointMetadata`, which the agent backs
with its endpoint manager, store and identity allocator. Keeping this a two-method
protocol is what lets observe know flows, not maps (and lets tests use a dict).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class PeerInfo:
    """One address as the agent knows it: a pod (local or remote), a node, or a CIDR."""

    identity: int
    namespace: str = ""
    pod_name: str = ""
    labels: list[str] = field(default_factory=list)   # "source:key=value"
    endpoint_id: int = 0                               # local endpoint id, 0 elsewhere


class EndpointMetadata(Protocol):
    def lookup_ip(self, ip: str) -> PeerInfo | None:
        """The pod (or node, or ipBlock CIDR) holding this address, or None if unknown.

        Called once per flow side on the observer's worker thread: it must not block on
        I/O (answer from the agent's in-memory caches)."""
        ...

    def identity_labels(self, identity: int) -> list[str]:
        """Labels of an identity ("reserved:world", "cidr:10.0.0.0/8", "k8s:app=x");
        empty if unknown."""
        ...


class StaticMetadata:
    """An `EndpointMetadata` from two dicts: for tests, and for replaying recorded events."""

    def __init__(self, peers: dict[str, PeerInfo] | None = None,
                 identities: dict[int, list[str]] | None = None) -> None:
        self.peers = dict(peers or {})
        self.identities = dict(identities or {})

    def lookup_ip(self, ip: str) -> PeerInfo | None:
        return self.peers.get(ip)

    def identity_labels(self, identity: int) -> list[str]:
        return list(self.identities.get(identity, []))
