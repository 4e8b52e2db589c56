"""The agent over FakeDatapath when one part of the cluster cannot be enforced as asked:
what `endpoint get` and `status` say, and that nothing else waits for it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent import compose
from agent.api.client import AgentClient
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.endpoint_manager import INIT_POLICY
from agent.k8s.objects import (ClusterObjects, IPBlock, LabelSelector, Namespace, NetworkPolicy,
                               Pod, PolicyPeer, PolicyPort, PolicyRule, PolicyType, Protocol)
from agent.policy.mapstate import Direction
from core.errors import AllocationError, MembraneError
from identity.allocator import Identity
from identity.cidr import CidrAllocator
from identity.labels import LabelSet
from identity.local import LocalAllocator
from tests.unit.test_agent import DENY_BACKEND, StaticSource, cluster, push, running  # noqa: F401

HASH = "pod-template-hash"


def test_endpoint_get_shows_the_labels_left_out_of_the_identity_and_why(running) -> None:
    agent, source, _ = running
    objs = cluster()
    backend = objs.pods["default/backend"]
    objs.pods["default/backend"] = replace(backend, labels={**backend.labels, HASH: "7c9f"})
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    ep = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    with AgentClient(agent.config.socket) as client:
        got = client.get_endpoint(endpoint_id=ep.id)
    assert f"k8s:{HASH}=7c9f" not in got.labels
    [left_out] = got.labels_left_out
    assert left_out.startswith(f"k8s:{HASH}=7c9f: one value per Deployment revision")
    # A policy selecting on the key puts it back: the spec's verdict needs it.
    objs.policies["default/this-rollout"] = NetworkPolicy(
        "default", "this-rollout", LabelSelector.of({HASH: "7c9f"}),
        frozenset({PolicyType.INGRESS}))
    push(source, objs, 3)
    assert agent.wait_for_revision(3, 5)
    with AgentClient(agent.config.socket) as client:
        got = client.get_endpoint(endpoint_id=ep.id)
    assert f"k8s:{HASH}=7c9f" in got.labels and not got.labels_left_out
    assert got.ingress_enforced


# -- one namespace never stops enforcement everywhere -----------------------------------------

def hosts(n: int, first: int = 0) -> tuple[PolicyPeer, ...]:
    return tuple(PolicyPeer(ip_block=IPBlock(f"198.18.{(first + i) // 250}.{(first + i) % 250 + 1}/32"))
                 for i in range(n))


def with_big_namespace(objs: ClusterObjects) -> ClusterObjects:
    objs.namespaces["big"] = Namespace("big", {"kubernetes.io/metadata.name": "big"})
    objs.pods["big/web"] = Pod("big", "web", {"app": "web"}, ip="10.244.1.20", node_name="n1")
    return objs


def agent_with(tmp_path: Path, source: StaticSource, datapath: FakeDatapath,
               **config: Any) -> Agent:
    return Agent(AgentConfig(node="n1", source="static", state_dir=tmp_path / "state",
                             socket=str(tmp_path / "agent.sock"), bpffs=str(tmp_path / "bpf"),
                             datapath="fake", **config), datapath=datapath, source=source)


def test_4100_ipblocks_selecting_nothing_neither_stop_a_deny_elsewhere_nor_new_pods(
        running) -> None:
    agent, source, datapath = running
    front = agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
    back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    objs = with_big_namespace(cluster())
    objs.policies["big/huge"] = NetworkPolicy(
        "big", "huge", LabelSelector.of({"app": "nobody"}), frozenset({PolicyType.EGRESS}),
        egress=(PolicyRule(peers=hosts(4100)),))
    objs.policies["default/deny"] = DENY_BACKEND
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5), "the whole regeneration stopped"
    allowed, _ = datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 80)
    assert not allowed and front.state.value == "ready"
    assert len(datapath.cluster.cidrs) <= datapath.max_cidr
    web = agent.register_endpoint("big", "web", "lo", "10.244.1.20", timeout=5)
    assert web.state.value == "ready"          # selected by nothing: nothing to fail
    assert any("big/huge not enforced" in p and "4100 ipBlock prefixes" in p
               for p in agent.status().problems)


def test_ipblocks_times_port_ranges_fail_only_their_endpoint_closed_in_bounded_time(
        running) -> None:
    agent, source, datapath = running
    back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    objs = with_big_namespace(cluster())
    ports = tuple(PolicyPort(Protocol.TCP, 1000 + 300 * i, 1100 + 300 * i) for i in range(170))
    objs.policies["big/product"] = NetworkPolicy(
        "big", "product", LabelSelector.of({"app": "web"}), frozenset({PolicyType.EGRESS}),
        egress=(PolicyRule(peers=hosts(170), ports=ports),))
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    with pytest.raises(MembraneError, match="needs 162860 policy map entries"):
        agent.register_endpoint("big", "web", "lo", "10.244.1.20", timeout=5)
    web = agent.endpoints.by_pod("big/web")
    assert web is not None and web.state.value == "not-ready"
    assert datapath.policies[web.id].egress_enforced and not datapath.policies[web.id].entries
    assert agent.parts.regenerator.last_regeneration_ms < 1000, "seconds under the lock"
    # Elsewhere, a new deny is enforced promptly, and the big endpoint stays settled.
    objs.policies["default/deny"] = DENY_BACKEND
    push(source, objs, 3)
    assert agent.wait_for_revision(3, 5)
    allowed, _ = datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 80)
    assert not allowed
    assert any(f"endpoint {web.id} (big/web) not-ready" in p for p in agent.status().problems)
    assert agent.parts.regenerator.policy_written()


def thirty_ports(namespace: str, name: str, app: str, n: int) -> NetworkPolicy:
    return NetworkPolicy(namespace, name, LabelSelector.of({"app": app}),
                         frozenset({PolicyType.EGRESS}),
                         egress=(PolicyRule(ports=tuple(PolicyPort(Protocol.TCP, 2000 + i)
                                                        for i in range(n))),))


def test_one_namespace_cannot_take_another_namespaces_room_in_the_policy_map(
        tmp_path: Path) -> None:
    objs = with_big_namespace(cluster())
    objs.pods["big/api"] = Pod("big", "api", {"app": "api"}, ip="10.244.1.21", node_name="n1")
    objs.policies["big/web"] = thirty_ports("big", "web", "web", 40)
    objs.policies["big/api"] = thirty_ports("big", "api", "api", 40)
    objs.policies["default/front"] = thirty_ports("default", "front", "frontend", 30)
    source, datapath = StaticSource(objs), FakeDatapath(node="n1", max_policy=100)
    agent = agent_with(tmp_path, source, datapath, max_policy_entries=100,
                       max_policy_entries_per_endpoint=100, namespace_map_share=0.5)
    agent.start()
    try:
        agent.register_endpoint("big", "web", "lo", "10.244.1.20", timeout=5)
        with pytest.raises(MembraneError, match="namespace big's endpoints"):
            agent.register_endpoint("big", "api", "lo", "10.244.1.21", timeout=5)
        # The other tenant's endpoint, registered last, still has its room.
        front = agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
        assert front.state.value == "ready" and front.egress_enforced
        allowed, _ = datapath.decide(front.id, Direction.EGRESS, "10.244.1.3", 6, 2000)
        assert allowed
    finally:
        agent.stop()


# -- an identity that cannot be allocated ---------------------------------------------------

class RefusingAllocator(LocalAllocator):
    """In memory; refuses new label sets with app=<refused> (a store that is away)."""

    refused: set[str] = set()

    def _allocate(self, labels: LabelSet) -> Identity:
        if any(label.key == "app" and label.value in self.refused for label in labels):
            raise AllocationError("etcd is unreachable: cannot allocate a new identity")
        return super()._allocate(labels)


def test_a_pod_whose_identity_cannot_be_allocated_fails_closed_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labels = RefusingAllocator(None)
    labels.refused = {"new"}
    monkeypatch.setattr(compose, "make_allocators",
                        lambda config: (labels, CidrAllocator(None)))
    source, datapath = StaticSource(cluster()), FakeDatapath(node="n1")
    agent = agent_with(tmp_path, source, datapath)
    agent.start()
    try:
        back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
        objs = cluster()
        objs.pods["default/new"] = Pod("default", "new", {"app": "new"}, ip="10.244.1.9",
                                       node_name="n1")
        objs.policies["default/deny"] = DENY_BACKEND
        push(source, objs, 2)
        assert agent.wait_for_revision(2, 5), "one new label set stopped every update"
        allowed, _ = datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 80)
        assert not allowed
        with pytest.raises(MembraneError, match="identity .*etcd is unreachable"):
            agent.register_endpoint("default", "new", "lo", "10.244.1.9", timeout=5)
        new = agent.endpoints.by_pod("default/new")
        assert new is not None and datapath.policies[new.id] == INIT_POLICY
        assert any("pod default/new has no identity" in p for p in agent.status().problems)
        # The store is back: the pod gets its identity without any other change.
        labels.refused = set()
        assert agent.endpoints.wait(lambda: new.state.value == "ready", 10)
        assert new.identity >= 256 and not agent.parts.engine.identity_problems()
    finally:
        agent.stop()
