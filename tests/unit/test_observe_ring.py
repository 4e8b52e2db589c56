"""The flow ring and FlowObserver: capacity, overwrite, lost accounting, followers."""

from __future__ import annotations

import threading
import time

import pytest

from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb
from observe.ring import KERNEL, QUEUE, RING, FlowObserver, FlowRing, lost_source
from tests.unit.test_observe_flow import META, event


def entry(i: int) -> opb.GetFlowsResponse:
    return opb.GetFlowsResponse(flow=fpb.Flow(Summary=str(i)), node_name="n")


def summaries(entries: list[opb.GetFlowsResponse]) -> list[str]:
    return [e.flow.Summary for e in entries]


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
    assert obs.status().seen_flows == 1


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
