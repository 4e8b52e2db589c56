"""Limits are loud: a full policy map is MapFullError (and the endpoint denies more,
never allows more); a flooded ring buffer counts its lost events; conntrack entries
expire and are collected (this module's datapath has 1-second UDP timeouts)."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest

from core.errors import MapFullError
from agent.policy.mapstate import Direction, EndpointPolicy, PolicyKey
from observe.reasons import DropReason
from tests.datapath.conftest import IDS, attach_all, cluster_maps, make_datapath, own_topology
from tests.datapath.topology import Topology

IN = Direction.INGRESS


@pytest.fixture(scope="module")
def small(request: pytest.FixtureRequest) -> Iterator[tuple[Topology, Any, dict[str, Any]]]:
    topo = own_topology(request, "l", npods=2, subnet=2, external=False)
    dp = make_datapath(topo, "limits", max_policy=8, ring_pages=1,
                       ct_timeouts={"UDP": 1})
    request.addfinalizer(lambda: dp.close(unpin=True))  # type: ignore[attr-defined]
    dp.start()  # type: ignore[attr-defined]
    dp.sync_cluster_maps(cluster_maps(topo))  # type: ignore[attr-defined]
    yield topo, dp, attach_all(topo, dp)


def test_a_full_policy_map_raises_map_full_naming_endpoint_and_map(small: Any) -> None:
    topo, dp, slots = small
    p0, p1 = topo.pods
    fits = EndpointPolicy(ingress_enforced=True,
                          entries=frozenset({PolicyKey(IN, IDS["p0"], 6, 80, 80)}))
    dp.update_endpoint(slots["p1"], fits)
    too_big = EndpointPolicy(ingress_enforced=True, entries=frozenset(
        {PolicyKey(IN, 5000 + i, 6, 443, 443) for i in range(20)}))
    with pytest.raises(MapFullError) as err:
        dp.update_endpoint(slots["p1"], too_big)
    msg = str(err.value)
    assert "endpoint 101" in msg and "'policy'" in msg and "full" in msg
    # the no-longer-desired allow went first: never more open than desired
    assert topo.tcp(p0.ns, p1.ip, 80, 0.5) == "timeout"
    usage = {m.name: m for m in dp.stats().maps}
    assert usage["policy"].entries == usage["policy"].max_entries == 8
    dp.update_endpoint(slots["p1"], fits)
    assert topo.tcp(p0.ns, p1.ip, 80) == "ok"


def test_add_endpoint_on_a_full_map_still_attaches_enforcing(small: Any) -> None:
    topo, dp, slots = small
    p0, p1 = topo.pods
    dp.remove_endpoint(slots["p0"].endpoint_id)
    too_big = EndpointPolicy(ingress_enforced=True, entries=frozenset(
        {PolicyKey(IN, 6000 + i, 17, 53, 53) for i in range(20)}))
    with pytest.raises(MapFullError):
        dp.add_endpoint(slots["p0"], too_big)
    assert topo.tcp(p1.ns, p0.ip, 80, 0.5) == "timeout"
    dp.update_endpoint(slots["p0"], EndpointPolicy())
    assert topo.tcp(p1.ns, p0.ip, 80) == "ok"


def test_a_flooded_tiny_ring_counts_lost_events(small: Any) -> None:
    topo, dp, slots = small
    p0, p1 = topo.pods
    dp.update_endpoint(slots["p1"], EndpointPolicy(ingress_enforced=True))
    before = dp.stats()
    topo.run(p0.ns, "udpflood", p1.ip, "5353", "3000")
    time.sleep(0.2)
    after = dp.stats()
    assert after.lost_events > before.lost_events
    dropped = after.drops.get(int(DropReason.POLICY_DENIED), 0) - before.drops.get(int(DropReason.POLICY_DENIED), 0)
    assert dropped >= 3000
    read = 0
    while True:
        n = dp.poll_events(0)
        if not n:
            break
        read += n
    assert 0 < read < 3000


def test_expired_conntrack_entries_stop_replies_and_are_collected(small: Any) -> None:
    topo, dp, slots = small
    p0, p1 = topo.pods
    dp.update_endpoint(slots["p0"], EndpointPolicy(ingress_enforced=True))
    dp.update_endpoint(slots["p1"], EndpointPolicy())
    assert topo.udp(p0.ns, p1.ip, 5353) == "ok"
    udp = [e for e in dp.dump_conntrack() if e.protocol == 17]
    assert udp and all(e.state == "udp" and 0 < e.expires_in_s <= 1 for e in udp)
    time.sleep(1.2)
    assert dp.collect_conntrack_garbage() >= len(udp)
    assert not [e for e in dp.dump_conntrack() if e.protocol == 17]
