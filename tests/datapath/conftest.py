"""Fixtures for datapath tests: real packets through the compiled datapath.

The datapath is compiled ONCE per session (`datapath`). `env` attaches it to the pods
of one session topology (network namespaces, built only when a test asks for `env`);
every such test starts from open endpoints, an empty conntrack and no pending events
(`clean`). Tests that run the programs with BPF_PROG_TEST_RUN (progrun.py) use
`datapath` alone: no namespace, no veth. Tests that need their own compile (restart,
tiny ring) build their own small topology and pin dir, and clean them up in finalizers.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import pytest

from agent.datapath.interface import BatchHandler, EndpointSlot
from agent.policy.mapstate import ClusterMaps, EndpointPolicy
from observe.events import DatapathEvent, EventBatch
if TYPE_CHECKING:   # bcc is imported when a test first needs the datapath
    from agent.datapath.bpf import BpfDatapath

from tests.datapath.topology import EXT2_IP, EXT_IP, NODE_IP, NODE_IP6, Topology

PIN_ROOT = f"/sys/fs/bpf/mbrt-{os.getpid()}"

IDS = {"p0": 1000, "p1": 1001, "p2": 1002}


def _privileged_ok() -> str | None:
    if os.geteuid() != 0:
        return "datapath tests need root"
    if not os.path.isdir("/sys/fs/bpf"):
        return "bpffs is not mounted"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc (python3-bpfcc) is not importable"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _privileged_ok()
    for item in items:
        path = str(item.fspath)
        if "tests/datapath" in path and not path.endswith("_unit.py"):
            item.add_marker(pytest.mark.privileged)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Env:
    topo: Topology
    dp: BpfDatapath
    slots: dict[str, EndpointSlot]
    events: list[DatapathEvent] = field(default_factory=list)

    def slot(self, pod: str) -> EndpointSlot:
        return self.slots[pod]

    def on_events(self, batch: EventBatch) -> None:
        self.events.extend(batch.events())

    def ns(self, pod: str) -> str:
        return next(p.ns for p in self.topo.pods if p.name == pod)

    def ip(self, pod: str) -> str:
        return self.slots[pod].ipv4

    def ip6(self, pod: str) -> str:
        return self.slots[pod].ipv6

    def set_policy(self, pod: str, policy: EndpointPolicy) -> int:
        return self.dp.update_endpoint(self.slots[pod], policy)

    def drain(self, settle: float = 0.0) -> list[DatapathEvent]:
        if settle:
            time.sleep(settle)
        while self.dp.poll_events(0):
            pass
        out = list(self.events)
        self.events.clear()
        return out

    def flush_conntrack(self) -> None:
        for name in ("conntrack", "ct_unreplied", "conntrack6", "ct6_unreplied"):
            ct = self.dp._maps[name]
            for k, _ in ct.items():
                ct.delete(k)


def cluster_maps(topo: Topology, extra_cidrs: dict[str, int] | None = None) -> ClusterMaps:
    ipcache = {f"{p.ip}/32": IDS[p.name] for p in topo.pods}
    ipcache.update({f"{p.ip6}/128": IDS[p.name] for p in topo.pods})
    ipcache[f"{NODE_IP}/32"] = ipcache[f"{NODE_IP6}/128"] = 1
    ipcache["0.0.0.0/0"] = ipcache["::/0"] = 2
    return ClusterMaps(ipcache=ipcache, cidrs=dict(extra_cidrs or {}))


def make_datapath(topo: Topology, name: str, **kw: object) -> BpfDatapath:
    from agent.datapath.bpf import BpfDatapath

    return BpfDatapath(node=topo.node, pin_dir=f"{PIN_ROOT}/{name}", netns=topo.node,
                       **kw)  # type: ignore[arg-type]


def attach_all(topo: Topology, dp: BpfDatapath) -> dict[str, EndpointSlot]:
    slots = {}
    for i, p in enumerate(topo.pods):
        slot = EndpointSlot(endpoint_id=100 + i, ifname=p.host_if, ifindex=p.ifindex,
                            ipv4=p.ip, identity=IDS[p.name], ipv6=p.ip6)
        dp.add_endpoint(slot, EndpointPolicy())
        slots[p.name] = slot
    return slots


@pytest.fixture(scope="session", autouse=True)
def pin_root() -> Iterator[str]:
    """This session's bpffs directory (every test datapath pins below it), removed
    last whichever modules ran."""
    yield PIN_ROOT
    shutil.rmtree(PIN_ROOT, ignore_errors=True)


SESSION_TAG = "s"   # the session topology's namespaces: mbrt-<pid>-s-*


@pytest.fixture(scope="session")
def datapath() -> Iterator[BpfDatapath]:
    """The session's datapath, compiled once, pinned under PIN_ROOT/session. Its
    endpoints' veths live in the session topology's node namespace (`env`), which
    exists only once a test has asked for `env`."""
    reason = _privileged_ok()
    if reason:
        pytest.skip(reason)
    dp = make_datapath(Topology(SESSION_TAG), "session")   # the name only: nothing built
    try:
        dp.start()
        yield dp
    finally:
        dp.close(unpin=True)
        shutil.rmtree(PIN_ROOT, ignore_errors=True)


class EventListeners:
    """The session datapath's one batch handler, passing each batch to whoever listens
    now: a fixture that takes the events over (`listening`) hands them back when done."""

    def __init__(self) -> None:
        self._stack: list[BatchHandler] = []

    def __call__(self, batch: EventBatch) -> None:
        if self._stack:
            self._stack[-1](batch)

    @contextmanager
    def listening(self, handler: BatchHandler) -> Iterator[None]:
        self._stack.append(handler)
        try:
            yield
        finally:
            self._stack.remove(handler)


@pytest.fixture(scope="session")
def event_listeners(datapath: BpfDatapath) -> EventListeners:
    listeners = EventListeners()
    datapath.set_batch_handler(listeners)
    return listeners


@pytest.fixture(scope="session")
def env(datapath: BpfDatapath, event_listeners: EventListeners) -> Iterator[Env]:
    topo = Topology(SESSION_TAG, npods=3)
    dp = datapath
    slots: dict[str, EndpointSlot] = {}
    try:
        topo.build()
        dp.sync_cluster_maps(cluster_maps(topo))
        slots.update(attach_all(topo, dp))
        e = Env(topo=topo, dp=dp, slots=slots)
        with event_listeners.listening(e.on_events):
            yield e
    finally:
        try:
            for slot in slots.values():   # detached while their namespace exists
                dp.remove_endpoint(slot.endpoint_id)
        finally:
            topo.destroy()


@pytest.fixture
def clean(env: Env) -> Iterator[Env]:
    for pod in env.slots:
        env.set_policy(pod, EndpointPolicy())
    env.dp.sync_cluster_maps(cluster_maps(env.topo))
    env.flush_conntrack()
    env.drain()
    yield env


def own_topology(request: pytest.FixtureRequest, tag: str, **kw: object) -> Topology:
    topo = Topology(tag, **kw)  # type: ignore[arg-type]
    request.addfinalizer(topo.destroy)
    return topo.build()


Finalizer = Callable[[], None]
