"""Pods that never registered (created before Membrane was installed, or after the chained
conflist was replaced) run unenforced: the agent compares the source's pods on its node
with its registered endpoints and reports the difference in `status`, `/readyz` (after a
grace period for pods being set up) and `endpoint list` (state "unmanaged")."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.api.client import AgentClient
from agent.api.status import CheckKind
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.endpoint_manager import UnmanagedPods
from agent.endpoints import EndpointRegistry
from agent.health import HealthChecks
from agent.k8s.objects import ClusterObjects, Pod
from agent.store import Store
from cli import debug
from tests.unit.test_agent import StaticSource, cluster


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def objects(*pods: Pod) -> ClusterObjects:
    objs = cluster()   # default/frontend and default/backend on n1
    for pod in pods:
        objs.pods[pod.key] = pod
    return objs


Parts = tuple[Store, EndpointRegistry, HealthChecks, Clock, UnmanagedPods]


@pytest.fixture
def parts(tmp_path: Path) -> Parts:
    store, registry, health, clock = Store(), EndpointRegistry(tmp_path), HealthChecks(), Clock()
    return store, registry, health, clock, UnmanagedPods("n1", store, registry, health,
                                                         grace=10, clock=clock)


def test_a_networked_pod_without_an_endpoint_is_unmanaged_after_the_grace(parts: Parts) -> None:
    store, registry, health, clock, unmanaged = parts
    store.replace_all(objects(), synced=True)
    registry.register("default", "backend", "lxcb", "10.244.1.3")
    assert unmanaged.current() == [] and health.report().ready   # first seen now
    clock.now += 9
    assert unmanaged.current() == [] and health.report().ready   # still being set up
    clock.now += 2
    (pod,) = unmanaged.current()
    assert (pod.namespace, pod.pod, pod.ipv4, pod.seconds) == ("default", "frontend",
                                                               "10.244.1.2", 11)
    assert not health.report().ready
    assert health.report().failing(CheckKind.READINESS) == ["no unmanaged pods"]
    assert "restart the pod" in str(pod) and "membrane-cni" in str(pod)
    registry.register("default", "frontend", "lxcf", "10.244.1.2")
    assert unmanaged.current() == [] and health.report().ready


@pytest.mark.parametrize("pod", [
    Pod("default", "elsewhere", {}, ip="10.244.2.9", node_name="n2"),
    Pod("default", "host", {}, ip="172.18.0.11", node_name="n1", host_network=True),
    Pod("default", "pending", {}, ip=None, node_name="n1"),
    Pod("default", "unscheduled", {}, ip="10.244.1.9", node_name=None),
], ids=["on another node", "hostNetwork", "no address yet (or finished)", "no node"])
def test_pods_that_are_not_this_nodes_endpoints_are_never_unmanaged(parts: Parts, pod: Pod) -> None:
    store, registry, _, clock, unmanaged = parts
    store.replace_all(objects(pod), synced=True)
    registry.register("default", "backend", "lxcb", "10.244.1.3")
    registry.register("default", "frontend", "lxcf", "10.244.1.2")
    unmanaged.current()
    clock.now += 60
    assert unmanaged.current() == []


def test_an_endpoint_for_an_earlier_address_of_the_pod_does_not_manage_it(parts: Parts) -> None:
    store, registry, _, clock, unmanaged = parts
    store.replace_all(objects(), synced=True)
    registry.register("default", "backend", "lxcb", "10.244.1.3")
    registry.register("default", "frontend", "lxcf", "10.244.1.77")   # the old sandbox
    unmanaged.current()
    clock.now += 11
    assert [p.pod for p in unmanaged.current()] == ["frontend"]


def test_nothing_is_unmanaged_before_the_source_has_synced(parts: Parts) -> None:
    store, _, _, clock, unmanaged = parts
    store.replace_all(objects(), synced=False)
    unmanaged.current()
    clock.now += 60
    assert unmanaged.current() == []


def test_the_agent_reports_it_in_status_readiness_and_endpoint_list(tmp_path: Path) -> None:
    config = AgentConfig(node="n1", source="static", state_dir=tmp_path / "state",
                         socket=str(tmp_path / "agent.sock"), bpffs=str(tmp_path / "bpf"),
                         datapath="fake", unmanaged_grace_seconds=0)
    agent = Agent(config, datapath=FakeDatapath(node="n1"), source=StaticSource(cluster()))
    agent.start()
    try:
        agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
        status = agent.status()
        (line,) = status.unmanaged
        assert line.startswith("pod default/frontend (10.244.1.2) unmanaged")
        assert not status.health.ready
        assert "no unmanaged pods" in status.health.failing(CheckKind.READINESS)
        assert status.endpoints_by_state == {"ready": 1, "unmanaged": 1}
        with AgentClient(config.socket) as client:
            rows = [(e.id, e.namespace, e.pod, e.state) for e in client.list_endpoints()]
            reply = client.status()
        assert rows[-1] == (0, "default", "frontend", "unmanaged") and len(rows) == 2
        assert list(reply.unmanaged) == [line]
        agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
        assert agent.status().unmanaged == () and agent.status().health.ready
    finally:
        agent.stop()


def fake_client(monkeypatch: pytest.MonkeyPatch, **replies: Any) -> None:
    class Client:
        def __init__(self, address: str) -> None:
            pass

        def __enter__(self) -> "Client":
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def status(self) -> Any:
            return replies["status"]

        def list_endpoints(self) -> Any:
            return replies["endpoints"]

    monkeypatch.setattr("cli.connection.AgentClient", Client)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    debug.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_the_cli_shows_unmanaged_pods_rejections_and_warnings(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    unmanaged = "pod default/frontend (10.244.1.2) unmanaged for 40s: restart the pod"
    rejected = "networkpolicy default/web: spec.x: bad; in force: fail closed: ..."
    status = SimpleNamespace(
        node="n1", version="1", uptime_seconds=1.0, healthy=True, message="ok",
        source="lab", store_revision=2, applied_revision=2, endpoints_by_state={},
        identities=1, last_regeneration_ms=1.0, flows_seen=0, lost=[], maps=[], drops=[],
        errors=[rejected, unmanaged], rejected=[rejected], unmanaged=[unmanaged],
        object_warnings=["networkpolicy default/twice: spec.policyTypes[1]: repeated"])
    row = SimpleNamespace(id=0, namespace="default", pod="frontend", ingress_enforced=False,
                          egress_enforced=False, policy_audit=False, identity=0,
                          labels=[], ipv6="",
                          ipv4="10.244.1.2", state="unmanaged", error="restart the pod")
    fake_client(monkeypatch, status=status, endpoints=[row])
    assert run(["status"]) == 0
    out = capsys.readouterr().out
    assert "Unmanaged pods" in out and unmanaged in out
    assert "Rejected objects" in out and rejected in out
    assert "Object warnings" in out and "repeated" in out
    assert "Errors:" not in out   # not listed twice
    assert run(["endpoint", "list"]) == 0
    out, err = capsys.readouterr()
    assert "pod default/frontend" in out and "unmanaged" in out
    assert "1 unmanaged: restart the pod" in err


def test_an_ipv6_only_pod_is_unmanaged_until_registered_under_its_address(parts: Parts) -> None:
    store, registry, _, clock, unmanaged = parts
    store.replace_all(objects(Pod("default", "six", {}, ipv6="fd00:10:244:1::9",
                                  node_name="n1")), synced=True)
    registry.register("default", "backend", "lxcb", "10.244.1.3")
    registry.register("default", "frontend", "lxcf", "10.244.1.2")
    unmanaged.current()
    clock.now += 11
    (pod,) = unmanaged.current()
    assert (pod.pod, pod.ipv4, pod.ipv6) == ("six", "", "fd00:10:244:1::9")
    assert "(fd00:10:244:1::9)" in str(pod)
    registry.register("default", "six", "lxc6", "", ipv6="fd00:10:244:1::9")
    assert unmanaged.current() == []
