"""FakeDatapath behaves like the protocol says, so agent tests can trust it."""

from __future__ import annotations

import pytest

from agent.datapath.fake import FakeDatapath
from agent.datapath.interface import Datapath, EndpointSlot
from core.errors import MapFullError
from agent.policy.mapstate import ClusterMaps, Direction, EndpointPolicy, MatchType, PolicyKey
from observe.events import DatapathEvent, EventBatch, EventType

SLOT = EndpointSlot(endpoint_id=7, ifname="lxc7", ifindex=17, ipv4="10.0.0.7", identity=300)
MAPS = ClusterMaps(ipcache={"10.0.0.8/32": 301, "0.0.0.0/0": 2},
                   cidrs={"192.0.2.0/24": 1 << 24})
ALLOW_301_TCP80 = EndpointPolicy(
    ingress_enforced=True,
    entries=frozenset({PolicyKey(Direction.INGRESS, 301, 6, 80, 80)}))


def fake() -> FakeDatapath:
    dp = FakeDatapath()
    dp.start()
    dp.sync_cluster_maps(MAPS)
    return dp


def test_fake_satisfies_the_datapath_protocol() -> None:
    dp: Datapath = FakeDatapath()
    assert dp is not None


def test_allowed_peer_and_port_pass_with_l3_l4_match() -> None:
    dp = fake()
    dp.add_endpoint(SLOT, ALLOW_301_TCP80)
    assert dp.decide(7, Direction.INGRESS, "10.0.0.8", 6, 80) == (True, MatchType.L3_L4)


@pytest.mark.parametrize("peer,proto,port", [("10.0.0.8", 6, 81), ("10.0.0.8", 17, 80),
                                             ("10.0.0.9", 6, 80)],
                         ids=["other port", "other protocol", "other peer"])
def test_anything_else_is_denied_when_ingress_is_enforced(peer: str, proto: int,
                                                          port: int) -> None:
    dp = fake()
    dp.add_endpoint(SLOT, ALLOW_301_TCP80)
    assert dp.decide(7, Direction.INGRESS, peer, proto, port) == (False, MatchType.NONE)


def test_unenforced_direction_allows_everything() -> None:
    dp = fake()
    dp.add_endpoint(SLOT, ALLOW_301_TCP80)
    assert dp.decide(7, Direction.EGRESS, "203.0.113.1", 17, 53)[0]


def test_cidr_identity_counts_as_a_peer() -> None:
    dp = fake()
    pol = EndpointPolicy(egress_enforced=True,
                         entries=frozenset({PolicyKey(Direction.EGRESS, 1 << 24, 0)}))
    dp.add_endpoint(SLOT, pol)
    assert dp.decide(7, Direction.EGRESS, "192.0.2.5", 6, 443) == (True, MatchType.L3_ONLY)
    assert not dp.decide(7, Direction.EGRESS, "198.51.100.5", 6, 443)[0]


def test_update_returns_the_number_of_writes() -> None:
    dp = fake()
    dp.add_endpoint(SLOT, EndpointPolicy())
    # one entry plus the enforcement flag
    assert dp.update_endpoint(SLOT, ALLOW_301_TCP80) == 2
    assert dp.update_endpoint(SLOT, ALLOW_301_TCP80) == 0


def test_a_full_policy_map_raises_but_the_endpoint_is_still_enforced() -> None:
    dp = FakeDatapath(max_policy=1)
    dp.start()
    big = EndpointPolicy(ingress_enforced=True, entries=frozenset(
        {PolicyKey(Direction.INGRESS, 301, 6, 80, 80),
         PolicyKey(Direction.INGRESS, 302, 6, 80, 80)}))
    with pytest.raises(MapFullError):
        dp.add_endpoint(SLOT, big)
    assert 7 in dp.attached


def test_fail_next_injects_an_error_once() -> None:
    dp = fake()
    dp.fail_next("update_endpoint")
    with pytest.raises(MapFullError):
        dp.update_endpoint(SLOT, EndpointPolicy())
    dp.update_endpoint(SLOT, EndpointPolicy())


def drop_event(src_port: int = 4000) -> DatapathEvent:
    return DatapathEvent(EventType.DROP, 1, "n", 7, Direction.INGRESS, False, 133, 0,
                         301, 300, "10.0.0.8", "10.0.0.7", 6, src_port, 80, 2, False, 60)


def test_events_reach_the_handler_as_one_batch_per_poll() -> None:
    dp = fake()
    got: list[EventBatch] = []
    dp.set_batch_handler(got.append)
    events = [drop_event(4000), drop_event(4001)]
    for ev in events:
        dp.inject_event(ev)
    assert dp.poll_events(0) == 2
    (batch,) = got
    assert batch.events() == events
    assert dp.poll_events(0) == 0 and len(got) == 1   # nothing pending: no empty batch


def test_a_failing_handler_does_not_stop_the_polling() -> None:
    dp = fake()

    def boom(batch: EventBatch) -> None:
        raise RuntimeError("boom")
    dp.set_batch_handler(boom)
    dp.inject_event(drop_event())
    assert dp.poll_events(0) == 1


def test_without_a_handler_events_are_read_and_dropped() -> None:
    dp = fake()
    dp.inject_event(drop_event())
    assert dp.poll_events(0) == 1
    got: list[EventBatch] = []
    dp.set_batch_handler(got.append)
    assert dp.poll_events(0) == 0 and got == []


def test_calls_are_recorded_in_order() -> None:
    dp = fake()
    dp.add_endpoint(SLOT, EndpointPolicy())
    dp.remove_endpoint(7)
    assert dp.call_names() == ["start", "sync_cluster_maps", "add_endpoint",
                               "remove_endpoint"]
    assert 7 not in dp.attached


def test_pinned_endpoints_are_reported_for_reconciliation() -> None:
    dp = FakeDatapath(pinned=[SLOT])
    dp.start()
    assert dp.pinned_endpoints() == [SLOT]
