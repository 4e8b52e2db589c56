"""What the observer asks the agent: who is behind an address, what an identity means."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.store import Snapshot
from identity.reserved import ReservedIdentity

if TYPE_CHECKING:
    from agent.daemon import Agent


def peers_from(agent: "Agent", snapshot: Snapshot) -> dict[str, Any]:
    """ip -> PeerInfo for every pod with an IP, and the nodes; rebuilt per regeneration."""
    from observe.metadata import PeerInfo

    local = {ep.key: ep.id for ep in agent.registry.all()}
    peers: dict[str, Any] = {}
    for key, pod in snapshot.objects.pods.items():
        ident = agent.engine.identity_of(key)
        if pod.ip and ident is not None:
            peers[pod.ip] = PeerInfo(identity=ident.id, namespace=pod.namespace,
                                     pod_name=pod.name, labels=ident.labels.lines(),
                                     endpoint_id=local.get(key, 0))
    for node in snapshot.objects.nodes.values():
        if node.ip:
            reserved = (ReservedIdentity.HOST if node.name == agent.config.node
                        else ReservedIdentity.REMOTE_NODE)
            peers[node.ip] = PeerInfo(identity=int(reserved), namespace="", pod_name="",
                                      labels=reserved.labels.lines(), endpoint_id=0)
    return peers


class AgentMetadata:
    def __init__(self, agent: "Agent") -> None:
        self.agent = agent

    def lookup_ip(self, ip: str) -> Any:
        return self.agent.peers_by_ip.get(ip)

    def identity_labels(self, identity: int) -> list[str]:
        if 0 < identity < 256:
            try:
                return ReservedIdentity(identity).labels.lines()
            except ValueError:
                return []
        ident = self.agent.allocator.lookup(identity)
        if ident is None:
            ident = self.agent.cidr_allocator.lookup(identity)
        return ident.labels.lines() if ident is not None else []
