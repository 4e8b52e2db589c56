"""Checking policies against the connections that were seen, with the policy engine.

The cluster the flows show is rebuilt as objects (every pod a connection names, with
the labels and address its flows carried, and its namespace with its labels), the
policies are added, and the engine decides each connection as the datapath would: the
source pod's egress must allow the destination (its identity, or the CIDR identity of
its address), and the destination pod's ingress the source. A side that is not a pod
is not enforced by anyone here, so only the pod side is asked. `reachability` answers
the same question for every ordered pair of pods on the given ports, for `--diff`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from core.errors import MembraneError
from core.protocols import Direction, protocol_number
from agent.k8s.loader import Document, objects_from_documents
from agent.k8s.objects import ClusterObjects, Namespace, NetworkPolicy, Pod
from agent.policy.engine import PolicyEngine
from agent.policy.matrix import offline_engine, peer_identities
from agent.policy.suggest.observed import Connection, Peer, pods_of


@dataclass
class Verification:
    kept: list[Connection] = field(default_factory=list)
    not_kept: list[tuple[Connection, str]] = field(default_factory=list)   # and why

    @property
    def ok(self) -> bool:
        return not self.not_kept


def cluster_of(conns: Iterable[Connection]) -> ClusterObjects:
    """Pods and namespaces as the flows show them (no policies)."""
    objects = ClusterObjects()
    for key, peer in sorted(pods_of(conns).items()):
        objects.pods[key] = Pod(namespace=peer.namespace, name=peer.pod,
                                labels=dict(peer.labels), ip=peer.ip,
                                service_account=peer.service_account)
        known = objects.namespaces.get(peer.namespace)
        labels = dict(known.labels) if known else {}
        labels.update(peer.namespace_labels)
        objects.namespaces[peer.namespace] = Namespace(peer.namespace, labels)
    return objects


def policies_of(documents: Sequence[Document]) -> dict[str, NetworkPolicy]:
    """The documents as the API server would take them (validated), by ns/name."""
    objects, errors = objects_from_documents(list(documents), "suggestion", warnings=[])
    if errors:
        raise MembraneError("the suggested policies do not validate: "
                            + "; ".join(str(e) for e in errors))
    return dict(objects.policies)


def engine_for(conns: Iterable[Connection], policies: dict[str, NetworkPolicy]
               ) -> PolicyEngine:
    objects = cluster_of(conns)
    objects.policies.update(policies)
    return offline_engine(objects)


def _identities(engine: PolicyEngine, peer: Peer) -> set[int]:
    if peer.is_pod and peer.key in engine.pods():
        return peer_identities(engine, peer.key)
    return {i for i in engine.cluster_maps().identities_of(peer.ip) if i}


def decide(engine: PolicyEngine, conn: Connection) -> tuple[bool, str]:
    """(allowed, which side denies it) for one connection."""
    number = protocol_number(conn.protocol)
    if conn.src.is_pod and conn.src.key != conn.dst.key:
        allowed, _ = engine.endpoint_policy(conn.src.key).evaluate(
            Direction.EGRESS, _identities(engine, conn.dst), number, conn.port)
        if not allowed:
            return False, f"{conn.src.key}'s egress does not allow it"
    if conn.dst.is_pod and conn.src.key != conn.dst.key:
        allowed, _ = engine.endpoint_policy(conn.dst.key).evaluate(
            Direction.INGRESS, _identities(engine, conn.src), number, conn.port)
        if not allowed:
            return False, f"{conn.dst.key}'s ingress does not allow it"
    return True, ""


def verify(conns: Sequence[Connection], policies: dict[str, NetworkPolicy]) -> Verification:
    engine = engine_for(conns, policies)
    out = Verification()
    for conn in conns:
        allowed, why = decide(engine, conn)
        if allowed:
            out.kept.append(conn)
        else:
            out.not_kept.append((conn, why))
    return out


Pair = tuple[str, str, str, int]   # (from ns/pod, to ns/pod, protocol, port)


def reachability(engine: PolicyEngine, pods: Sequence[Peer],
                 ports: Iterable[tuple[str, int]]) -> set[Pair]:
    """Every ordered pair of distinct pods (and port) the engine allows."""
    allowed: set[Pair] = set()
    for protocol, port in sorted(set(ports)):
        for src in pods:
            for dst in pods:
                if src.key == dst.key:
                    continue
                conn = Connection(src, dst, protocol, port)
                if decide(engine, conn)[0]:
                    allowed.add(conn.key)
    return allowed
