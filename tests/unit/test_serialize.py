"""to_document is the inverse of parse_document: every object survives the round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.k8s.loader import load_paths, parse_document
from agent.k8s.objects import (
    ContainerPort,
    Deployment,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Operator,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
    Requirement,
    Service,
    ServicePort,
)
from agent.k8s.serialize import to_document
from agent.k8s.workloads import expand
from agent.store import StoreObject

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"

EVERY_FEATURE_POLICY = NetworkPolicy(
    namespace="prod",
    name="everything",
    pod_selector=LabelSelector.of({"app": "web"}, (Requirement("tier", Operator.IN, ("a", "b")),)),
    policy_types=frozenset({PolicyType.INGRESS, PolicyType.EGRESS}),
    ingress=(
        PolicyRule(),
        PolicyRule(peers=(
            PolicyPeer(pod_selector=LabelSelector()),
            PolicyPeer(namespace_selector=LabelSelector.of({"type": "monitoring"})),
            PolicyPeer(pod_selector=LabelSelector.of({"app": "m"}),
                       namespace_selector=LabelSelector(
                           match_expressions=(Requirement("env", Operator.EXISTS),))),
        ), ports=(PolicyPort(Protocol.TCP, "http"), PolicyPort(Protocol.UDP, 53),
                  PolicyPort(Protocol.TCP, 8000, 9000), PolicyPort(Protocol.SCTP))),
    ),
    egress=(PolicyRule(peers=(PolicyPeer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))),)),),
    resource_version="7",
)

OBJECTS: list[tuple[str, StoreObject]] = [
    ("a policy using every feature", EVERY_FEATURE_POLICY),
    ("a default deny policy", NetworkPolicy("default", "deny", LabelSelector(),
                                            frozenset({PolicyType.INGRESS}))),
    ("an egress only policy without rules", NetworkPolicy("default", "deny-out", LabelSelector(),
                                                          frozenset({PolicyType.EGRESS}))),
    ("a namespace with labels", Namespace("monitoring", {"type": "monitoring",
                                                         "kubernetes.io/metadata.name":
                                                         "monitoring"})),
    ("a bare namespace", Namespace("default", {"kubernetes.io/metadata.name": "default"})),
    ("a pod with everything", Pod(
        "prod", "web-1", {"app": "web"}, ip="10.0.0.5", node_name="node-1",
        service_account="api", uid="abc",
        ports=(ContainerPort(80, Protocol.TCP, "http"), ContainerPort(53, Protocol.UDP)))),
    ("a dual-stack pod", Pod("prod", "web-2", {"app": "web"}, ip="10.0.0.6",
                             ipv6="fd00:10:244:1::6")),
    ("an IPv6-only pod", Pod("prod", "web-3", {"app": "web"}, ipv6="fd00:10:244:1::7")),
    ("a host network pod", Pod("kube-system", "proxy", host_network=True)),
    ("a service", Service("kube-system", "kube-dns", {"k8s-app": "kube-dns"}, (
        ServicePort(53, "dns", Protocol.UDP, "dns"), ServicePort(8080, 8080, name="metrics")))),
    ("a node", Node("node-1", "192.168.0.10", "10.244.1.0/24", {"zone": "a"})),
    ("a node without addresses", Node("node-2")),
    ("a dual-stack node", Node("node-3", "192.168.0.12", "10.244.3.0/24", ipv6="fd00::12",
                               pod_cidrs=("10.244.3.0/24", "fd00:10:244:3::/64"))),
]


@pytest.mark.parametrize("obj", [pytest.param(o, id=i) for i, o in OBJECTS])
def test_an_object_survives_the_round_trip(obj: StoreObject) -> None:
    assert parse_document(to_document(obj)) == [obj]


@pytest.mark.parametrize("obj", [pytest.param(o, id=i) for i, o in OBJECTS])
def test_documents_are_plain_json(obj: StoreObject) -> None:
    document = to_document(obj)
    assert json.loads(json.dumps(document)) == document


def test_defaults_are_written_out_as_the_api_server_returns_them() -> None:
    spec = to_document(EVERY_FEATURE_POLICY)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"][0] == {}
    assert spec["ingress"][1]["ports"][3] == {"protocol": "SCTP"}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job",
                                  "ReplicationController"])
def test_a_workload_round_trips_to_the_same_pods(kind: str) -> None:
    template = Pod("prod", "web", {"app": "web"}, ports=(ContainerPort(80, Protocol.TCP, "http"),))
    workload = Deployment("prod", "web", kind, 1 if kind == "DaemonSet" else 2, template)
    assert parse_document(to_document(workload)) == expand(workload)


def test_every_tutorial_object_round_trips() -> None:
    objects, errors = load_paths([TUTORIAL])
    assert errors == []
    tables = (objects.namespaces, objects.pods, objects.policies, objects.services)
    for obj in (o for table in tables for o in table.values()):
        assert parse_document(to_document(obj)) == [obj]
