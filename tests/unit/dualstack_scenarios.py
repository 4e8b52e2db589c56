"""Generated dual-stack scenarios in the shape of the upstream NetworkPolicy e2e suite.

The cluster is upstream's model (test_upstream_e2e_model.py): namespaces x, y, z labelled
ns=<name> (and kubernetes.io/metadata.name), pods a, b, c in each labelled pod=<name>,
every pod declaring 80 and 81 on TCP, UDP and SCTP named serve-<port>-<protocol>; here
every pod is dual-stack, with one IPv4 and one IPv6 address (`Plan`: the unit tests use
the model's, the lab test its own pods').

A scenario adds 1-3 NetworkPolicies drawn the way upstream writes them: a podSelector
(all, pod=a, In, NotIn), policyTypes Ingress, Egress or both, 0-2 rules per type, each
with every peer or 1-2 peers of: podSelector, namespaceSelector, both, or an ipBlock of
either family (a pod's host prefix, the /24 or /64 around a pod, a cluster-wide prefix,
0.0.0.0/0 or ::/0) with 0-2 excepts inside it; and every port, or 1-2 of: a number, a
named port (serve-80-tcp, ...; one no pod declares), or the range 80-81, on TCP, UDP or
SCTP. Every scenario goes through the agent's loader (the API server's validation), so
only what a cluster accepts is generated.

`objects_for(plan, policies)` is the cluster the engine sees; `documents(plan, scenario)`
the same as manifests (for `policy matrix -f` and `lab apply`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from hypothesis import strategies as st

from agent.k8s.loader import objects_from_documents
from agent.k8s.objects import NAMESPACE_NAME_LABEL, ClusterObjects
from agent.k8s.serialize import to_document
from agent.k8s.objects import ContainerPort, Namespace, Pod, Protocol

Document = dict[str, Any]

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{n}/{p}" for n in NAMESPACES for p in POD_NAMES)
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVES = tuple(ContainerPort(number, Protocol(proto), f"serve-{number}-{proto.lower()}")
               for number in PORTS for proto in PROTOCOLS)
PORT_NAMES = ("serve-80-tcp", "serve-81-udp", "serve-80-sctp", "serve-82-tcp")
FAMILIES = (4, 6)

# pod key -> (IPv4, IPv6)
Plan = Mapping[str, tuple[str, str]]


def model_plan(first_subnet: int = 1) -> dict[str, tuple[str, str]]:
    """The model's addresses: x/a 10.244.1.10 and fd00:10:244:1::10, y/b 10.244.2.11 and
    fd00:10:244:2::11: one /24 and one /64 per namespace, from `first_subnet` on."""
    plan = {}
    for key in PODS:
        namespace, name = key.split("/")
        n = NAMESPACES.index(namespace) + first_subnet
        host = POD_NAMES.index(name) + 10
        plan[key] = (f"10.244.{n}.{host}", f"fd00:10:244:{n}::{host}")
    return plan


def prefix_pool(plan: Plan) -> tuple[str, ...]:
    """ipBlock cidrs and excepts: host prefixes of every pod, the /24 and /64 around each,
    cluster-wide ones and the whole of each family; they nest, so excepts cut through."""
    pool: set[str] = {"0.0.0.0/0", "::/0", "10.0.0.0/8", "fd00::/8"}
    for ipv4, ipv6 in plan.values():
        pool |= {f"{ipv4}/32", f"{ipv6}/128",
                 str(ipaddress.ip_network(f"{ipv4}/24", strict=False)),
                 str(ipaddress.ip_network(f"{ipv6}/64", strict=False)),
                 str(ipaddress.ip_network(f"{ipv4}/16", strict=False)),
                 str(ipaddress.ip_network(f"{ipv6}/48", strict=False))}
    return tuple(sorted(pool, key=lambda p: (":" in p, p)))


def cluster_documents(plan: Plan, nodes: Mapping[str, str] | None = None) -> list[Document]:
    """Upstream's namespaces and the nine pods, dual-stack (both addresses in
    status.podIPs), as manifests; `nodes`: pod key -> spec.nodeName."""
    docs = [to_document(Namespace(n, {"ns": n, NAMESPACE_NAME_LABEL: n})) for n in NAMESPACES]
    for key in PODS:
        namespace, name = key.split("/")
        ipv4, ipv6 = plan[key]
        docs.append(to_document(Pod(namespace, name, {"pod": name}, ip=ipv4, ipv6=ipv6,
                                    ports=SERVES, node_name=(nodes or {}).get(key))))
    return docs


@dataclass(frozen=True)
class Scenario:
    policies: tuple[Document, ...]

    def __repr__(self) -> str:   # what hypothesis prints for a falsifying example
        return f"Scenario({list(self.policies)!r})"


def objects_for(plan: Plan, scenario: Scenario) -> ClusterObjects:
    loaded = objects_from_documents(cluster_documents(plan) + list(scenario.policies),
                                    "dual-stack scenario")
    assert not loaded.errors, "the generator made an invalid object: " + "; ".join(
        str(e) for e in loaded.errors)
    return loaded.objects


# -- the generator -------------------------------------------------------------------------

def _selector(draw: st.DrawFn, key: str, values: tuple[str, ...]) -> Document:
    kind = draw(st.sampled_from(("all", "labels", "in", "notin")))
    if kind == "all":
        return {}
    if kind == "labels":
        return {"matchLabels": {key: draw(st.sampled_from(values))}}
    chosen = draw(st.lists(st.sampled_from(values), unique=True, min_size=1, max_size=2))
    return {"matchExpressions": [{"key": key, "operator": "In" if kind == "in" else "NotIn",
                                  "values": sorted(chosen)}]}


def _inside(inner: str, outer: str) -> bool:
    a, b = ipaddress.ip_network(inner), ipaddress.ip_network(outer)
    return (a.version == b.version and a.prefixlen > b.prefixlen
            and a.supernet(new_prefix=b.prefixlen) == b)


def _ip_block(draw: st.DrawFn, pool: tuple[str, ...]) -> Document:
    cidr = draw(st.sampled_from(pool))
    block: Document = {"cidr": cidr}
    inside = [p for p in pool if _inside(p, cidr)]
    if inside and draw(st.booleans()):
        block["except"] = draw(st.lists(st.sampled_from(inside), unique=True, min_size=1,
                                        max_size=2))
    return block


def _peer(draw: st.DrawFn, pool: tuple[str, ...]) -> Document:
    kind = draw(st.sampled_from(("ipBlock", "pod", "namespace", "both", "ipBlock")))
    if kind == "ipBlock":
        return {"ipBlock": _ip_block(draw, pool)}
    peer: Document = {}
    if kind in ("pod", "both"):
        peer["podSelector"] = _selector(draw, "pod", POD_NAMES)
    if kind in ("namespace", "both"):
        peer["namespaceSelector"] = _selector(draw, "ns", NAMESPACES)
    return peer


def _port(draw: st.DrawFn) -> Document:
    doc: Document = {"protocol": draw(st.sampled_from(PROTOCOLS))}
    kind = draw(st.sampled_from(("none", "number", "named", "range")))
    if kind == "number":
        doc["port"] = draw(st.sampled_from(PORTS))
    elif kind == "named":
        doc["port"] = draw(st.sampled_from(PORT_NAMES))
    elif kind == "range":
        doc["port"], doc["endPort"] = 80, 81
    return doc


def _rule(draw: st.DrawFn, side: str, pool: tuple[str, ...]) -> Document:
    rule: Document = {}
    if draw(st.integers(0, 3)):
        rule[side] = [_peer(draw, pool) for _ in range(draw(st.integers(1, 2)))]
    if draw(st.booleans()):
        rule["ports"] = [_port(draw) for _ in range(draw(st.integers(1, 2)))]
    return rule


def _policy(draw: st.DrawFn, name: str, pool: tuple[str, ...]) -> Document:
    types = draw(st.sampled_from((["Ingress"], ["Egress"], ["Ingress", "Egress"])))
    spec: Document = {"podSelector": _selector(draw, "pod", POD_NAMES), "policyTypes": types}
    for kind, side in (("Ingress", "from"), ("Egress", "to")):
        if kind in types:
            rules = [_rule(draw, side, pool) for _ in range(draw(st.integers(0, 2)))]
            if rules:
                spec[kind.lower()] = rules
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": draw(st.sampled_from(NAMESPACES))},
            "spec": spec}


def scenarios(plan: Plan) -> st.SearchStrategy[Scenario]:
    pool = prefix_pool(plan)

    @st.composite
    def draw_scenario(draw: st.DrawFn) -> Scenario:
        count = draw(st.integers(1, 3))
        return Scenario(tuple(_policy(draw, f"np{i}", pool) for i in range(count)))

    return draw_scenario()
