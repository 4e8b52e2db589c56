"""A Hubble client built from the published API's facts alone (tests/interop/published.py)
against Membrane's agent Observer and its relay: status, nodes, filtered flows, follow.
(Every name and number of Membrane's protos: tests/unit/test_hubble_protos.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.protocols import Direction
from observe.events import EventType
from observe.flow import flow_from_event
from observe.gen.flow import flow_pb2 as fpb
from observe.metadata import PolicyRef, PolicyVerdictNames, StaticMetadata
from tests.interop.published import PublishedClient
from tests.unit.test_observe_flow import META, TS, event
from tests.unit.test_relay import Agent, Relay, root  # noqa: F401 (fixture)

POLICY = PolicyVerdictNames(allowed_by=(PolicyRef("allow-frontend", "default"),),
                            isolated_by=(PolicyRef("backend-ingress", "default"),))
NAMED = StaticMetadata(META.peers, META.identities,
                       {(248, Direction.INGRESS, 84671, 6, 8080): POLICY})


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> PublishedClient:
    return PublishedClient.build(tmp_path_factory.mktemp("interop"))


def denied(i: int) -> fpb.Flow:
    return flow_from_event(event(timestamp_ns=TS + i, src_port=1000 + i), NAMED, NAMED)


def allowed(i: int) -> fpb.Flow:
    return flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 match_type=2, timestamp_ns=TS + i, src_port=1000 + i),
                           NAMED, NAMED)


def test_hubbles_client_reads_an_agent_and_the_relay(client: PublishedClient,
                                                     root: Path) -> None:  # noqa: F811
    node1, node2 = Agent(root, "node1"), Agent(root, "node2")
    relay = Relay(root, [node1.peer, node2.peer])
    try:
        for flow, agent in ((denied(0), node1), (allowed(1), node2), (denied(2), node2)):
            flow.node_name = agent.name
            agent.observer.add_flow(flow)
        target = "unix:" + relay.socket
        status = client.run(target, "status")
        assert status["num_flows"] == "3" and status["num_connected_nodes"] == 2
        nodes = client.run(target, "nodes")["nodes"]
        assert sorted((n["name"], n["state"]) for n in nodes) == [
            ("node1", "NODE_CONNECTED"), ("node2", "NODE_CONNECTED")]
        got = client.run(target, "flows", {"number": 10, "whitelist": [
            {"source_label": ["app=not-frontend"], "verdict": ["DROPPED"]}]})
        flows = [r["flow"] for r in got if "flow" in r]
        assert [(f["node_name"], f["drop_reason_desc"]) for f in flows] == [
            ("node1", "POLICY_DENIED"), ("node2", "POLICY_DENIED")]
        assert "k8s:app=not-frontend" in flows[0]["source"]["labels"]
        assert flows[0]["ingress_denied_by"][0]["name"] == "backend-ingress"
        ok = [r["flow"] for r in client.run(target, "flows", {"number": 10, "whitelist": [
            {"verdict": ["FORWARDED"], "protocol": ["tcp"]}]}) if "flow" in r]
        assert len(ok) == 1 and ok[0]["l4"]["TCP"]["destination_port"] == 8080
        assert ok[0]["ingress_allowed_by"][0] == {
            "name": "allow-frontend", "namespace": "default", "kind": "NetworkPolicy",
            "labels": ["k8s:io.cilium.k8s.policy.derived-from=NetworkPolicy",
                       "k8s:io.cilium.k8s.policy.name=allow-frontend",
                       "k8s:io.cilium.k8s.policy.namespace=default"]}
        follower = client.start_follow(target, {"whitelist": [{"verdict": ["DROPPED"]}]},
                                       count=2, seconds=20)
        time.sleep(1.0)
        for i, agent in ((10, node1), (11, node2)):
            flow = denied(i)
            flow.node_name = agent.name
            agent.observer.add_flow(flow)
        followed = [r["flow"] for r in client.finish(follower) if "flow" in r]
        assert sorted(f["node_name"] for f in followed) == ["node1", "node2"]
        namespaces = client.run(target, "namespaces")["namespaces"]
        assert namespaces == [{"namespace": "default"}]
        direct = client.run("unix:" + node1.socket, "status")
        assert direct["num_flows"] == "2" and direct["num_connected_nodes"] == 1
    finally:
        relay.stop()
        node1.stop()
        node2.stop()
