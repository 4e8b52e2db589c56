"""The service map: who talks to whom, by workload, with counts per verdict.

Fed every flow (`add`) and the pods the agents know (`set_pods`, so idle pods show
too); `elements()` gives Cytoscape.js elements, ready for `cy.json({elements})`:

    namespace compounds   ns:<name>        (and ns:(outside) for addresses)
    workload nodes        wl:<ns>/<name>   label: the workload, then its pods' names
    address nodes         ip:<address>     label: the address and what it is
    edges                 <from>-><to>     counts per verdict, ports, drop reasons;
                                           class `dropped` when any flow was dropped

Edges count the flows of connections, not replies: a reply's direction would draw a
second, reversed edge for every connection. Pods are folded into their workload (the
controller's name the flows carry); a pod no flow has named yet is its own node until
one does. `version` grows with every change, so a caller can tell when to resend.
Not thread-safe: the owner (ui.feed) holds its lock around every call.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ui.flowview import FlowView

OUTSIDE = "(outside)"
MAX_PODS_IN_LABEL = 3


@dataclass
class _Pod:
    namespace: str
    name: str
    workload: str = ""
    labels: list[str] = field(default_factory=list)
    identity: int = 0


@dataclass
class _Edge:
    verdicts: Counter[str] = field(default_factory=Counter)
    ports: set[str] = field(default_factory=set)
    reasons: Counter[str] = field(default_factory=Counter)


class ServiceMap:
    def __init__(self) -> None:
        self.pods: dict[str, _Pod] = {}              # pod:<ns>/<name> -> pod
        self.addresses: dict[str, str] = {}          # ip:<address> -> kind
        self.edges: dict[tuple[str, str], _Edge] = {}
        self.version = 0

    def add(self, view: FlowView) -> None:
        for side in (view["source"], view["destination"]):
            self._learn(side)
        if view["is_reply"]:
            return
        edge = self.edges.setdefault((view["source"]["id"], view["destination"]["id"]),
                                     _Edge())
        edge.verdicts[view["verdict"]] += 1
        if view["port"] is not None:
            edge.ports.add(f"{view['protocol']}/{view['port']}")
        elif view["protocol"]:
            edge.ports.add(view["protocol"])
        if view["drop_reason"]:
            edge.reasons[view["drop_reason"]] += 1
        self.version += 1

    def set_pods(self, pods: list[tuple[str, str, list[str], int]]) -> None:
        """The pods the agents know: (namespace, name, identity labels, identity)."""
        changed = False
        for namespace, name, labels, identity in pods:
            key = f"pod:{namespace}/{name}"
            if key not in self.pods:
                self.pods[key] = _Pod(namespace, name, labels=labels, identity=identity)
                changed = True
        self.version += changed

    def _learn(self, side: dict[str, Any]) -> None:
        key = side["id"]
        if side["kind"] != "pod":
            if key not in self.addresses:
                self.addresses[key] = side["kind"]
                self.version += 1
            return
        pod = self.pods.get(key)
        if pod is None or (side["workload"] and not pod.workload):
            self.pods[key] = _Pod(side["namespace"], side["pod"], side["workload"],
                                  side["labels"], side["identity"])
            self.version += 1

    def node_of(self, side_id: str) -> str:
        pod = self.pods.get(side_id)
        if pod is None:
            return side_id
        return f"wl:{pod.namespace}/{pod.workload or pod.name}"

    def elements(self) -> dict[str, list[dict[str, Any]]]:
        nodes: dict[str, dict[str, Any]] = {}
        members: dict[str, list[str]] = {}
        for key, pod in sorted(self.pods.items()):
            node = self.node_of(key)
            members.setdefault(node, []).append(pod.name)
            nodes.setdefault(f"ns:{pod.namespace}", {"id": f"ns:{pod.namespace}",
                                                     "label": pod.namespace, "kind": "namespace"})
            nodes[node] = {"id": node, "parent": f"ns:{pod.namespace}", "kind": "workload",
                           "namespace": pod.namespace, "name": pod.workload or pod.name,
                           "labels": pod.labels, "identity": pod.identity}
        for node, names in members.items():
            shown = [n for n in names[:MAX_PODS_IN_LABEL] if n != nodes[node]["name"]]
            more = len(names) - MAX_PODS_IN_LABEL
            nodes[node]["pods"] = names
            nodes[node]["label"] = "\n".join([nodes[node]["name"], *shown]
                                             + ([f"+{more} more"] if more > 0 else []))
        if self.addresses:
            nodes[f"ns:{OUTSIDE}"] = {"id": f"ns:{OUTSIDE}", "label": "outside the pods",
                                      "kind": "namespace"}
        for key, kind in sorted(self.addresses.items()):
            nodes[key] = {"id": key, "parent": f"ns:{OUTSIDE}", "kind": kind,
                          "label": f"{key[3:]}\n{kind}"}
        edges: dict[tuple[str, str], dict[str, Any]] = {}
        for (src, dst), stats in sorted(self.edges.items()):
            a, b = self.node_of(src), self.node_of(dst)
            edge = edges.setdefault((a, b), {"id": f"{a}->{b}", "source": a, "target": b,
                                             "verdicts": Counter(), "ports": set(),
                                             "reasons": Counter()})
            edge["verdicts"].update(stats.verdicts)
            edge["ports"] |= stats.ports
            edge["reasons"].update(stats.reasons)
        out_edges = []
        for edge in edges.values():
            verdicts, ports = edge["verdicts"], sorted(edge["ports"])
            counts = " ".join(f"{v.lower()} {n}" for v, n in sorted(verdicts.items()))
            out_edges.append({**edge, "verdicts": dict(verdicts), "ports": ports,
                              "reasons": dict(edge["reasons"]),
                              "dropped": verdicts.get("DROPPED", 0) > 0,
                              "label": f"{','.join(ports[:3])} {counts}".strip()})
        return {
            "nodes": [{"data": n} for n in nodes.values()],
            "edges": [{"data": e, "classes": "dropped" if e["dropped"] else ""}
                      for e in out_edges],
        }
