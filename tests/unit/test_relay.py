"""The relay over real in-process agents on unix sockets: sums, node states, flows of
every node in time order (history and follow), and a slow, dead, new or departed node
never stopping the others."""

from __future__ import annotations

import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.gen.peer import peer_pb2 as ppb
from observe.gen.peer import peer_pb2_grpc as ppb_grpc
from observe.gen.relay import relay_pb2 as rpb
from observe.relay.merge import SortBuffer, merge_histories
from observe.relay.peers import LAB_OBSERVER_SOCKET, FilePeers, Peer, PeerService, SocketPeers
from observe.relay.peers import peer_methods
from observe.relay.pool import NodePool, channel_factory
from observe.relay.server import RelayServicer, relay_methods
from observe.ring import FlowObserver
from observe.server import SERVICE, observer_methods, serve_unix
from tests.unit.test_observe_server import make_flow


class Agent:
    """One node: a FlowObserver served on a unix socket."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.socket = str(root / f"{name}.sock")
        self.observer = FlowObserver(name, capacity=64)
        self.server = serve_unix(observer_methods(self.observer), self.socket)

    @property
    def peer(self) -> Peer:
        return Peer(self.name, "unix:" + self.socket)

    def add(self, i: int, node_name: str | None = None) -> None:
        flow = make_flow(i)
        flow.node_name = node_name or self.name
        self.observer.add_flow(flow)

    def stop(self) -> None:
        self.server.stop()
        self.observer.stop()


class Relay:
    def __init__(self, root: Path, peers: list[Peer], timeout: float = 2.0) -> None:
        self.pool = NodePool(channel_factory(None))
        self.pool.update(peers)
        self.servicer = RelayServicer(self.pool, timeout=timeout,
                                      buffer=lambda: SortBuffer(max_len=1000, drain_s=0.1,
                                                                max_wait_s=0.3))
        self.socket = str(root / "relay.sock")
        self.server = serve_unix(relay_methods(self.servicer), self.socket)
        self.channel = grpc.insecure_channel("unix:" + self.socket)
        self.stub = opb_grpc.ObserverStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.server.stop()
        self.pool.close()


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mbr-", dir="/tmp"))   # short: unix socket paths
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def agents(root: Path) -> Iterator[list[Agent]]:
    made = [Agent(root, "node1"), Agent(root, "node2")]
    try:
        yield made
    finally:
        for a in made:
            a.stop()


@pytest.fixture
def relay(root: Path, agents: list[Agent]) -> Iterator[Relay]:
    r = Relay(root, [a.peer for a in agents])
    try:
        yield r
    finally:
        r.stop()


def flows_of(responses: list[opb.GetFlowsResponse]) -> list[tuple[str, int]]:
    return [(r.flow.node_name, r.flow.l4.TCP.source_port - 1000) for r in responses
            if r.HasField("flow")]


def statuses(responses: list[opb.GetFlowsResponse]) -> list[tuple[int, list[str]]]:
    return [(r.node_status.state_change, list(r.node_status.node_names)) for r in responses
            if r.HasField("node_status")]


def test_server_status_sums_the_nodes_and_counts_them(relay: Relay,
                                                      agents: list[Agent]) -> None:
    for i in range(3):
        agents[0].add(i)
    agents[1].add(0)
    st = relay.stub.ServerStatus(opb.ServerStatusRequest(), timeout=5)
    assert (st.num_flows, st.max_flows, st.seen_flows) == (4, 128, 4)
    assert (st.num_connected_nodes.value, st.num_unavailable_nodes.value) == (2, 0)


def test_get_nodes_lists_each_node_with_its_state_and_ring(relay: Relay,
                                                           agents: list[Agent]) -> None:
    agents[1].add(0)
    nodes = {n.name: n for n in relay.stub.GetNodes(opb.GetNodesRequest(), timeout=5).nodes}
    assert set(nodes) == {"node1", "node2"}
    assert all(n.state == rpb.NODE_CONNECTED for n in nodes.values())
    assert (nodes["node2"].num_flows, nodes["node2"].max_flows) == (1, 64)
    assert nodes["node1"].address == agents[0].peer.address and nodes["node1"].version


def test_history_merges_every_nodes_flows_in_time_order(relay: Relay,
                                                        agents: list[Agent]) -> None:
    for i in (0, 2, 4):
        agents[0].add(i)
    for i in (1, 3, 5):
        agents[1].add(i)
    got = list(relay.stub.GetFlows(opb.GetFlowsRequest(number=10), timeout=5))
    assert statuses(got) == [(rpb.NODE_CONNECTED, ["node1", "node2"])]
    assert flows_of(got) == [("node1", 0), ("node2", 1), ("node1", 2), ("node2", 3),
                             ("node1", 4), ("node2", 5)]


def test_number_is_per_node_and_filters_go_to_every_node(relay: Relay,
                                                         agents: list[Agent]) -> None:
    for i in range(4):
        agents[0].add(i)
        agents[1].add(10 + i)
    got = list(relay.stub.GetFlows(opb.GetFlowsRequest(number=1), timeout=5))
    assert flows_of(got) == [("node1", 3), ("node2", 13)]
    got = list(relay.stub.GetFlows(opb.GetFlowsRequest(
        whitelist=[{"source_port": ["1011"]}]), timeout=5))
    assert flows_of(got) == [("node2", 11)]


def test_a_dead_node_is_named_and_the_others_still_answer(root: Path,
                                                          agents: list[Agent]) -> None:
    dead = Peer("node3", "unix:" + str(root / "nobody.sock"))
    relay = Relay(root, [*(a.peer for a in agents), dead], timeout=1.0)
    try:
        agents[0].add(0)
        st = relay.stub.ServerStatus(opb.ServerStatusRequest(), timeout=10)
        assert (st.num_connected_nodes.value, list(st.unavailable_nodes)) == (2, ["node3"])
        nodes = {n.name: n.state for n in relay.stub.GetNodes(opb.GetNodesRequest(),
                                                               timeout=10).nodes}
        assert nodes == {"node1": rpb.NODE_CONNECTED, "node2": rpb.NODE_CONNECTED,
                         "node3": rpb.NODE_UNAVAILABLE}
        got = list(relay.stub.GetFlows(opb.GetFlowsRequest(number=5), timeout=10))
        assert flows_of(got) == [("node1", 0)]
        assert (rpb.NODE_UNAVAILABLE, ["node3"]) in statuses(got)
    finally:
        relay.stop()


class Slow(opb_grpc.ObserverServicer):
    """A node that takes far longer than the relay waits."""

    def GetFlows(self, request: Any, context: Any) -> Iterator[opb.GetFlowsResponse]:
        time.sleep(5)
        yield from ()

    def ServerStatus(self, request: Any, context: Any) -> opb.ServerStatusResponse:
        time.sleep(5)
        return opb.ServerStatusResponse()


def test_a_slow_node_delays_an_answer_by_the_timeout_at_most(root: Path,
                                                             agents: list[Agent]) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    opb_grpc.add_ObserverServicer_to_server(Slow(), server)
    server.add_insecure_port("unix:" + str(root / "slow.sock"))
    server.start()
    relay = Relay(root, [*(a.peer for a in agents),
                         Peer("slow", "unix:" + str(root / "slow.sock"))], timeout=0.5)
    try:
        agents[1].add(7)
        start = time.monotonic()
        got = list(relay.stub.GetFlows(opb.GetFlowsRequest(number=5), timeout=10))
        assert time.monotonic() - start < 3
        assert flows_of(got) == [("node2", 7)]
        assert (rpb.NODE_UNAVAILABLE, ["slow"]) in statuses(got)
        st = relay.stub.ServerStatus(opb.ServerStatusRequest(), timeout=10)
        assert list(st.unavailable_nodes) == ["slow"]
    finally:
        relay.stop()
        server.stop(None)


def follow(relay: Relay, request: opb.GetFlowsRequest
           ) -> tuple[Any, queue.Queue[opb.GetFlowsResponse]]:
    call = relay.stub.GetFlows(request)
    got: queue.Queue[opb.GetFlowsResponse] = queue.Queue()

    def read() -> None:
        try:
            for r in call:
                got.put(r)
        except grpc.RpcError:
            pass
    threading.Thread(target=read, daemon=True).start()
    return call, got


def take(got: queue.Queue[opb.GetFlowsResponse], n_flows: int, timeout: float = 5
         ) -> list[opb.GetFlowsResponse]:
    """What arrives until n_flows flows did (n_flows 0: everything within timeout)."""
    out: list[opb.GetFlowsResponse] = []
    deadline = time.monotonic() + timeout
    while (not n_flows or sum(r.HasField("flow") for r in out) < n_flows) and \
            time.monotonic() < deadline:
        try:
            out.append(got.get(timeout=0.1))
        except queue.Empty:
            pass
    return out


def test_follow_streams_every_nodes_new_flows_in_time_order(relay: Relay,
                                                            agents: list[Agent]) -> None:
    call, got = follow(relay, opb.GetFlowsRequest(follow=True))
    try:
        hello = take(got, 0, timeout=1.5)
        assert sorted(n for s, names in statuses(hello) for n in names
                      if s == rpb.NODE_CONNECTED) == ["node1", "node2"]
        agents[1].add(1)      # written first, but later in time than node1's 0
        agents[0].add(0)
        agents[0].add(2)
        assert flows_of(take(got, 3)) == [("node1", 0), ("node2", 1), ("node1", 2)]
    finally:
        call.cancel()


def test_follow_says_when_a_node_joins_leaves_or_fails(root: Path, relay: Relay,
                                                       agents: list[Agent]) -> None:
    call, got = follow(relay, opb.GetFlowsRequest(follow=True))
    newcomer = Agent(root, "node3")
    try:
        take(got, 0, timeout=1.0)
        relay.pool.update([agents[0].peer, newcomer.peer])       # node2 gone, node3 new
        events = take(got, 0, timeout=1.5)
        assert (rpb.NODE_GONE, ["node2"]) in statuses(events)
        assert (rpb.NODE_CONNECTED, ["node3"]) in statuses(events)
        newcomer.add(5)
        assert flows_of(take(got, 1)) == [("node3", 5)]
        newcomer.stop()
        events = take(got, 0, timeout=2.0)
        assert any(s == rpb.NODE_UNAVAILABLE and names == ["node3"]
                   for s, names in statuses(events))
        agents[0].add(6)                          # the others are still followed
        assert flows_of(take(got, 1)) == [("node1", 6)]
    finally:
        call.cancel()


def test_namespaces_are_the_union_of_the_nodes(relay: Relay, agents: list[Agent]) -> None:
    agents[0].add(0)
    resp = relay.stub.GetNamespaces(opb.GetNamespacesRequest(), timeout=5)
    assert [n.namespace for n in resp.namespaces] == ["default"]


def test_a_filter_every_node_would_refuse_is_refused_by_the_relay(relay: Relay) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(relay.stub.GetFlows(opb.GetFlowsRequest(whitelist=[{"source_ip": ["x"]}]),
                                 timeout=5))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_histories_merge_exactly_and_the_sort_buffer_orders_within_its_window() -> None:
    a = [(1, b"a1"), (4, b"a4")]
    b = [(2, b"b2"), (3, b"b3"), (9, b"b9")]
    assert list(merge_histories([a, b])) == [b"a1", b"b2", b"b3", b"a4", b"b9"]
    buf = SortBuffer(max_len=2, drain_s=10, max_wait_s=10)
    for t, d in ((5, b"5"), (3, b"3"), (4, b"4")):
        buf.push(t, d, now=0.0)
    assert buf.ready(now=0.1) == [b"3"]           # over max_len: the oldest goes
    assert buf.ready(now=20.0) == [b"4", b"5"]    # a lull: everything goes, in order


def test_socket_and_file_peers_follow_what_is_there(root: Path) -> None:
    nodes = root / "nodes"
    (nodes / "node1").mkdir(parents=True)
    (nodes / "node1" / LAB_OBSERVER_SOCKET).touch()
    (nodes / "node2").mkdir()                       # no socket: not a peer yet
    assert [p.name for p in SocketPeers(nodes).read()] == ["node1"]
    peers_file = root / "peers.json"
    assert FilePeers(peers_file).read() is None
    peers_file.write_text('[{"name": "n", "address": "10.0.0.1:4244"}]')
    assert FilePeers(peers_file).read() == [Peer("n", "10.0.0.1:4244")]


def test_the_peer_service_tells_the_relay_who_the_nodes_are(root: Path) -> None:
    listed = [Peer("node1", "10.0.0.1:4244", "membrane-agent")]
    sock = str(root / "peer.sock")
    server = serve_unix(peer_methods(lambda: list(listed), poll_s=0.1), sock)
    seen: queue.Queue[list[Peer]] = queue.Queue()
    stop = threading.Event()
    source = PeerService("unix:" + sock, channel_factory(None))
    threading.Thread(target=source.watch, args=(seen.put, stop), daemon=True).start()
    try:
        assert seen.get(timeout=5) == listed
        listed.append(Peer("node2", "10.0.0.2:4244", "membrane-agent"))
        assert seen.get(timeout=5) == sorted(listed)
        del listed[0]
        assert seen.get(timeout=5) == [Peer("node2", "10.0.0.2:4244", "membrane-agent")]
        with grpc.insecure_channel("unix:" + sock) as ch:
            first = next(iter(ppb_grpc.PeerStub(ch).Notify(ppb.NotifyRequest(), timeout=5)))
            assert (first.name, first.type, first.tls.server_name) == (
                "node2", ppb.PEER_ADDED, "membrane-agent")
    finally:
        stop.set()
        server.stop(None)
        assert SERVICE == "observer.Observer"
