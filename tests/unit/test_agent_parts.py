"""The agent's parts, each with the narrow dependencies it is handed: regeneration driven
by the engine's delta, health checks owned by their parts (/healthz, /readyz), the
bounded error history, the gRPC servicer over fakes, and status as typed data.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, NoReturn

import grpc
import pytest

from agent.api.gen import agent_pb2 as pb
from agent.api.server import AgentServicer, status_message
from agent.api.services import EndpointView, LoadedPolicies
from agent.api.status import AgentStatus, CheckKind, CheckResult, Health, RegenerationTimes
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.datapath.interface import MapUsage
from agent.endpoint_manager import EndpointManager
from agent.endpoints import EndpointRegistry
from agent.flowmeta import AgentMetadata
from agent.health import ErrorHistory, HealthChecks, serve_health
from agent.k8s.objects import Pod
from agent.k8s.rejection import Rejection
from agent.policy.engine import PolicyEngine
from agent.regeneration import Regenerator
from agent.store import Store
from agent.policy.trace import TraceResult
from agent.workers import Workers
from core.errors import MembraneError
from identity.allocator import Identity
from identity.cidr import CidrAllocator
from identity.labels import LabelSet
from identity.local import LocalAllocator
from observe.ring import ObserverStatus
from tests.unit.test_agent import DENY_BACKEND, StaticSource, cluster, make_agent, push


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Agent, StaticSource, FakeDatapath]]:
    source = StaticSource(cluster())
    datapath = FakeDatapath(node="n1")
    agent = make_agent(tmp_path, source, datapath)
    agent.start()
    yield agent, source, datapath
    agent.stop()


# -- regeneration -------------------------------------------------------------------------

def test_a_policy_change_rewrites_only_the_endpoints_it_changes(running) -> None:
    agent, source, datapath = running
    front = agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
    back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    datapath.calls.clear()
    objs = cluster()
    objs.policies["default/deny"] = DENY_BACKEND
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    rewritten = [args[0].endpoint_id for name, args in datapath.calls
                 if name in ("add_endpoint", "update_endpoint")]
    assert rewritten == [back.id]
    assert "sync_cluster_maps" not in datapath.call_names()   # no address changed
    assert front.policy_revision == back.policy_revision == 2


def test_a_new_pod_address_syncs_the_cluster_maps_and_rewrites_no_endpoint(running) -> None:
    agent, source, datapath = running
    agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
    datapath.calls.clear()
    objs = cluster()
    objs.pods["default/other"] = Pod("default", "other", {"app": "other"}, ip="10.244.1.4",
                                     node_name="n1")
    push(source, objs, 2)
    assert agent.wait_for_revision(2, 5)
    assert datapath.call_names() == ["sync_cluster_maps"]
    assert datapath.cluster.ipcache["10.244.1.4/32"] >= 256


class FlakyAllocator(LocalAllocator):
    """In memory; its next flush fails when told to (an etcd briefly away)."""

    fail_next_flush = False

    def flush(self) -> None:
        if self.fail_next_flush:
            self.fail_next_flush = False
            raise OSError("identity store briefly unavailable")
        super().flush()


def test_a_pass_that_fails_after_the_engine_update_loses_no_change(tmp_path: Path) -> None:
    # The parts alone, no threads: the second pass's engine delta is empty, so only what
    # the failed pass left pending can still write the policy.
    lock, kick, stop = threading.RLock(), threading.Event(), threading.Event()
    errors, health, store = ErrorHistory(), HealthChecks(), Store()
    datapath = FakeDatapath(node="n1")
    datapath.start()
    labels, cidrs = FlakyAllocator(None), CidrAllocator(None)
    engine = PolicyEngine(labels, cidrs)
    endpoints = EndpointManager(EndpointRegistry(tmp_path), datapath, lock, kick, errors)
    regenerator = Regenerator(
        node="n1", store=store, engine=engine, allocators=(labels, cidrs), datapath=datapath,
        endpoints=endpoints, metadata=AgentMetadata("n1", labels, cidrs), lock=lock,
        kick=kick, stop=stop, errors=errors, health=health)
    store.replace_all(cluster(), synced=True, source_revision=1)
    with pytest.raises(MembraneError):   # nobody regenerates yet: it stays fail-closed
        endpoints.register("default", "backend", "lo", "10.244.1.3", timeout=0)
    regenerator.regenerate(store.snapshot())
    back = endpoints.by_pod("default/backend")
    assert back is not None and back.state.value == "ready" and not back.ingress_enforced
    objs = cluster()
    objs.policies["default/deny"] = DENY_BACKEND
    store.replace_all(objs, synced=True, source_revision=2)
    labels.fail_next_flush = True
    with pytest.raises(OSError):
        regenerator.regenerate(store.snapshot())
    # Revocations first: the new deny was written before the flush failed ...
    assert datapath.policies[back.id].ingress_enforced and back.policy_revision == 1
    # ... and the revision is written once a pass completes.
    regenerator.regenerate(store.snapshot())
    assert datapath.policies[back.id].ingress_enforced and back.policy_revision == 2
    assert regenerator.policy_written()


# -- health ---------------------------------------------------------------------------------

def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def test_readyz_needs_the_source_synced_and_every_endpoint_written(tmp_path: Path) -> None:
    source = StaticSource(cluster(), synced=False)
    agent = make_agent(tmp_path, source)
    agent.start()
    server = serve_health(agent.parts.health, 0, address="127.0.0.1")
    port = server.server_address[1]
    try:
        assert get(port, "/healthz") == 200 and get(port, "/readyz") == 503
        checks = {c.name: c for c in agent.status().health.checks}
        assert {"synced", "policy written", "thread regenerator"} <= set(checks)
        assert not checks["synced"].ok and checks["thread regenerator"].ok
        with pytest.raises(MembraneError):   # nothing synced: stays fail-closed
            agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=0.3)
        push(source, cluster(), 1)
        assert agent.endpoints.wait(lambda: agent.status().health.ready, 5)
        assert get(port, "/readyz") == 200
        with pytest.raises(MembraneError):   # a pod the source does not know: not written
            agent.register_endpoint("default", "ghost", "lo", "10.244.1.9", timeout=0.3)
        assert get(port, "/readyz") == 503 and get(port, "/healthz") == 200
        agent.deregister_endpoint("default", "ghost")
        assert get(port, "/readyz") == 200
    finally:
        server.shutdown()
        agent.stop()


def test_a_thread_that_dies_fails_liveness_and_stays_in_the_error_history() -> None:
    stop, health, errors = threading.Event(), HealthChecks(), ErrorHistory()
    workers = Workers(stop, health, errors)

    def doomed() -> None:
        raise RuntimeError("boom")
    workers.spawn("doomed", doomed)
    workers.spawn("steady", stop.wait)
    assert eventually(lambda: not health.report().live)
    report = health.report()
    assert not report.live and report.failing(CheckKind.LIVENESS) == ["thread doomed"]
    assert errors.recent() == ("thread doomed died: boom",)
    stop.set()
    workers.join()
    assert health.report().live   # stopping: threads end on purpose


def eventually(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_check_that_raises_fails_instead_of_breaking_the_probe() -> None:
    health = HealthChecks()

    def broken() -> bool:
        raise RuntimeError("bug")
    health.add_readiness("broken", broken)
    health.add_liveness("fine", lambda: True)
    report = health.report()
    assert report.live and not report.ready


def test_the_error_history_is_bounded_and_keeps_a_repeated_error_once() -> None:
    errors = ErrorHistory(size=3)
    assert errors.record("a") and not errors.record("a")
    for message in ("b", "c", "d"):
        errors.record(message)
    assert errors.recent() == ("b", "c", "d")


# -- the servicer over fakes ------------------------------------------------------------------

VIEW = EndpointView(id=3, namespace="default", pod="web", ifname="lxc3", ipv4="10.0.0.3",
                    ifindex=9, identity=300, state="ready", error="", ingress_enforced=True,
                    egress_enforced=False, policy_revision=7, policy_entries=2,
                    last_regeneration_ms=1.5)


class FakeEndpoints:
    def register(self, namespace: str, pod: str, ifname: str, ipv4: str,
                 container_id: str, timeout: float, ipv6: str = "") -> EndpointView:
        raise MembraneError(f"endpoint {namespace}/{pod}: not-ready: map full")

    def deregister(self, namespace: str, pod: str) -> None:
        pass

    def endpoints(self) -> list[EndpointView]:
        return [VIEW]

    def find(self, endpoint_id: int, pod_key: str) -> EndpointView | None:
        return VIEW if endpoint_id == 3 or pod_key == VIEW.key else None


class FakeIdentities:
    def identities(self) -> list[Identity]:
        return [Identity(300, LabelSet.parse(["k8s:app=web"]))]

    def identity_labels(self, identity: int) -> list[str]:
        return ["k8s:app=web"] if identity == 300 else []


class FakePolicies:
    def loaded(self) -> LoadedPolicies:
        return LoadedPolicies(revision=7, policies={},
                              rejected=(Rejection("Pod", "a/bad", "bad: why"),),
                              selected_endpoints={})

    def trace(self, src: str, dst: str, port: int, protocol: str, family: int = 4
              ) -> TraceResult:
        return TraceResult(allowed=port == 80, explanation=f"{src} -> {dst}")


def a_status(**changes: object) -> AgentStatus:
    fields: dict[str, object] = dict(
        node="n1", version="1.0", uptime_seconds=3.0, source="static", synced=True,
        store_revision=7, applied_revision=7,
        health=Health((CheckResult("thread regenerator", CheckKind.LIVENESS, True),)),
        endpoints_by_state={"ready": 1}, identities=1,
        maps=(MapUsage("policy", 95, 100),), drops={133: 4, 999: 1}, lost_kernel=0,
        observer=ObserverStatus("n1", "1.0", 0, 4095, 12, 1, {"PERF_EVENT_RING_BUFFER": 2}),
        regeneration=RegenerationTimes(1.25, 3.5), errors=("regeneration: etcd away",),
        problems=("bad: why",), warnings=("policy map 95% full",))
    fields.update(changes)
    return AgentStatus(**fields)


class FakeStatus:
    def status(self) -> AgentStatus:
        return a_status()

    def applied_revision(self) -> int:
        return 7

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        return revision <= 7


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


def servicer() -> AgentServicer:
    return AgentServicer("n1", FakeEndpoints(), FakeIdentities(), FakePolicies(),
                         FakeDatapath(), FakeStatus())


def test_the_servicer_answers_from_the_protocols_it_is_handed() -> None:
    s, ctx = servicer(), Context()
    (ep,) = s.ListEndpoints(pb.Empty(), ctx).endpoints
    assert (ep.id, ep.pod, ep.state, list(ep.labels)) == (3, "web", "ready", ["k8s:app=web"])
    (ident,) = s.ListIdentities(pb.Empty(), ctx).identities
    assert (ident.id, ident.references) == (300, 1)
    assert s.Trace(pb.TraceRequest(to="a/b"), ctx).allowed
    assert list(s.GetPolicies(pb.Empty(), ctx).rejected) == ["bad: why"]


@pytest.mark.parametrize("call,code", [
    (lambda s, c: s.GetEndpoint(pb.EndpointRef(id=4), c), grpc.StatusCode.NOT_FOUND),
    (lambda s, c: s.RegisterEndpoint(pb.RegisterEndpointRequest(pod="x"), c),
     grpc.StatusCode.FAILED_PRECONDITION),
    (lambda s, c: s.WaitForRevision(pb.WaitRequest(revision=8, timeout_seconds=1), c),
     grpc.StatusCode.DEADLINE_EXCEEDED),
], ids=["an unknown endpoint", "a refused registration", "a revision not applied in time"])
def test_the_servicer_aborts_with_the_status_code_that_says_why(call, code) -> None:
    with pytest.raises(Aborted) as raised:
        call(servicer(), Context())
    assert raised.value.args[0] == code


def test_the_typed_status_becomes_the_wire_reply() -> None:
    reply = status_message(a_status())
    assert reply.healthy and reply.message == "ok"
    assert list(reply.errors) == ["regeneration: etcd away", "bad: why", "policy map 95% full"]
    assert [(c.name, c.value) for c in reply.lost] == [("PERF_EVENT_RING_BUFFER", 2)]
    assert [c.value for c in reply.drops] == [4, 1] and reply.drops[1].name == "reason 999"
    assert (reply.flows_seen, reply.last_regeneration_ms) == (12, 1.25)


def test_an_unhealthy_status_says_which_check_fails_and_the_last_errors() -> None:
    dead = Health((CheckResult("thread gc", CheckKind.LIVENESS, False),))
    reply = status_message(a_status(health=dead, synced=False))
    assert not reply.healthy
    assert reply.message == "thread gc failing; not synced; regeneration: etcd away"
