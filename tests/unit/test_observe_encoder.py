"""The flow encoder: wire bytes a client parses into exactly the flow the builder makes,
each kind of flow built once, rebuilt when the agent's metadata changes."""

from __future__ import annotations

import random

import pytest

from observe.encoder import FlowEncoder, Wire
from observe.events import EventBatch, EventType
from observe.flow import flow_from_event
from observe.gen.observer import observer_pb2 as opb
from observe.metadata import PeerInfo, StaticMetadata
from observe.ring import FlowObserver
from observe.stream import FlowStream
from observe.wire import TimestampEncoder, _varint_slow, varint
from tests.unit.test_observe_flow import META, TS, event


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**21, 2**28 - 1, 2**28,
                                   999_999_999, 1_706_259_423, 2**42, 2**63])
def test_varints_are_protobufs(value: int) -> None:
    assert varint(value) == _varint_slow(value)


def test_timestamps_are_protobufs_for_any_nanosecond() -> None:
    enc = TimestampEncoder()
    rng = random.Random(7)
    for ns in [0, 1, 10**9, TS, *(rng.randrange(0, 2**62) for _ in range(500))]:
        want = opb.GetFlowsResponse(time={"seconds": ns // 10**9, "nanos": ns % 10**9}).time
        assert enc.encode(ns) == want.SerializeToString()


@pytest.mark.parametrize("kw", [
    {}, {"type": EventType.POLICY_VERDICT, "allowed": True, "drop_reason": 0, "match_type": 2},
    {"protocol": 17, "tcp_flags": 0}, {"protocol": 1, "dst_port": 8 << 8},
    {"dst_ip": "1.1.1.1", "dst_identity": 0}, {"type": EventType.TRACE, "allowed": True,
                                               "drop_reason": 0, "is_reply": True},
], ids=["drop", "verdict", "udp", "icmp", "world", "trace reply"])
def test_the_wire_parses_into_the_flow_the_builder_makes(kw: dict[str, object]) -> None:
    ev = event(**kw)
    wire = FlowEncoder("node1", META).encode(ev, EventBatch.of_events([ev]))
    resp = wire.response()
    assert resp.flow == flow_from_event(ev, META)
    assert resp.node_name == "node1" and resp.time == resp.flow.time
    assert wire.time_ns == TS and wire.is_flow


def test_each_kind_of_flow_is_built_once_and_only_its_time_changes() -> None:
    enc = FlowEncoder("node1", META)
    events = [event(timestamp_ns=TS + i) for i in range(50)]
    batch = EventBatch.of_events(events)
    wires = [enc.encode(ev, batch) for ev in events]
    assert enc.built == 1
    assert len({w.kind for w in wires}) == 1
    assert [w.response().flow.time.ToNanoseconds() for w in wires] == [TS + i for i in range(50)]


def test_changed_metadata_is_in_flows_built_after_invalidate() -> None:
    meta = StaticMetadata(dict(META.peers))
    enc = FlowEncoder("node1", meta)
    ev = event()
    batch = EventBatch.of_events([ev])
    assert enc.encode(ev, batch).response().flow.source.pod_name.startswith("not-frontend")
    meta.peers["10.1.0.2"] = PeerInfo(84671, "default", "renamed", ["k8s:app=x"])
    assert enc.encode(ev, batch).response().flow.source.pod_name.startswith("not-frontend")
    enc.invalidate()
    assert enc.encode(ev, batch).response().flow.source.pod_name == "renamed"


def test_a_lost_notice_is_a_wire_without_a_kind_and_passes_every_filter() -> None:
    obs = FlowObserver("node1", capacity=8, meta=META)
    obs.report_lost("kernel", 3)
    obs.on_event(event())
    obs.process_pending()
    stream = FlowStream(obs, opb.GetFlowsRequest(
        whitelist=[{"source_label": ["app=nothing-like-it"]}]))
    got = list(stream.entries())
    assert [w.is_flow for w in got] == [False]
    assert Wire.of_response(got[0].response()).data == got[0].data


def test_filters_answer_once_per_kind_of_flow() -> None:
    obs = FlowObserver("node1", capacity=64, meta=META)
    obs.on_events(EventBatch.of_events([event(timestamp_ns=TS + i) for i in range(40)]))
    obs.process_pending()
    stream = FlowStream(obs, opb.GetFlowsRequest(whitelist=[{"verdict": ["DROPPED"]}]))
    assert len(list(stream.entries())) == 40
    assert len(stream._memo) == 1
