"""A real in-process Observer server (observe.h2server) on a temporary unix socket,
read by grpcio clients."""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from core.errors import MembraneError
from observe.events import EventType
from observe.flow import flow_from_event
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.gen.relay import relay_pb2 as rpb
from observe.ring import FlowObserver
from observe.h2server import H2GrpcServer
from observe.server import observer_methods, serve_unix
from observe.stream import MAX_FILTER_VALUES, MAX_FILTERS, filter_limit_problem
from observe.tls import serve_tcp_with_tls
from tests.unit.test_observe_flow import META, TS, event


def make_flow(i: int, **kw: object) -> fpb.Flow:
    """Flow number i, i milliseconds after TS; source port i so tests can tell them apart."""
    return flow_from_event(event(timestamp_ns=TS + i * 1_000_000, src_port=1000 + i, **kw),
                           META)


class Served:
    def __init__(self, observer: FlowObserver, socket: str, server: H2GrpcServer) -> None:
        self.observer = observer
        self.socket = socket
        self.server = server
        self.channel = grpc.insecure_channel("unix:" + socket)
        self.stub = opb_grpc.ObserverStub(self.channel)


@pytest.fixture
def served() -> Iterator[Served]:
    # A short path: unix socket paths are limited to 108 bytes.
    tmp = tempfile.mkdtemp(prefix="mbo-", dir="/tmp")
    socket = str(Path(tmp) / "agent.sock")
    observer = FlowObserver("node1", capacity=64, meta=META)
    server = serve_unix(observer_methods(observer), socket)
    s = Served(observer, socket, server)
    try:
        yield s
    finally:
        s.channel.close()
        server.stop()
        observer.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def ports(responses: list[opb.GetFlowsResponse]) -> list[int]:
    return [r.flow.l4.TCP.source_port - 1000 for r in responses if r.HasField("flow")]


def fill(s: Served, n: int, **kw: object) -> None:
    for i in range(n):
        s.observer.add_flow(make_flow(i, **kw))


def test_get_flows_returns_the_last_n_oldest_first(served: Served) -> None:
    fill(served, 10)
    got = list(served.stub.GetFlows(opb.GetFlowsRequest(number=3), timeout=5))
    assert ports(got) == [7, 8, 9]
    assert all(r.node_name == "node1" for r in got)


def test_get_flows_with_first_returns_the_oldest_n(served: Served) -> None:
    fill(served, 10)
    got = list(served.stub.GetFlows(opb.GetFlowsRequest(number=3, first=True), timeout=5))
    assert ports(got) == [0, 1, 2]


def test_get_flows_without_a_number_returns_everything_held(served: Served) -> None:
    fill(served, 5)
    assert ports(list(served.stub.GetFlows(opb.GetFlowsRequest(), timeout=5))) == [0, 1, 2, 3, 4]


def test_filters_apply_before_the_count(served: Served) -> None:
    fill(served, 6)
    served.observer.add_flow(make_flow(6, type=EventType.POLICY_VERDICT, allowed=True,
                                       drop_reason=0))
    fill(served, 3)   # newer drops after the one forwarded flow
    req = opb.GetFlowsRequest(number=1, whitelist=[fpb.FlowFilter(verdict=[fpb.FORWARDED])])
    assert ports(list(served.stub.GetFlows(req, timeout=5))) == [6]


def test_the_deny_list_removes_flows(served: Served) -> None:
    fill(served, 4)
    req = opb.GetFlowsRequest(blacklist=[fpb.FlowFilter(source_port=["1001", "1002"])])
    assert ports(list(served.stub.GetFlows(req, timeout=5))) == [0, 3]


def test_since_and_until_bound_the_flows_by_time(served: Served) -> None:
    fill(served, 10)
    req = opb.GetFlowsRequest()
    req.since.FromNanoseconds(TS + 3_000_000)
    req.until.FromNanoseconds(TS + 5_000_000)
    assert ports(list(served.stub.GetFlows(req, timeout=5))) == [3, 4, 5]


def test_a_bad_filter_is_invalid_argument(served: Served) -> None:
    req = opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_ip=["nope"])])
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(req, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nope" in err.value.details()


def test_100k_cidrs_in_a_filter_are_refused_at_once(served: Served) -> None:
    # Unbounded, each flow took ~18 ms to filter against them under the GIL.
    cidrs = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}/32" for i in range(100_000)]
    req = opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_ip=cidrs)])
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(req, timeout=10))
    assert time.monotonic() - started < 2
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {MAX_FILTER_VALUES} values" in err.value.details()


@pytest.mark.parametrize("request_", [
    opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_pod=["a/"])] * (MAX_FILTERS + 1)),
    opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_pod=["a/"])] * MAX_FILTERS,
                        blacklist=[fpb.FlowFilter(source_pod=["b/"])]),
    opb.GetFlowsRequest(blacklist=[fpb.FlowFilter(source_label=["k=" + "v" * 70_000])]),
], ids=["too many filters", "too many counting both lists", "too many bytes"])
def test_filters_over_a_limit_are_invalid_argument_naming_it(
        served: Served, request_: opb.GetFlowsRequest) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(request_, timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most" in err.value.details()


def test_filters_at_the_limits_are_served(served: Served) -> None:
    fill(served, 3)
    # Exactly at the value limit: 63 deny-list values and 961 in the allow-list.
    values = [f"10.0.{i // 256}.{i % 256}" for i in range(MAX_FILTER_VALUES - MAX_FILTERS)]
    req = opb.GetFlowsRequest(
        whitelist=[fpb.FlowFilter(source_ip=values + ["0.0.0.0/0"])],
        blacklist=[fpb.FlowFilter(source_pod=["nobody/"])] * (MAX_FILTERS - 1))
    assert filter_limit_problem(req) is None
    assert len(list(served.stub.GetFlows(req, timeout=5))) == 3


def test_first_with_follow_is_invalid_argument(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(opb.GetFlowsRequest(first=True, follow=True), timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _reader(call: Iterator[opb.GetFlowsResponse], out: queue.Queue[object]) -> None:
    try:
        for resp in call:
            out.put(resp)
    except grpc.RpcError as err:
        out.put(err)
    out.put(None)


def test_a_follower_receives_a_new_flow_within_a_second(served: Served) -> None:
    fill(served, 3)
    call = served.stub.GetFlows(opb.GetFlowsRequest(follow=True))
    got: queue.Queue[object] = queue.Queue()
    threading.Thread(target=_reader, args=(call, got), daemon=True).start()
    time.sleep(0.2)   # the stream is open and waiting
    served.observer.on_event(event(src_port=1042))
    served.observer.start()
    first = got.get(timeout=1.0)
    assert isinstance(first, opb.GetFlowsResponse)
    assert ports([first]) == [42]   # follow without a number: only new flows
    call.cancel()


def test_follow_with_last_n_sends_history_first_then_new_flows(served: Served) -> None:
    fill(served, 5)
    call = served.stub.GetFlows(opb.GetFlowsRequest(follow=True, number=2))
    got: queue.Queue[object] = queue.Queue()
    threading.Thread(target=_reader, args=(call, got), daemon=True).start()
    history = [got.get(timeout=2), got.get(timeout=2)]
    served.observer.add_flow(make_flow(9))
    assert ports(history + [got.get(timeout=2)]) == [3, 4, 9]  # type: ignore[list-item]
    call.cancel()


def test_cancelling_a_follow_ends_the_stream_cleanly_and_frees_the_server(
        served: Served) -> None:
    call = served.stub.GetFlows(opb.GetFlowsRequest(follow=True))
    got: queue.Queue[object] = queue.Queue()
    threading.Thread(target=_reader, args=(call, got), daemon=True).start()
    time.sleep(0.2)
    call.cancel()
    err = got.get(timeout=2)
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.CANCELLED
    # The handler returned: more streams than workers still get served.
    for _ in range(10):
        c = served.stub.GetFlows(opb.GetFlowsRequest(follow=True))
        c.cancel()
    fill(served, 1)
    assert ports(list(served.stub.GetFlows(opb.GetFlowsRequest(number=1), timeout=5))) == [0]


def test_a_follower_that_falls_behind_a_flooded_ring_gets_lost_events(served: Served) -> None:
    obs = FlowObserver("node1", capacity=4, meta=META)
    sock = served.socket + ".tiny"
    server = serve_unix(observer_methods(obs), sock)
    channel = grpc.insecure_channel("unix:" + sock)
    try:
        call = opb_grpc.ObserverStub(channel).GetFlows(opb.GetFlowsRequest(follow=True))
        got: queue.Queue[object] = queue.Queue()
        threading.Thread(target=_reader, args=(call, got), daemon=True).start()
        time.sleep(0.2)
        obs.add_flow(make_flow(0))
        assert ports([got.get(timeout=2)]) == [0]  # type: ignore[list-item]
        # Flood while holding the ring's lock: the follower cannot read until all 100
        # are in, so 96 are overwritten under it.
        with obs.ring._cond:
            for i in range(1, 101):
                obs.add_flow(make_flow(i))
        lost = got.get(timeout=2)
        assert isinstance(lost, opb.GetFlowsResponse) and lost.HasField("lost_events")
        assert lost.lost_events.source == fpb.HUBBLE_RING_BUFFER
        assert lost.lost_events.num_events_lost == 96
        assert ports([got.get(timeout=2) for _ in range(4)]) == [97, 98, 99, 100]  # type: ignore[misc]
        call.cancel()
        assert obs.status().lost["HUBBLE_RING_BUFFER"] == 96
    finally:
        channel.close()
        server.stop(None)


def test_kernel_and_queue_losses_are_in_the_stream_between_the_flows(served: Served) -> None:
    fill(served, 2)
    served.observer.report_lost("kernel", 7)
    served.observer.add_flow(make_flow(2))
    got = list(served.stub.GetFlows(opb.GetFlowsRequest(number=10), timeout=5))
    kinds = [r.WhichOneof("response_types") for r in got]
    assert kinds == ["flow", "flow", "lost_events", "flow"]
    assert got[2].lost_events.source == fpb.PERF_EVENT_RING_BUFFER
    assert got[2].lost_events.num_events_lost == 7


def test_a_lost_notice_passes_every_filter(served: Served) -> None:
    served.observer.report_lost("queue", 3)
    req = opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_pod=["nobody/"])])
    got = list(served.stub.GetFlows(req, timeout=5))
    assert [r.WhichOneof("response_types") for r in got] == ["lost_events"]


def test_server_status_reports_the_ring(served: Served) -> None:
    fill(served, 70)   # capacity 64
    served.observer.report_lost("kernel", 5)
    st = served.stub.ServerStatus(opb.ServerStatusRequest(), timeout=5)
    assert (st.num_flows, st.max_flows, st.seen_flows) == (64, 64, 70)
    assert st.uptime_ns > 0 and st.version
    assert (st.num_connected_nodes.value, st.num_unavailable_nodes.value) == (1, 0)


def test_get_nodes_lists_this_node_as_connected(served: Served) -> None:
    fill(served, 2)
    (node,) = served.stub.GetNodes(opb.GetNodesRequest(), timeout=5).nodes
    assert node.name == "node1" and node.state == rpb.NODE_CONNECTED
    assert (node.num_flows, node.max_flows) == (2, 64)


def test_a_tcp_listener_without_certificates_refuses_to_start() -> None:
    with pytest.raises(MembraneError, match="--tls-cert"):
        serve_tcp_with_tls(FlowObserver("n"), "127.0.0.1:0", None, None, None)


def test_a_tcp_listener_without_a_client_ca_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("cert")
    (tmp_path / "k.pem").write_text("key")
    with pytest.raises(MembraneError, match="client CA"):
        serve_tcp_with_tls(FlowObserver("n"), "127.0.0.1:0", tmp_path / "c.pem",
                           tmp_path / "k.pem", None)


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MembraneError, match=str(tmp_path / "missing.pem")):
        serve_tcp_with_tls(FlowObserver("n"), "127.0.0.1:0", tmp_path / "missing.pem",
                           tmp_path / "k.pem", tmp_path / "ca.pem")
