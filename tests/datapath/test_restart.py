"""Pinned maps: a new BpfDatapath on the same pin dir (an agent restart) finds the
endpoints, keeps enforcing, bumps the pinned policy revision (so no verdict cached in
conntrack by the old agent is trusted), and an open TCP connection survives the program
swap."""

from __future__ import annotations

import os
import time
from typing import Iterator

import pytest

from agent.policy.mapstate import Direction, EndpointPolicy, PolicyKey
from tests.datapath.conftest import IDS, attach_all, cluster_maps, make_datapath, own_topology
from tests.datapath.topology import Topology

IN = Direction.INGRESS


@pytest.fixture(scope="module")
def topo(request: pytest.FixtureRequest) -> Iterator[Topology]:
    yield own_topology(request, "r", npods=2, subnet=1, external=False)


def _lines(proc) -> list[str]:  # type: ignore[no-untyped-def]
    try:
        data = proc.stdout.read()
    except (BlockingIOError, TypeError):
        return []
    return (data or "").split()


def test_restart_keeps_endpoints_enforcement_and_open_connections(topo: Topology) -> None:
    p0, p1 = topo.pods
    dp1 = make_datapath(topo, "restart")
    dp2 = None
    stream = None
    try:
        dp1.start()  # type: ignore[attr-defined]
        dp1.sync_cluster_maps(cluster_maps(topo))  # type: ignore[attr-defined]
        slots = attach_all(topo, dp1)
        pol1 = EndpointPolicy(ingress_enforced=True,
                              entries=frozenset({PolicyKey(IN, IDS["p0"], 6, 9000, 9000)}))
        pol0 = EndpointPolicy(ingress_enforced=True)   # p0's replies need conntrack
        dp1.update_endpoint(slots["p1"], pol1)  # type: ignore[attr-defined]
        dp1.update_endpoint(slots["p0"], pol0)  # type: ignore[attr-defined]
        stream = topo.spawn(p0.ns, "stream", p1.ip, "9000")
        assert stream.stdout is not None
        assert stream.stdout.readline().strip() == "connected"
        assert stream.stdout.readline().startswith("ok")

        rev1 = dp1.policy_revision()  # type: ignore[attr-defined]
        assert rev1 > 0
        dp1.close()  # type: ignore[attr-defined]   # the agent goes away; pins stay
        del dp1
        os.set_blocking(stream.stdout.fileno(), False)
        time.sleep(0.3)
        _lines(stream)
        time.sleep(0.5)
        assert _lines(stream), "connection stalled while no agent was running"

        dp2 = make_datapath(topo, "restart")
        dp2.start()  # type: ignore[attr-defined]
        # the pinned revision survived and was bumped: no verdict cached by the old
        # agent is current for the new one, before it writes anything
        assert dp2.policy_revision() == rev1 + 1  # type: ignore[attr-defined]
        found = {s.endpoint_id: s for s in dp2.pinned_endpoints()}  # type: ignore[attr-defined]
        assert found == {s.endpoint_id: s for s in slots.values()}
        # the agent reconciles: re-adding swaps in the new programs (tc replace)
        dp2.add_endpoint(slots["p1"], pol1)  # type: ignore[attr-defined]
        dp2.add_endpoint(slots["p0"], pol0)  # type: ignore[attr-defined]
        assert dp2.update_endpoint(slots["p1"], pol1) == 0  # type: ignore[attr-defined]
        _lines(stream)
        time.sleep(0.5)
        assert _lines(stream), "open connection cut by the restart"
        # nothing was opened either
        assert topo.tcp(p1.ns, p0.ip, 80, 0.5) == "timeout"
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout"
    finally:
        if stream is not None:
            topo.stop(stream)
        if dp2 is not None:
            dp2.close(unpin=True)  # type: ignore[attr-defined]


def test_removing_a_stale_endpoint_detaches_and_deletes_its_state(topo: Topology) -> None:
    from agent.datapath import attach

    p0, p1 = topo.pods
    dp = make_datapath(topo, "stale")
    try:
        dp.start()  # type: ignore[attr-defined]
        dp.sync_cluster_maps(cluster_maps(topo))  # type: ignore[attr-defined]
        slots = attach_all(topo, dp)
        dp.update_endpoint(slots["p1"], EndpointPolicy(ingress_enforced=True))  # type: ignore[attr-defined]
        assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout"
        dp.remove_endpoint(slots["p1"].endpoint_id)  # type: ignore[attr-defined]
        assert attach.attached(p1.host_if, topo.node) == {}
        assert dp.dump_policy(slots["p1"].endpoint_id) == []  # type: ignore[attr-defined]
        assert [s.endpoint_id for s in dp._read_endpoints()] == [slots["p0"].endpoint_id]  # type: ignore[attr-defined]
        assert topo.tcp(p0.ns, p1.ip, 80) == "ok"
    finally:
        dp.close(unpin=True)  # type: ignore[attr-defined]
    assert attach.attached(p0.host_if, topo.node) == {}
