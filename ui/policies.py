"""The policies in force and the pods they apply to, for the page's policy matrix.

Read from the agents' API: `GetPolicies` of the first agent that answers (every agent
follows the same store, so any one has them all: what `membrane policy get` prints) and
`ListEndpoints` of every agent (each knows its own node's pods). The matrix is then
`policy matrix`'s (agent.policy.matrix) over those pods and policies, on the ports the
flows show: the verdicts the policies give, which the map's drops can be read against.

An agent that does not answer is named in `errors`; the rest still count. A relay
serves no agent API: with only a relay the page shows the map and flows, and the
matrix says what to pass (`--agent`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent.api.client import AgentClient
from agent.api.gen import agent_pb2 as pb
from agent.k8s.loader import objects_from_sourced_documents, yaml_documents
from agent.k8s.objects import ClusterObjects, Namespace, Pod
from agent.policy.matrix import offline_engine, reachability
from agent.policy.suggest.observed import read_identity_labels
from core.errors import MembraneError
from identity.security import NAMESPACE_NAME_LABEL

DEFAULT_PORTS = (("TCP", 80),)
AGENT_TIMEOUT = 5.0


@dataclass
class ClusterView:
    """What the agents said, and who did not answer."""

    endpoints: list[pb.Endpoint] = field(default_factory=list)
    policies: list[pb.PolicyInfo] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def pods(self) -> list[tuple[str, str, list[str], int]]:
        """(namespace, name, identity labels, identity) of every managed pod."""
        return [(e.namespace, e.pod, list(e.labels), e.identity) for e in self.endpoints
                if e.namespace and e.pod and e.id]

    def objects(self) -> ClusterObjects:
        objects = ClusterObjects()
        for ep in self.endpoints:
            if not (ep.namespace and ep.pod and ep.id):
                continue
            read = read_identity_labels(ep.labels)
            objects.pods[f"{ep.namespace}/{ep.pod}"] = Pod(
                namespace=ep.namespace, name=ep.pod, labels=read.pod, ip=ep.ipv4 or None,
                service_account=read.service_account)
            labels = {NAMESPACE_NAME_LABEL: ep.namespace, **read.namespace}
            objects.namespaces[ep.namespace] = Namespace(ep.namespace, labels)
        docs = []
        for info in self.policies:
            found, error = yaml_documents(info.yaml, f"{info.namespace}/{info.name}")
            if error is not None:
                self.errors.append(str(error))
            docs += found
        loaded, errors = objects_from_sourced_documents(docs, [])
        self.errors += [str(e) for e in errors]
        objects.policies.update(loaded.policies)
        for ns in {p.namespace for p in loaded.policies.values()} - set(objects.namespaces):
            objects.namespaces[ns] = Namespace(ns, {NAMESPACE_NAME_LABEL: ns})
        return objects


class AgentsView:
    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)

    def read(self) -> ClusterView:
        """Blocking: call it off the event loop."""
        view = ClusterView()
        if not self.addresses:
            view.errors.append("no agent to ask for policies: run `membrane ui` with --lab, "
                               "or --agent ADDRESS (a relay serves flows, not policies)")
            return view
        have_policies = False
        for address in self.addresses:
            try:
                with AgentClient(address, timeout=AGENT_TIMEOUT) as client:
                    view.endpoints += client.list_endpoints()
                    if not have_policies:
                        view.policies = list(client.get_policies().policies)
                        have_policies = True
            except MembraneError as err:
                view.errors.append(f"{address}: {err}")
        return view


def matrix(view: ClusterView, ports: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """{"pods": [...], "ports": ["TCP/80", ...], "allowed": {"TCP/80": [[bool]]},
    "policies": [...], "errors": [...]}: rows are sources, columns destinations."""
    objects = view.objects()
    ports = sorted(set(ports)) or list(DEFAULT_PORTS)
    engine = offline_engine(objects)
    pods = sorted(k for k in engine.pods() if engine.identity_of(k) is not None)
    index = {p: i for i, p in enumerate(pods)}
    allowed: dict[str, list[list[bool]]] = {}
    for protocol, port in ports:
        grid = [[True] * len(pods) for _ in pods]
        for verdict in reachability(objects, [port], [protocol], engine):
            grid[index[verdict.src]][index[verdict.dst]] = verdict.allowed
        allowed[f"{protocol}/{port}"] = grid
    return {"pods": pods, "ports": list(allowed), "allowed": allowed,
            "policies": sorted(f"{p.namespace}/{p.name}" for p in view.policies),
            "errors": view.errors}
