"""The flow ring and FlowObserver: capacity, overwrite, lost accounting, followers."""

from __future__ import annotations

import threading
import time

import pytest

from observe.events import EventBatch, EventType
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.encoder import Wire
from observe.ring import KERNEL, QUEUE, RING, FlowObserver, FlowRing, lost_source
from tests.unit.test_observe_flow import META, event


def entry(i: int) -> opb.GetFlowsResponse:
    return opb.GetFlowsResponse(flow=fpb.Flow(Summary=str(i)), node_name="n")


def responses(entries: list[Wire] | list[opb.GetFlowsResponse]
              ) -> list[opb.GetFlowsResponse]:
    """What a follower receives: Wires as parsed by a client."""
    return [e.response() if isinstance(e, Wire) else e for e in entries]


def summaries(entries: list[Wire] | list[opb.GetFlowsResponse]) -> list[str]:
    return [e.flow.Summary for e in responses(entries)]


def test_the_default_capacity_is_4095() -> None:
    assert FlowObserver("n").ring.capacity == 4095


def test_a_ring_holds_at_most_its_capacity_and_overwrites_the_oldest() -> None:
    ring = FlowRing(3)
    for i in range(5):
        ring.append(entry(i))
    assert len(ring) == 3
    assert summaries(ring.snapshot()) == ["2", "3", "4"]


def test_a_reader_behind_the_ring_learns_how_many_it_missed() -> None:
    ring = FlowRing(4)
    for i in range(10):
        ring.append(entry(i))
    got, lost, nxt = ring.read_from(0)
    assert lost == 6
    assert summaries(got) == ["6", "7", "8", "9"]
    assert nxt == 10


def test_a_reader_in_step_misses_nothing() -> None:
    ring = FlowRing(4)
    ring.append(entry(0))
    got, lost, nxt = ring.read_from(0)
    ring.append(entry(1))
    got2, lost2, _ = ring.read_from(nxt)
    assert (lost, lost2) == (0, 0) and summaries(got + got2) == ["0", "1"]


def test_a_ring_needs_room_for_one_flow() -> None:
    with pytest.raises(ValueError):
        FlowRing(0)


def test_a_waiting_follower_wakes_when_a_flow_arrives() -> None:
    ring = FlowRing(8)
    woke = threading.Event()

    def follower() -> None:
        if ring.wait(0, timeout=5):
            woke.set()
    t = threading.Thread(target=follower)
    t.start()
    time.sleep(0.05)
    ring.append(entry(0))
    assert woke.wait(1.0)
    t.join()


def test_the_observer_turns_events_into_flows_on_its_worker_within_a_second() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.start()
    try:
        obs.on_event(event())
        deadline = time.monotonic() + 1.0
        while len(obs.ring) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        held = obs.ring.snapshot()
        assert len(held) == 1 and held[0].flow.verdict == fpb.DROPPED
        assert held[0].node_name == "node1"
        assert obs.status().seen_flows == 1
    finally:
        obs.stop()


def test_a_full_queue_counts_events_as_lost_and_says_so_in_the_ring() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META, queue_size=2)
    for _ in range(5):
        obs.on_event(event())        # no worker running: the queue fills
    assert obs.status().lost[QUEUE] == 3
    obs.process_pending()
    obs._flush_queue_lost()
    kinds = [e.WhichOneof("response_types") for e in obs.ring.snapshot()]
    lost = [e.lost_events for e in obs.ring.snapshot() if e.HasField("lost_events")]
    assert kinds.count("flow") == 2
    assert [(fpb.LostEventSource.Name(x.source), x.num_events_lost) for x in lost] == [
        (QUEUE, 3)]


def test_on_event_never_blocks_even_when_the_queue_is_full() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META, queue_size=1)
    start = time.monotonic()
    for _ in range(1000):
        obs.on_event(event())
    assert time.monotonic() - start < 0.5


def test_kernel_losses_are_counted_and_appear_in_the_ring() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.report_lost("kernel", 42)
    assert obs.status().lost[KERNEL] == 42
    (notice,) = obs.ring.snapshot()
    assert notice.lost_events.source == fpb.PERF_EVENT_RING_BUFFER
    assert notice.lost_events.num_events_lost == 42


def test_ring_losses_are_counted_without_a_notice_in_the_ring() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.count_ring_lost(5)
    assert obs.status().lost[RING] == 5
    assert obs.ring.snapshot() == []


def test_an_unknown_lost_source_is_refused() -> None:
    with pytest.raises(ValueError):
        lost_source("somewhere")


def test_status_reports_held_capacity_and_seen() -> None:
    obs = FlowObserver("node1", capacity=2, meta=META)
    for _ in range(3):
        obs.on_event(event())
    obs.process_pending()
    st = obs.status()
    assert (st.num_flows, st.max_flows, st.seen_flows) == (2, 2, 3)
    assert st.node == "node1" and st.uptime_ns > 0


def test_listeners_hear_every_flow_and_every_loss() -> None:
    heard: list[str] = []

    class Listener:
        def flow(self, flow: fpb.Flow) -> None:
            heard.append("flow")

        def lost(self, source: str, n: int) -> None:
            heard.append(f"{source}:{n}")

    obs = FlowObserver("node1", capacity=4, meta=META, queue_size=1, listeners=[Listener()])
    obs.on_event(event())
    obs.on_event(event())
    obs.process_pending()
    assert heard == [f"{QUEUE}:1", "flow"]


def test_a_broken_event_is_skipped_and_the_worker_goes_on() -> None:
    obs = FlowObserver("node1", capacity=4, meta=META)
    obs.on_event(event(src_ip="not an ip"))
    obs.on_event(event())
    obs.process_pending()
    (flow,) = obs.ring.snapshot()
    assert flow.flow.IP.source == event().src_ip


def test_free_form_source_names_map_to_where_the_loss_happened() -> None:
    assert lost_source("kernel ring buffer") == KERNEL
    assert lost_source("flow ring") == RING
    assert lost_source("OBSERVER_EVENTS_QUEUE") == QUEUE


def test_a_loss_from_an_unknown_source_is_counted_not_raised() -> None:
    obs = FlowObserver("node1", capacity=4, meta=META)
    obs.report_lost("somewhere else", 2)
    assert obs.status().lost["UNKNOWN_LOST_EVENT_SOURCE"] == 2


def test_status_reads_as_a_dict_too() -> None:
    obs = FlowObserver("node1", capacity=4, meta=META)
    obs.add_flow(fpb.Flow())
    st = obs.status()
    assert st.get("seen") == 1 and st.to_dict()["max_flows"] == 4
    assert st.get("lost") == {KERNEL: 0, QUEUE: 0, RING: 0}


# -- batches (FlowObserver.on_events): compact records, flows built when read -----------

def batch(n: int, start: int = 0, **kw: object) -> EventBatch:
    return EventBatch.of_events([event(src_port=start + i, **kw) for i in range(n)])


def ports_of(entries: list[Wire] | list[opb.GetFlowsResponse]) -> list[int]:
    return [e.flow.l4.TCP.source_port for e in responses(entries) if e.HasField("flow")]


def test_a_batch_goes_into_the_ring_unbuilt_and_is_built_when_read() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.on_events(batch(3))
    assert obs.process_pending() == 3
    assert obs.status().seen_flows == 3 and len(obs.ring) == 3
    assert all(src is not None for src in obs.ring._src[:3])    # nothing built yet
    held = obs.ring.snapshot()
    assert ports_of(held) == [0, 1, 2]
    assert held[0].node_name == "node1" and held[0].flow.verdict == fpb.DROPPED
    assert held[0].time == held[0].flow.time
    assert all(src is None for src in obs.ring._src[:3])        # built once, kept


def test_the_worker_takes_batches_within_a_second() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.start()
    try:
        obs.on_events(batch(2))
        deadline = time.monotonic() + 1.0
        while obs.status().seen_flows < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ports_of(obs.ring.snapshot()) == [0, 1]
    finally:
        obs.stop()


def test_a_batch_larger_than_the_room_left_is_cut_and_the_rest_counted_lost() -> None:
    obs = FlowObserver("node1", capacity=64, meta=META, queue_size=5)
    obs.on_events(batch(3))
    obs.on_events(batch(4, start=10))      # 2 fit, 2 lost
    obs.on_events(batch(2, start=20))      # none fit
    assert obs.status().lost[QUEUE] == 4
    assert obs.process_pending() == 5
    obs._flush_queue_lost()
    # As with single events: the overflow is announced before the next flows processed.
    kinds = [e.WhichOneof("response_types") for e in obs.ring.snapshot()]
    assert kinds == ["lost_events"] + ["flow"] * 5
    assert ports_of(obs.ring.snapshot()) == [0, 1, 2, 10, 11]
    assert obs.status().seen_flows == 5
    obs.on_events(batch(5, start=30))      # room again once processed
    assert obs.status().lost[QUEUE] == 4


def test_a_batch_wraps_the_ring_and_a_reader_behind_learns_how_many_it_missed() -> None:
    obs = FlowObserver("node1", capacity=8, meta=META)
    obs.on_events(batch(5))
    obs.process_pending()
    got, lost, nxt = obs.ring.read_from(0)
    assert ports_of(got) == [0, 1, 2, 3, 4] and lost == 0 and nxt == 5
    obs.on_events(batch(6, start=5))        # wraps: 3 at the end, 3 at the start
    obs.process_pending()
    assert ports_of(obs.ring.snapshot()) == list(range(3, 11))
    obs.on_events(batch(20, start=11))      # more than the ring holds at once
    obs.process_pending()
    got, lost, nxt = obs.ring.read_from(nxt)
    assert lost == 31 - 8 - 5 and ports_of(got) == list(range(23, 31)) and nxt == 31
    assert obs.status().seen_flows == 31


def test_lost_notices_and_flows_stay_in_order_with_batches() -> None:
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.on_events(batch(2))
    obs.process_pending()
    obs.report_lost("kernel", 7)
    obs.on_events(batch(1, start=5))
    obs.process_pending()
    kinds = [e.WhichOneof("response_types") for e in obs.ring.snapshot()]
    assert kinds == ["flow", "flow", "lost_events", "flow"]


def test_listeners_count_every_flow_of_a_batch() -> None:
    counted: list[tuple[int, int]] = []
    heard: list[int] = []

    class Counting:
        def flow(self, flow: fpb.Flow) -> None:
            raise AssertionError("a counting listener is told counts")

        def flow_count(self, flow: fpb.Flow, n: int) -> None:
            counted.append((flow.event_type.type, n))

        def lost(self, source: str, n: int) -> None:
            pass

    class Plain:
        def flow(self, flow: fpb.Flow) -> None:
            heard.append(flow.l4.TCP.source_port)

        def lost(self, source: str, n: int) -> None:
            pass

    obs = FlowObserver("node1", capacity=4, meta=META, listeners=[Counting(), Plain()])
    mixed = EventBatch.of_events(
        [event(src_port=i) for i in range(5)]
        + [event(type=EventType.POLICY_VERDICT, src_port=9) for _ in range(3)])
    obs.on_events(mixed)
    obs.process_pending()
    assert sorted(counted) == [(1, 5), (9, 3)]
    assert heard == [0, 1, 2, 3, 4, 9, 9, 9]


def test_a_record_that_cannot_become_a_flow_is_skipped_by_readers() -> None:
    obs = FlowObserver("node1", capacity=8, meta=META)
    obs.on_events(EventBatch.of_events([event(src_port=1), event(src_ip="not an ip"),
                                        event(src_port=3)]))
    obs.process_pending()
    assert ports_of(obs.ring.snapshot()) == [1, 3]
    got, lost, _ = obs.ring.read_from(0)
    assert ports_of(got) == [1, 3] and lost == 0


def test_held_entries_build_on_access_by_index_or_slice() -> None:
    obs = FlowObserver("node1", capacity=8)
    obs.on_events(EventBatch.of_events([event(src_port=p) for p in range(4)]))
    obs.process_pending()
    held = obs.ring.held()
    last = held[-1]
    assert last is not None and last.response().flow.l4.TCP.source_port == 3
    assert ports_of([e for e in held[1:3] if e is not None]) == [1, 2]
    with pytest.raises(IndexError):
        held[4]
