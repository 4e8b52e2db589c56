"""The Network Policy API conformance suite, replayed against the policy engine.

A port of kubernetes-sigs/network-policy-api conformance/tests (every ConformanceTest of
main, for ClusterNetworkPolicy v1alpha2, and of v0.1.7, for AdminNetworkPolicy and
BaselineAdminNetworkPolicy v1alpha1; their cases and manifests are data in
npa_conformance_data.py), as tests/unit/test_upstream_e2e_model.py ports the Kubernetes
NetworkPolicy e2e suite:

  the cluster   conformance/base/manifests.yaml: namespaces gryffindor, slytherin,
                hufflepuff, ravenclaw (label conformance-house=<house>), two pods each
                (harry-potter-0/1, draco-malfoy-0/1, cedric-diggory-0/1, luna-lovegood-0/1,
                label conformance-house=<house>, container ports web 80/TCP and dns
                53/UDP), and forbidden-forrest with two host-network pods (centaur-0/1,
                one per node, ports web-36363, web-36364, dns-34345, dns-34346, SCTP
                9003 and 9005); nodes labelled kubernetes.io/os=linux
  a case        its manifest applied, then each subtest's steps in order against one
                engine (`PolicyEngine.update`, the agent's path): mutations change the
                documents (as upstream patches the objects) and go through the loader;
                a poke asks `matrix.allowed` (what `policy matrix` and the datapath
                decide) and compares with upstream's expectation

Every subtest also checks that the incrementally updated engine holds the map state of
an engine built from scratch. A failing poke's message carries `policy trace`'s
explanation of both directions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import yaml

from agent.k8s.loader import objects_from_documents
from agent.k8s.objects import ClusterObjects, Protocol
from agent.policy.engine import PolicyEngine
from agent.policy.mapstate import EndpointPolicy
from agent.policy.matrix import allowed
from agent.policy.trace import trace_engine
from identity.reserved import MIN_CIDR_IDENTITY
from npa_conformance_data import CASES, MANIFESTS, Case, Step
from policy_helpers import memory_engine

NS = "network-policy-conformance-"
HOUSES = {"gryffindor": "harry-potter", "slytherin": "draco-malfoy",
          "hufflepuff": "cedric-diggory", "ravenclaw": "luna-lovegood"}
FOREST = "forbidden-forrest"
NODES = {"node1": "172.18.0.11", "node2": "172.18.0.12"}
HOST_PORTS = ((36363, "TCP", "web-36363"), (36364, "TCP", "web-36364"),
              (34345, "UDP", "dns-34345"), (34346, "UDP", "dns-34346"),
              (9003, "SCTP", ""), (9005, "SCTP", ""))

Document = dict[str, Any]


def pod_ip(house: str, index: int) -> str:
    return f"10.244.{list(HOUSES).index(house) + 1}.{10 + index}"


def base_documents() -> list[Document]:
    """conformance/base/manifests.yaml, as the pods its StatefulSets make."""
    docs: list[Document] = []
    for name, ip in NODES.items():
        docs.append({"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": name, "labels": {"kubernetes.io/os": "linux",
                                                           "kubernetes.io/hostname": name}},
                     "status": {"addresses": [{"type": "InternalIP", "address": ip}]}})
    for house in (*HOUSES, FOREST):
        docs.append({"apiVersion": "v1", "kind": "Namespace",
                     "metadata": {"name": NS + house,
                                  "labels": {"conformance-house": house}}})
    for house, character in HOUSES.items():
        for i in (0, 1):
            docs.append(pod_doc(house, f"{character}-{i}", pod_ip(house, i), f"node{i + 1}",
                                [("web", 80, "TCP"), ("dns", 53, "UDP")]))
    for i, (node, ip) in enumerate(NODES.items()):
        doc = pod_doc(FOREST, f"centaur-{i}", ip, node,
                      [(name, number, proto) for number, proto, name in HOST_PORTS])
        doc["spec"]["hostNetwork"] = True
        docs.append(doc)
    return docs


def pod_doc(house: str, name: str, ip: str, node: str,
            ports: list[tuple[str, int, str]]) -> Document:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS + house,
                         "labels": {"conformance-house": house}},
            "spec": {"nodeName": node, "containers": [{
                "name": "agnhost", "image": "agnhost",
                "ports": [{"containerPort": n, "protocol": p, **({"name": name} if name else {})}
                          for name, n, p in ports]}]},
            "status": {"podIP": ip}}


@dataclass
class Cluster:
    """The documents of one case, changed step by step as upstream patches objects."""

    docs: list[Document]
    engine: PolicyEngine = field(default_factory=lambda: memory_engine()[0])

    def objects(self) -> ClusterObjects:
        loaded = objects_from_documents(copy.deepcopy(self.docs), "conformance")
        assert not loaded.errors, [str(e) for e in loaded.errors]
        return loaded.objects

    def apply(self) -> None:
        self.engine.update(self.objects())

    def find(self, kind: str, name: str, namespace: str | None = None) -> Document:
        for doc in self.docs:
            meta = doc["metadata"]
            if doc["kind"] == kind and meta["name"] == name and (
                    namespace is None or meta.get("namespace") == namespace):
                return doc
        raise KeyError(f"{kind} {namespace}/{name}")

    def policy(self, key: str) -> Document:
        kind, name = key.split("/")
        return self.find(kind, name)


def mutate(cluster: Cluster, step: Step) -> None:
    verb = step[0]
    if verb == "swap":
        _, key, direction, i, j = step
        rules = cluster.policy(key)["spec"][direction]
        rules[i], rules[j] = rules[j], rules[i]
    elif verb == "action":
        _, key, direction, i, action = step
        cluster.policy(key)["spec"][direction][i]["action"] = action
    elif verb == "priority":
        cluster.policy(step[1])["spec"]["priority"] = step[2]
    elif verb == "named_port":
        _, key, direction, i, name = step
        doc = cluster.policy(key)
        rule = doc["spec"][direction][i]
        if doc["apiVersion"].endswith("v1alpha2"):
            rule["protocols"] = [{"destinationNamedPort": name}]
        else:
            rule["ports"] = [{"namedPort": name}]
    elif verb == "prepend_egress_networks":
        _, key, name, pods = step
        doc = cluster.policy(key)
        addresses = [cluster.find("Pod", p.split("/")[1], NS + p.split("/")[0])["status"]
                     ["podIP"] + "/32" for p in pods]
        accept = "Accept" if doc["apiVersion"].endswith("v1alpha2") else "Allow"
        doc["spec"]["egress"].insert(0, {"name": name, "action": accept,
                                         "to": [{"networks": addresses}]})
    elif verb == "namespace_labels":
        cluster.find("Namespace", NS + step[1])["metadata"]["labels"] = dict(step[2])
    elif verb == "delete":
        namespace, name = step[2].split("/")
        cluster.docs.remove(cluster.find(step[1], name, NS + namespace))
    else:
        raise AssertionError(f"unknown step {step}")


def poke(cluster: Cluster, step: Step) -> str | None:
    """None when the engine agrees with upstream, else why not."""
    _, client, protocol, server, port, connects = step
    src, dst = NS + client, NS + server
    got = allowed(cluster.engine, src, dst, Protocol(protocol), port)
    if got == connects:
        return None
    explanation = trace_engine(cluster.engine, src, dst, port, protocol).explanation
    return (f"{client} -> {server} {protocol}/{port}: upstream expects "
            f"{'connected' if connects else 'blocked'}, Membrane "
            f"{'allows' if got else 'denies'}\n{explanation}")


def from_scratch_agrees(cluster: Cluster) -> None:
    fresh = memory_engine()[0]
    fresh.update(cluster.objects())
    for key in fresh.pods():
        if fresh.identity_of(key) is not None:
            mine = by_prefix(cluster.engine, cluster.engine.endpoint_policy(key))
            theirs = by_prefix(fresh, fresh.endpoint_policy(key))
            # Label identities number in pod order in both engines; CIDR identities in
            # the order their prefixes appeared (networks of both families, the
            # incremental engine's over several updates), so they compare by prefix.
            assert mine == theirs, f"{key}: incremental {mine} != from scratch {theirs}"


def by_prefix(engine: PolicyEngine, policy: EndpointPolicy) -> tuple[object, ...]:
    """The policy's entries and tier entries with each CIDR identity as its prefix."""
    prefix = {ident: cidr for cidr, ident in engine.cluster_maps().cidrs.items()}

    def peer(ident: int) -> object:
        return prefix[ident] if ident >= MIN_CIDR_IDENTITY else ident

    return (replace(policy, entries=frozenset(), tier_entries=frozenset()),
            frozenset((peer(e.peer), replace(e, peer=0)) for e in policy.entries),
            frozenset((peer(e.peer), replace(e, peer=0)) for e in policy.tier_entries))


def manifest_documents(case: Case) -> list[Document]:
    text = MANIFESTS[case.manifest].replace("{NS}", NS)
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.version} {c.name}" for c in CASES])
def test_the_conformance_case_gives_upstreams_verdicts(case: Case) -> None:
    cluster = Cluster(base_documents() + manifest_documents(case))
    cluster.apply()
    failures: list[str] = []
    for title, steps in case.subtests:
        for step in steps:
            if step[0] == "poke":
                problem = poke(cluster, step)
                if problem:
                    failures.append(f"[{title}] {problem}")
            else:
                mutate(cluster, step)
                cluster.apply()
        from_scratch_agrees(cluster)
    assert not failures, f"{len(failures)} pokes differ:\n" + "\n".join(failures[:5])


def test_every_upstream_conformance_test_is_ported() -> None:
    """48 ConformanceTests: 24 of main (ClusterNetworkPolicy), 24 of v0.1.7."""
    assert len(CASES) == 48
    assert {c.version for c in CASES} == {"v1alpha1", "v1alpha2"}
    assert sum(1 for c in CASES for _, steps in c.subtests for s in steps
               if s[0] == "poke") == 590
