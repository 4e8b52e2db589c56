"""The agent above the datapath: endpoints, regeneration, reconciliation, its gRPC API.

Runs the real Agent (store, engine, allocators, observer, gRPC server on a temporary
unix socket) over FakeDatapath, which decides packets with the same semantics as the C.
Endpoints use the loopback interface: the fake datapath attaches nothing.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from agent.api.client import AgentClient
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.endpoint_manager import INIT_POLICY
from agent.datapath.interface import EndpointSlot
from core.errors import MembraneError
from agent.k8s.objects import (ClusterObjects, LabelSelector, Namespace, NetworkPolicy, Pod,
                               PolicyPeer, PolicyRule, PolicyType)
from agent.policy.mapstate import Direction
from agent.store import Store


class StaticSource:
    """A source that lists once (optionally never, to test the unsynced state)."""

    name = "static"

    def __init__(self, objects: ClusterObjects, synced: bool = True) -> None:
        self.objects = objects
        self.synced = synced
        self.store: Store | None = None

    def run(self, store: Store, stop: threading.Event) -> None:
        self.store = store
        if self.synced:
            store.replace_all(self.objects, synced=True, source_revision=1)
        stop.wait()


def cluster() -> ClusterObjects:
    objs = ClusterObjects()
    objs.namespaces["default"] = Namespace("default", {"kubernetes.io/metadata.name": "default"})
    for name, app, ip in (("frontend", "frontend", "10.244.1.2"), ("backend", "backend", "10.244.1.3")):
        objs.pods[f"default/{name}"] = Pod("default", name, {"app": app}, ip=ip, node_name="n1")
    return objs


DENY_BACKEND = NetworkPolicy("default", "deny", LabelSelector.of({"app": "backend"}),
                             frozenset({PolicyType.INGRESS}))
ALLOW_FRONTEND = NetworkPolicy(
    "default", "allow", LabelSelector.of({"app": "backend"}), frozenset({PolicyType.INGRESS}),
    ingress=(PolicyRule(peers=(PolicyPeer(pod_selector=LabelSelector.of({"app": "frontend"})),)),))


def make_agent(tmp_path: Path, source: StaticSource, datapath: FakeDatapath | None = None) -> Agent:
    config = AgentConfig(node="n1", source="static", state_dir=tmp_path / "state",
                         socket=str(tmp_path / "agent.sock"), bpffs=str(tmp_path / "bpf"),
                         datapath="fake", conntrack_gc_interval=0.2)
    return Agent(config, datapath=datapath or FakeDatapath(node="n1"), source=source)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Agent, StaticSource, FakeDatapath]]:
    source = StaticSource(cluster())
    datapath = FakeDatapath(node="n1")
    agent = make_agent(tmp_path, source, datapath)
    agent.start()
    yield agent, source, datapath
    agent.stop()


def push(source: StaticSource, objects: ClusterObjects, revision: int) -> None:
    assert source.store is not None
    source.store.replace_all(objects, synced=True, source_revision=revision)


def test_a_registered_pod_becomes_ready_with_its_identity_and_no_enforcement(running) -> None:
    agent, _, datapath = running
    ep = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    assert ep.state.value == "ready"
    assert ep.identity >= 256
    assert not ep.ingress_enforced and not ep.egress_enforced
    assert datapath.policies[ep.id].ingress_enforced is False


def test_enforcement_switches_on_when_the_first_policy_selects_the_pod(running) -> None:
    agent, source, datapath = running
    front = agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
    back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    objs = cluster()
    objs.policies["default/deny"] = DENY_BACKEND
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    assert back.ingress_enforced and not front.ingress_enforced
    allowed, _ = datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 8080)
    assert not allowed
    objs.policies["default/allow"] = ALLOW_FRONTEND
    push(source, objs, 3)
    assert agent.wait_for_revision(3, 5)
    allowed, _ = datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 8080)
    assert allowed


def test_changing_a_label_changes_the_identity(running) -> None:
    agent, source, _ = running
    ep = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    before = ep.identity
    objs = cluster()
    pod = objs.pods["default/backend"]
    objs.pods["default/backend"] = replace(pod, labels={**pod.labels, "this": "that"})
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    assert ep.identity not in (before, 0)


def test_a_pod_the_source_does_not_know_waits_for_identity_behind_the_fail_closed_policy(running) -> None:
    agent, _, datapath = running
    with pytest.raises(MembraneError, match="waiting-for-identity"):
        agent.register_endpoint("default", "ghost", "lo", "10.244.1.9", timeout=0.5)
    ghost = agent.endpoints.by_pod("default/ghost")
    assert ghost is not None and datapath.policies[ghost.id] == INIT_POLICY


def test_nothing_is_enforced_from_a_half_known_state(tmp_path: Path) -> None:
    source = StaticSource(cluster(), synced=False)
    datapath = FakeDatapath(node="n1")
    agent = make_agent(tmp_path, source, datapath)
    agent.start()
    try:
        with pytest.raises(MembraneError):
            agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=0.5)
        ep = agent.endpoints.by_pod("default/backend")
        assert ep is not None and datapath.policies[ep.id] == INIT_POLICY
    finally:
        agent.stop()


def test_a_full_policy_map_makes_the_endpoint_not_ready_and_shows_in_status(running) -> None:
    agent, source, datapath = running
    ep = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    datapath.fail_next("update_endpoint")
    objs = cluster()
    objs.policies["default/allow"] = ALLOW_FRONTEND   # entries to add: written in one go
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    assert ep.state.value == "not-ready" and "map full" in ep.error
    status = agent.status()
    assert any("map full" in e for e in status.errors)
    assert any(f"endpoint {ep.id}" in p and "not-ready" in p for p in status.problems)


def test_restart_removes_pinned_endpoints_nobody_registered(tmp_path: Path) -> None:
    stale = EndpointSlot(endpoint_id=77, ifname="lo", ifindex=1, ipv4="10.244.1.77", identity=300)
    datapath = FakeDatapath(node="n1", pinned=[stale])
    agent = make_agent(tmp_path, StaticSource(cluster()), datapath)
    agent.start()
    try:
        assert ("remove_endpoint", (77,)) in datapath.calls
    finally:
        agent.stop()


def test_registrations_survive_a_restart_with_the_same_endpoint_id(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, StaticSource(cluster()))
    agent.start()
    first = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5).id
    agent.stop()
    again = make_agent(tmp_path, StaticSource(cluster()))
    again.start()
    try:
        ep = again.endpoints.by_pod("default/backend")
        assert ep is not None and ep.id == first
        assert again.endpoints.wait(lambda: ep.state.value == "ready", 5)
    finally:
        again.stop()


def test_the_grpc_api_lists_endpoints_and_reports_status(running, tmp_path: Path) -> None:
    agent, _, _ = running
    agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    with AgentClient(str(tmp_path / "agent.sock")) as client:
        endpoints = client.list_endpoints()
        assert [(e.namespace, e.pod, e.state) for e in endpoints] == [("default", "backend", "ready")]
        assert "k8s:app=backend" in endpoints[0].labels
        status = client.wait_for_revision(1, timeout=5)
        assert status.healthy and status.applied_revision >= 1
        assert status.endpoints_by_state["ready"] == 1
        client.deregister_endpoint("default", "backend")
        assert client.list_endpoints() == []


def test_an_observer_tcp_listener_without_tls_files_refuses_to_start(tmp_path: Path) -> None:
    config = AgentConfig(node="n1", source="static", state_dir=tmp_path / "state",
                         socket=str(tmp_path / "agent.sock"), bpffs=str(tmp_path / "bpf"),
                         datapath="fake", observer_listen="127.0.0.1:0")
    agent = Agent(config, datapath=FakeDatapath(node="n1"), source=StaticSource(cluster()))
    with pytest.raises(MembraneError, match="--tls-cert"):
        agent.start()
    agent.stop()


def test_restart_puts_its_own_programs_on_registered_pinned_endpoints(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, StaticSource(cluster()))
    agent.start()
    first = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    agent.stop()
    pinned = EndpointSlot(endpoint_id=first.id, ifname="lo", ifindex=1, ipv4="10.244.1.3",
                          identity=first.identity)
    datapath = FakeDatapath(node="n1", pinned=[pinned])
    again = make_agent(tmp_path, StaticSource(cluster()), datapath)
    again.start()
    try:
        # Before any map write: the old programs wrote to the old agent's ring buffer.
        assert datapath.call_names()[:3] == ["start", "pinned_endpoints", "reattach"]
    finally:
        again.stop()


def test_a_registration_never_written_is_closed_at_start_before_any_sync(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, StaticSource(cluster()))
    agent.start()
    ep_id = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5).id
    agent.stop()
    # As if the pins were lost: nothing pinned, the registration on disk.
    datapath = FakeDatapath(node="n1")
    again = make_agent(tmp_path, StaticSource(cluster(), synced=False), datapath)
    again.start()
    try:
        assert datapath.policies[ep_id] == INIT_POLICY and ep_id in datapath.attached
    finally:
        again.stop()


def test_a_failed_regeneration_is_retried_without_waiting_for_another_change(running) -> None:
    agent, source, datapath = running
    back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    allocator = agent.parts.allocator
    real_flush = allocator.flush
    failures = []

    def flush_fails_once() -> None:
        if not failures:
            failures.append(1)
            raise OSError("identity store briefly unavailable")
        real_flush()

    allocator.flush = flush_fails_once  # type: ignore[method-assign]
    objs = cluster()
    objs.policies["default/deny"] = DENY_BACKEND
    push(source, objs, 2)
    # Nothing else changes: only the agent's own retry can apply revision 2.
    assert agent.wait_for_revision(2, 5)
    assert failures and back.ingress_enforced
    assert datapath.policies[back.id].ingress_enforced
    assert any("briefly unavailable" in e for e in agent.status().errors)


# --- dual-stack ---------------------------------------------------------------------------

def dual_cluster() -> ClusterObjects:
    objs = cluster()
    for key, ipv6 in (("default/frontend", "fd00:10:244:1::2"),
                      ("default/backend", "fd00:10:244:1::3")):
        objs.pods[key] = replace(objs.pods[key], ipv6=ipv6)
    return objs


def test_a_dual_stack_registration_over_grpc_writes_both_addresses_and_lists_them(
        tmp_path: Path) -> None:
    source = StaticSource(dual_cluster())
    datapath = FakeDatapath(node="n1")
    agent = make_agent(tmp_path, source, datapath)
    agent.start()
    try:
        with AgentClient(str(tmp_path / "agent.sock")) as client:
            ep = client.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5,
                                          ipv6="fd00:10:244:1::3")
            assert (ep.ipv4, ep.ipv6, ep.state) == ("10.244.1.3", "fd00:10:244:1::3", "ready")
            assert datapath.endpoints[ep.id].ipv6 == "fd00:10:244:1::3"
            [listed] = client.list_endpoints()
            assert (listed.ipv4, listed.ipv6) == ("10.244.1.3", "fd00:10:244:1::3")
            rows = {(e.prefix, e.table): e.identity for e in client.bpf_ipcache()}
            assert rows[("fd00:10:244:1::3/128", "ipcache6")] == \
                rows[("10.244.1.3/32", "ipcache")] == ep.identity
            assert ("::/0", "ipcache6") in rows and ("0.0.0.0/0", "ipcache") in rows
            tables = [e.table for e in client.bpf_ipcache()]
            assert tables == sorted(tables, key=lambda t: t.endswith("6"))   # IPv4 first
            six = client.trace("default/frontend", "default/backend", 80, "TCP", 6)
            assert six.allowed and "IPv6 fd00:10:244:1::3" in six.explanation
    finally:
        agent.stop()


def test_an_ipv6_only_pod_registers_and_a_bad_address_is_refused(running) -> None:
    agent, _, datapath = running
    ep = agent.register_endpoint("default", "backend", "lo", "", timeout=5,
                                 ipv6="fd00:10:244:1::3")
    assert (ep.ipv4, ep.ipv6, ep.state.value) == ("", "fd00:10:244:1::3", "ready")
    assert datapath.endpoints[ep.id].ipv4 == ""
    with pytest.raises(MembraneError, match="ipv4: Required value"):
        agent.register_endpoint("default", "frontend", "lo", "", timeout=1)
    with pytest.raises(MembraneError, match="ipv6: .*must be an IPv6 address"):
        agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=1,
                                ipv6="10.244.1.2")
    with pytest.raises(MembraneError, match="ipv6: .*a unicast address a pod can have"):
        agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=1,
                                ipv6="fe80::2")


def test_a_registration_keeps_its_ipv6_address_across_a_restart(tmp_path: Path) -> None:
    agent = make_agent(tmp_path, StaticSource(dual_cluster()))
    agent.start()
    try:
        agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5,
                                ipv6="fd00:10:244:1::3")
    finally:
        agent.stop()
    again = make_agent(tmp_path, StaticSource(dual_cluster()))
    again.start()
    try:
        ep = again.endpoints.by_pod("default/backend")
        assert ep is not None and ep.ipv6 == "fd00:10:244:1::3"
    finally:
        again.stop()
