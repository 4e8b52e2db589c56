"""Reachability between every ordered pair of pods, decided as the datapath decides it.

The verdict for src -> dst on (protocol, port) is the datapath's: src's egress policy
must allow dst (its pod identity, and the CIDR identity its IP falls in) and dst's
ingress policy must allow src the same way, each direction through the Admin tier,
NetworkPolicy and the Baseline tier. Both go through `EndpointPolicy.decide` and
`ClusterMaps.identities_of`, so `policy matrix` and the wire cannot disagree. The matrix
shows the policies' verdict: under audit mode a denied pair is still shown denied (its
packets pass, reported as AUDIT).

Per IP family (`family`, 4 or 6): a connection uses the pods' addresses of one family,
and ipBlocks of that family only hold them. A pod without an address of the family is
still in the matrix (as one without any address is), matched by its identity alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

from core.errors import MembraneError
from core.protocols import Direction
from agent.k8s.objects import ClusterObjects, Protocol
from agent.policy.engine import PolicyEngine
from identity.cidr import CidrAllocator
from identity.local import LocalAllocator


# `--family` values -> IP versions.
FAMILIES = {"ipv4": 4, "ipv6": 6}


def family_version(name: str) -> int:
    """4 for "ipv4", 6 for "ipv6"; MembraneError naming the choices otherwise."""
    try:
        return FAMILIES[name.lower()]
    except KeyError:
        raise MembraneError(f"IP family {name!r}: use {' or '.join(FAMILIES)}") from None


@dataclass(frozen=True, order=True)
class Verdict:
    # Field order is the sort order of the output: from, to, protocol, port.
    src: str
    dst: str
    protocol: str
    port: int
    allowed: bool

    def as_dict(self) -> dict[str, object]:
        return {"from": self.src, "to": self.dst, "port": self.port,
                "protocol": self.protocol, "allowed": self.allowed}


def offline_engine(objects: ClusterObjects, cluster: str = "default") -> PolicyEngine:
    """An engine over in-memory allocators: numbers that exist only for this answer."""
    engine = PolicyEngine(LocalAllocator(None), CidrAllocator(None), cluster)
    engine.update(objects)
    return engine


def endpoints(engine: PolicyEngine) -> list[str]:
    """Pods that are endpoints (hostNetwork pods are the node, not endpoints), sorted."""
    return sorted(k for k in engine.pods() if engine.identity_of(k) is not None)


def peer_identities(engine: PolicyEngine, pod_key: str, local_node: str | None = None,
                    family: int = 4) -> set[int]:
    """The identities a packet of that IP family from/to this pod carries: what the
    datapath looks up for the pod's address of the family."""
    pod = engine.pods()[pod_key]
    found: set[int] = set()
    identity = engine.identity_of(pod_key)
    if identity is not None:
        found.add(identity.id)
    address = pod.address(family)
    if address:
        found.update(i for i in engine.cluster_maps(local_node).identities_of(address) if i)
    return found


def direction_allows(engine: PolicyEngine, endpoint: str, direction: Direction,
                     peers: Iterable[int], protocol: Protocol, port: int) -> bool:
    return engine.endpoint_policy(endpoint).decide(direction, peers, protocol.number,
                                                   port).allowed


def allowed(engine: PolicyEngine, src: str, dst: str, protocol: Protocol, port: int,
            family: int = 4) -> bool:
    if src == dst:
        return True  # a pod's traffic to itself stays on its loopback
    return (direction_allows(engine, src, Direction.EGRESS,
                             peer_identities(engine, dst, family=family), protocol, port)
            and direction_allows(engine, dst, Direction.INGRESS,
                                 peer_identities(engine, src, family=family), protocol, port))


def reachability(objects: ClusterObjects, ports: list[int], protocols: list[str],
                 engine: PolicyEngine | None = None, family: int = 4) -> list[Verdict]:
    """A verdict for every ordered pair of distinct endpoints, port and protocol, over
    the pods' addresses of one IP family."""
    engine = engine or offline_engine(objects)
    pods = endpoints(engine)
    peers = {p: peer_identities(engine, p, family=family) for p in pods}
    out = []
    for proto_name in sorted(set(protocols)):
        proto = Protocol(proto_name.upper())
        for port in sorted(set(ports)):
            for src in pods:
                egress = engine.endpoint_policy(src)
                for dst in pods:
                    if src == dst:
                        continue
                    ok = (egress.decide(Direction.EGRESS, peers[dst], proto.number,
                                        port).allowed
                          and engine.endpoint_policy(dst).decide(
                              Direction.INGRESS, peers[src], proto.number, port).allowed)
                    out.append(Verdict(src, dst, proto.value, port, ok))
    return sorted(out)


def to_json(verdicts: list[Verdict]) -> str:
    return json.dumps({"verdicts": [v.as_dict() for v in verdicts]}, indent=2)


def to_table(verdicts: list[Verdict]) -> str:
    """One grid per (protocol, port): rows are sources, numbered columns destinations."""
    if not verdicts:
        return "no pairs of pods to show (fewer than two endpoints)\n"
    pods = sorted({v.src for v in verdicts} | {v.dst for v in verdicts})
    number = {p: i + 1 for i, p in enumerate(pods)}
    width = max(len(p) for p in pods) + len(str(len(pods))) + 2
    cell = max(3, len(str(len(pods))) + 1)
    grids: dict[tuple[str, int], dict[tuple[str, str], bool]] = {}
    for v in verdicts:
        grids.setdefault((v.protocol, v.port), {})[(v.src, v.dst)] = v.allowed
    lines = [". allowed   X denied   - same pod (always allowed)", ""]
    for (proto, port), grid in sorted(grids.items()):
        lines.append(f"{proto}/{port}  (rows: from, columns: to)")
        lines.append("from \\ to".ljust(width) + "".join(str(n).rjust(cell) for n in
                                                         number.values()))
        for src in pods:
            marks = ["-" if src == dst else ("." if grid.get((src, dst)) else "X")
                     for dst in pods]
            label = f"{number[src]} {src}"
            lines.append(label.ljust(width) + "".join(m.rjust(cell) for m in marks))
        lines.append("")
    return "\n".join(lines)
