"""The Observer's own gRPC server (observe.h2server) at the protocol's edges, against
grpcio clients and a raw HTTP/2 client (the h2 library): cancellation, deadlines, bad
requests, error trailers, a slow client's flow control, keepalive pings."""

from __future__ import annotations

import queue
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import pytest

from cli.observe import observer_target
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.h2server import H2GrpcServer, encode_message, frame, parse_timeout
from observe.ring import FlowObserver
from observe.rpc import Call, Method
from observe.server import SERVICE, observer_methods, observer_socket, passthrough
from observe.server import serve_unix
from tests.unit.test_observe_server import make_flow


@pytest.fixture
def tmp() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mbt-", dir="/tmp"))   # unix paths are short
    yield d
    shutil.rmtree(d, ignore_errors=True)


def wait_until(check: Any, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.02)
    return bool(check())


def streams(server: H2GrpcServer) -> int:
    return sum(len(c.streams) for c in server.connections)


def handler_threads() -> int:
    return sum(t.name.startswith("grpc/") and t.is_alive() for t in threading.enumerate())


class Served:
    def __init__(self, tmp: Path, observer: FlowObserver, extra: list[Method] = []) -> None:
        self.observer = observer
        self.socket = str(tmp / "observer.sock")
        self.server = serve_unix(observer_methods(observer) + extra, self.socket)
        self.channel = grpc.insecure_channel("unix:" + self.socket)
        self.stub = opb_grpc.ObserverStub(self.channel)

    def close(self) -> None:
        self.channel.close()
        self.server.stop()
        self.observer.stop()


@pytest.fixture
def served(tmp: Path) -> Iterator[Served]:
    s = Served(tmp, FlowObserver("node1", capacity=64))
    yield s
    s.close()


def _slow(request: Any, call: Call) -> bytes:
    time.sleep(3)
    return b""


def _fails(request: Any, call: Call) -> bytes:
    call.abort(grpc.StatusCode.FAILED_PRECONDITION, "100% wrong: é\nnext line")


def test_a_cancelled_follow_ends_its_handler_and_leaves_the_ring(served: Served) -> None:
    before = handler_threads()
    call = served.stub.GetFlows(opb.GetFlowsRequest(follow=True))
    # The stream is counted when its request arrives, its handler thread a moment later.
    assert wait_until(lambda: streams(served.server) == 1 and handler_threads() == before + 1)
    call.cancel()
    assert wait_until(lambda: streams(served.server) == 0 and handler_threads() == before,
                      2.0)
    served.observer.add_flow(make_flow(1))
    got = list(served.stub.GetFlows(opb.GetFlowsRequest(number=1), timeout=5))
    assert [r.flow.l4.TCP.source_port for r in got] == [1001]


def test_a_follow_ends_with_deadline_exceeded_when_its_deadline_passes(
        served: Served) -> None:
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        list(served.stub.GetFlows(opb.GetFlowsRequest(follow=True), timeout=0.5))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 2
    assert wait_until(lambda: streams(served.server) == 0)


def test_a_unary_call_past_its_deadline_is_answered_without_waiting_for_the_handler(
        tmp: Path) -> None:
    s = Served(tmp, FlowObserver("node1"), [Method("/test.Slow/Call", bytes, unary=_slow)])
    try:
        call = s.channel.unary_unary("/test.Slow/Call", request_serializer=passthrough,
                                     response_deserializer=passthrough)
        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 1.5
    finally:
        s.close()


@pytest.mark.parametrize("request_bytes,code,words", [
    (opb.GetFlowsRequest(whitelist=[fpb.FlowFilter(source_ip=["not-an-ip"])])
     .SerializeToString(), grpc.StatusCode.INVALID_ARGUMENT, "bad filter"),
    (opb.GetFlowsRequest(whitelist=[fpb.FlowFilter()] * 65).SerializeToString(),
     grpc.StatusCode.INVALID_ARGUMENT, "at most 64"),
    (opb.GetFlowsRequest(first=True, follow=True).SerializeToString(),
     grpc.StatusCode.INVALID_ARGUMENT, "cannot be combined"),
    (b"\xff\xff\xff", grpc.StatusCode.INTERNAL, "cannot parse"),
], ids=["a filter that cannot be built", "too many filters", "first with follow",
        "bytes that are no request"])
def test_a_bad_request_gets_its_status_and_a_message(served: Served, request_bytes: bytes,
                                                     code: grpc.StatusCode,
                                                     words: str) -> None:
    call = served.channel.unary_stream(f"/{SERVICE}/GetFlows",
                                       request_serializer=passthrough,
                                       response_deserializer=passthrough)
    with pytest.raises(grpc.RpcError) as err:
        list(call(request_bytes, timeout=5))
    assert err.value.code() == code and words in str(err.value.details())


def test_methods_not_served_are_unimplemented(served: Served) -> None:
    call = served.channel.unary_stream(f"/{SERVICE}/GetAgentEvents",
                                       request_serializer=passthrough,
                                       response_deserializer=passthrough)
    with pytest.raises(grpc.RpcError) as err:
        list(call(b"", timeout=5))
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_an_error_message_arrives_whole_through_percent_encoding(tmp: Path) -> None:
    s = Served(tmp, FlowObserver("node1"), [Method("/test.Fails/Call", bytes, unary=_fails)])
    try:
        call = s.channel.unary_unary("/test.Fails/Call", request_serializer=passthrough,
                                     response_deserializer=passthrough)
        with pytest.raises(grpc.RpcError) as err:
            call(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert err.value.details() == "100% wrong: é\nnext line"
    finally:
        s.close()


def test_wire_helpers() -> None:
    assert parse_timeout("250m") == 0.25 and parse_timeout("2S") == 2.0
    assert parse_timeout("") is None and parse_timeout("5x") is None
    assert encode_message("a%b é") == "a%25b %C3%A9"
    assert frame([b"ab", b""]) == b"\x00\x00\x00\x00\x02ab\x00\x00\x00\x00\x00"


# -- a raw HTTP/2 client ------------------------------------------------------------

class RawClient:
    """An h2 client on the socket: full control of windows and pings."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.settimeout(5)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.send()
        self.data = bytearray()
        self.ended = False
        self.pings = 0
        self.unacked: list[tuple[int, int]] = []     # (bytes, stream) read but not acked

    def send(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def get_flows(self, request: opb.GetFlowsRequest) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                     (":path", f"/{SERVICE}/GetFlows"),
                                     (":authority", "localhost"),
                                     ("content-type", "application/grpc"),
                                     ("te", "trailers")])
        self.conn.send_data(sid, frame([request.SerializeToString()]), end_stream=True)
        self.send()
        return sid

    def read(self, seconds: float, ack: bool = True) -> None:
        """Reads for `seconds`; with ack, consumed data opens the windows again."""
        if ack:
            self.read_acked()
            self.send()
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self.ended:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                continue
            if not chunk:
                self.ended = True
                break
            for event in self.conn.receive_data(chunk):
                if isinstance(event, h2.events.DataReceived):
                    self.data += event.data or b""
                    self.unacked.append((event.flow_controlled_length or 0,
                                         event.stream_id or 0))
                    if ack:
                        self.read_acked()
                elif isinstance(event, h2.events.PingReceived):
                    self.pings += 1
                elif isinstance(event, (h2.events.StreamEnded, h2.events.ConnectionTerminated)):
                    self.ended = True
            self.send()

    def read_acked(self) -> None:
        for size, sid in self.unacked:
            self.conn.acknowledge_received_data(size, sid)
        self.unacked.clear()

    def messages(self) -> list[opb.GetFlowsResponse]:
        out, at = [], 0
        while at + 5 <= len(self.data):
            n = int.from_bytes(self.data[at + 1:at + 5], "big")
            if at + 5 + n > len(self.data):
                break                   # the rest of it has not arrived yet
            out.append(opb.GetFlowsResponse.FromString(bytes(self.data[at + 5:at + 5 + n])))
            at += 5 + n
        return out

    def close(self) -> None:
        self.sock.close()


def test_a_slow_client_makes_its_follower_fall_behind_and_never_blocks_the_ring(
        tmp: Path) -> None:
    s = Served(tmp, FlowObserver("node1", capacity=256))
    client = RawClient(s.socket)       # a client that reads nothing (windows of 65,535)
    try:
        client.get_flows(opb.GetFlowsRequest(follow=True))
        assert wait_until(lambda: streams(s.server) == 1)
        start = time.monotonic()
        for i in range(20_000):                      # ~6 MB: far past every window
            s.observer.add_flow(make_flow(i % 1000))
        assert time.monotonic() - start < 30          # the writer never waited on it
        client.read(1.0, ack=False)
        assert len(client.data) <= 65535              # the window was respected
        client.read(3.0)                              # now it reads: the follower resumes
        got = client.messages()
        flows = sum(r.HasField("flow") for r in got)
        lost = sum(r.lost_events.num_events_lost for r in got if r.HasField("lost_events"))
        assert lost > 0 and any(r.lost_events.source == fpb.HUBBLE_RING_BUFFER
                                for r in got if r.HasField("lost_events"))
        assert flows + lost == 20_000                # the books balance
    finally:
        client.close()
        s.close()


def test_an_idle_connection_is_pinged_and_one_that_never_answers_is_closed(
        tmp: Path) -> None:
    observer = FlowObserver("node1")
    path = str(tmp / "keepalive.sock")
    server = H2GrpcServer(observer_methods(observer), keepalive_s=0.2,
                          keepalive_timeout_s=0.5)
    server.start()
    server.add_unix(path)
    try:
        answering = RawClient(path)
        answering.read(1.5)                  # h2 answers each ping
        assert answering.pings >= 2 and not answering.ended
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(path)
        silent.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)[:3] +
                       b"\x04\x00\x00\x00\x00\x00")          # an empty SETTINGS
        assert wait_until(lambda: len(server.connections) == 2, 2)
        assert wait_until(lambda: len(server.connections) == 1, 3)   # the silent one
        answering.close()
        silent.close()
    finally:
        server.stop()
        observer.stop()


def test_stop_ends_a_follow_and_closes_the_socket(tmp: Path) -> None:
    s = Served(tmp, FlowObserver("node1"))
    errors: queue.Queue[grpc.RpcError] = queue.Queue()

    def follow() -> None:
        try:
            list(s.stub.GetFlows(opb.GetFlowsRequest(follow=True)))
        except grpc.RpcError as err:
            errors.put(err)
    threading.Thread(target=follow, daemon=True).start()
    assert wait_until(lambda: streams(s.server) == 1)
    s.server.stop(grace=0.1)
    assert errors.get(timeout=5).code() in (grpc.StatusCode.UNAVAILABLE,
                                            grpc.StatusCode.CANCELLED,
                                            grpc.StatusCode.INTERNAL)
    s.channel.close()
    s.observer.stop()


def test_an_agents_api_socket_stands_for_the_observer_socket_beside_it(tmp: Path) -> None:
    agent = tmp / "agent.sock"
    assert observer_socket(agent) == str(tmp / "agent.observer.sock")
    assert observer_socket("unix://" + str(agent)) == str(tmp / "agent.observer.sock")
    assert observer_target(str(agent)) == str(agent)          # no Observer beside it
    Path(observer_socket(agent)).touch()
    assert observer_target(str(agent)) == str(tmp / "agent.observer.sock")
    assert observer_target("unix:" + str(agent)) == str(tmp / "agent.observer.sock")
    assert observer_target("10.0.0.1:4244") == "10.0.0.1:4244"
    relay = str(tmp / "relay.sock")
    assert observer_target(relay) == relay
