"""Who is behind an address, what an identity means: one object the observer and the API
share (observe.metadata.EndpointMetadata and agent.api.services.IdentityView).

Built once by the composition root. The regenerator calls `refresh` after each pass
with the snapshot it applied; the peers table is replaced whole (one reference
assignment), so the observer's worker always reads a complete table without a lock.
Identity labels are read from the allocators, which lock for themselves.
"""

from __future__ import annotations

from typing import Callable, Mapping, Protocol

from agent.store import Snapshot
from identity.allocator import Identity
from identity.reserved import MIN_LABEL_IDENTITY, ReservedIdentity
from observe.metadata import PeerInfo


class IdentityLookup(Protocol):
    """The part of an allocator that answers "which labels has number N"."""

    def lookup(self, identity_id: int) -> Identity | None: ...

    def identities(self) -> list[Identity]: ...


class AgentMetadata:
    def __init__(self, node: str, identities: IdentityLookup,
                 cidr_identities: IdentityLookup) -> None:
        self._node = node
        self._identities = identities
        self._cidr_identities = cidr_identities
        self._peers: Mapping[str, PeerInfo] = {}

    def refresh(self, snapshot: Snapshot, identity_of: Callable[[str], Identity | None],
                local_endpoints: Mapping[str, int]) -> None:
        """Rebuilds ip -> PeerInfo from the applied snapshot: every pod with an IP and an
        identity (`identity_of(pod key)`, the engine's), and the nodes.
        `local_endpoints` maps a local pod's key to its endpoint id."""
        peers: dict[str, PeerInfo] = {}
        for key, pod in snapshot.objects.pods.items():
            ident = identity_of(key)
            if pod.ip and ident is not None:
                peers[pod.ip] = PeerInfo(identity=ident.id, namespace=pod.namespace,
                                         pod_name=pod.name, labels=ident.labels.lines(),
                                         endpoint_id=local_endpoints.get(key, 0))
        for node in snapshot.objects.nodes.values():
            if node.ip:
                reserved = (ReservedIdentity.HOST if node.name == self._node
                            else ReservedIdentity.REMOTE_NODE)
                peers[node.ip] = PeerInfo(identity=int(reserved), namespace="", pod_name="",
                                          labels=reserved.labels.lines(), endpoint_id=0)
        self._peers = peers

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

    # -- IdentityView (API) ----------------------------------------------------------------
    def identities(self) -> list[Identity]:
        return sorted(self._identities.identities(), key=lambda i: i.id)
