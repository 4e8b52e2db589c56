"""The relay's Observer service: Hubble's API over every node of the pool.

    ServerStatus   sums of the connected nodes' rings (uptime: the longest), how many
                   nodes answered, and which did not
    GetNodes       every node with its state (connected, unavailable, error, or gone in
                   the last minutes) and, when it answered, its ring's numbers
    GetNamespaces  the union of the nodes' answers
    GetFlows       history: each node's answer, merged in time order (`number` is per
                   node, as Hubble Relay reads it); follow: one reader per node into a
                   sort buffer (observe.relay.merge), for as long as the client stays

Every node is asked in parallel with a deadline, so a slow or dead node delays an answer
by at most `timeout` and is reported, never waited on forever. In a GetFlows stream the
relay says which nodes it is reading (NODE_CONNECTED) and when one becomes unavailable,
errs, leaves (NODE_GONE) or joins, as `relay.NodeStatusEvent`s; followers reconnect to
an unavailable node with backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import TypeVar

import grpc
from google.protobuf.wrappers_pb2 import UInt32Value

from core.version import version
from observe.encoder import timestamp
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.gen.relay import relay_pb2 as rpb
from observe.relay.h2client import FlowsCall, FlowsError
from observe.relay.merge import Entry, SortBuffer, merge_histories
from observe.relay.pool import Node, NodePool
from observe.ring import QUEUE, lost_response
from observe.rpc import Batch, Call, Method
from observe.server import SERVICE, passthrough, service_methods
from observe.stream import InvalidRequest, check_request

log = logging.getLogger(__name__)

T = TypeVar("T")
METHOD = f"/{SERVICE}/GetFlows"
RECONNECT_MAX_SECONDS = 10.0
QUEUE_SIZE = 4096      # batches of one node's flows (a read of its stream each)
HISTORY_BATCH = 256    # responses per write of a merged history


class RelayServicer:
    def __init__(self, pool: NodePool, name: str = "relay", timeout: float = 5.0,
                 buffer: Callable[[], SortBuffer] = SortBuffer) -> None:
        self.pool = pool
        self.name = name
        self.timeout = timeout
        self.buffer = buffer
        self._executor = futures.ThreadPoolExecutor(max_workers=32,
                                                    thread_name_prefix="relay-ask")

    # -- asking every node ---------------------------------------------------------
    def _ask_all(self, ask: Callable[[Node], T]) -> dict[str, T | grpc.RpcError]:
        """ask(node) for every node at once; each answer or its error, by node name.
        Marks each node connected, unavailable or in error."""
        nodes = self.pool.nodes()
        pending = {self._executor.submit(ask, node): node for node in nodes}
        out: dict[str, T | grpc.RpcError] = {}
        for future, node in pending.items():
            try:
                out[node.name] = future.result()
                self.pool.mark(node, rpb.NODE_CONNECTED)
            except grpc.RpcError as err:
                out[node.name] = err
                self.pool.mark(node, _state_of(err), err.details() or str(err.code()))
        return out

    def _status(self, node: Node) -> opb.ServerStatusResponse:
        return opb_grpc.ObserverStub(node.channel).ServerStatus(opb.ServerStatusRequest(),
                                                                timeout=self.timeout)

    # -- unary methods -------------------------------------------------------------
    def ServerStatus(self, request: opb.ServerStatusRequest,
                     call: Call) -> opb.ServerStatusResponse:
        answers = self._ask_all(self._status)
        ok = {n: a for n, a in answers.items() if isinstance(a, opb.ServerStatusResponse)}
        down = sorted(n for n in answers if n not in ok)
        return opb.ServerStatusResponse(
            num_flows=sum(a.num_flows for a in ok.values()),
            max_flows=sum(a.max_flows for a in ok.values()),
            seen_flows=sum(a.seen_flows for a in ok.values()),
            uptime_ns=max((a.uptime_ns for a in ok.values()), default=0),
            num_connected_nodes=UInt32Value(value=len(ok)),
            num_unavailable_nodes=UInt32Value(value=len(down)),
            unavailable_nodes=down, version=version())

    def GetNodes(self, request: opb.GetNodesRequest,
                 call: Call) -> opb.GetNodesResponse:
        answers = self._ask_all(self._status)
        out = []
        for node in self.pool.nodes():
            answer = answers.get(node.name)
            item = opb.Node(name=node.name, address=node.peer.address, state=node.state)
            if node.peer.tls_server_name:
                item.tls.CopyFrom(opb.TLS(enabled=True, server_name=node.peer.tls_server_name))
            if isinstance(answer, opb.ServerStatusResponse):
                item.version = answer.version
                item.uptime_ns, item.num_flows = answer.uptime_ns, answer.num_flows
                item.max_flows, item.seen_flows = answer.max_flows, answer.seen_flows
            out.append(item)
        out.extend(opb.Node(name=n.name, address=n.peer.address, state=rpb.NODE_GONE)
                   for n in self.pool.gone())
        return opb.GetNodesResponse(nodes=out)

    def GetNamespaces(self, request: opb.GetNamespacesRequest,
                      call: Call) -> opb.GetNamespacesResponse:
        def ask(node: Node) -> opb.GetNamespacesResponse:
            return opb_grpc.ObserverStub(node.channel).GetNamespaces(request,
                                                                     timeout=self.timeout)
        seen = {(ns.cluster, ns.namespace) for a in self._ask_all(ask).values()
                if isinstance(a, opb.GetNamespacesResponse) for ns in a.namespaces}
        return opb.GetNamespacesResponse(namespaces=[
            opb.Namespace(cluster=c, namespace=n) for c, n in sorted(seen)])

    # -- GetFlows ------------------------------------------------------------------
    def GetFlows(self, request: opb.GetFlowsRequest, call: Call) -> Iterator[Batch]:
        try:
            check_request(request)          # refuse here what every node would refuse
        except InvalidRequest as err:
            call.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        if request.follow:
            yield from Follower(self, request, call.active).run()
        else:
            history = list(self._history(request))
            for start in range(0, len(history), HISTORY_BATCH):
                yield history[start:start + HISTORY_BATCH]

    def _history(self, request: opb.GetFlowsRequest) -> Iterator[bytes]:
        def ask(node: Node) -> list[Entry]:
            call = _flows_call(node)(request.SerializeToString(), timeout=self.timeout)
            return [(_time_ns(data), data) for data in call]
        answers = self._ask_all(ask)
        ok = sorted(n for n, a in answers.items() if isinstance(a, list))
        if ok:
            yield self.node_status(rpb.NODE_CONNECTED, ok)
        for name, answer in sorted(answers.items()):
            if isinstance(answer, grpc.RpcError):
                yield self.node_status(_state_of(answer), [name],
                                       answer.details() or str(answer.code()))
        yield from merge_histories(a for a in answers.values() if isinstance(a, list))

    def node_status(self, state: rpb.NodeState.ValueType, names: list[str],
                    message: str = "") -> bytes:
        return opb.GetFlowsResponse(
            node_status=rpb.NodeStatusEvent(state_change=state, node_names=names,
                                            message=message),
            node_name=self.name, time=timestamp(time.time_ns())).SerializeToString()


class Follower:
    """One following GetFlows through the relay: a reader thread per node feeding a
    queue, merged in time order on the handler's thread."""

    def __init__(self, relay: RelayServicer, request: opb.GetFlowsRequest,
                 active: Callable[[], bool]) -> None:
        self.relay = relay
        self.request = request
        self.active = active
        self.queue: queue.Queue[tuple[str, Node, list[bytes] | str]] = queue.Queue(QUEUE_SIZE)
        self.readers: dict[str, tuple[Node, threading.Event]] = {}
        self.lost = 0
        self._stop = threading.Event()

    def run(self) -> Iterator[Batch]:
        """What the merged stream has ready, as one batch per turn."""
        buffer = self.relay.buffer()
        version = -1
        try:
            while self.active():
                out: list[bytes] = []
                if self.relay.pool.version != version:
                    version = self.relay.pool.version
                    out.extend(self._sync_nodes())
                try:
                    kind, node, payload = self.queue.get(timeout=0.05)
                except queue.Empty:
                    kind = ""
                while kind:
                    if kind == "flows" and isinstance(payload, list):
                        for data in payload:
                            buffer.push(_time_ns(data), data)
                    elif isinstance(payload, str):
                        out.extend(buffer.drain())
                        out.append(self._node_event(kind, node, payload))
                    try:
                        kind, node, payload = self.queue.get_nowait()
                    except queue.Empty:
                        kind = ""
                out.extend(buffer.ready())
                if self.lost:
                    out.append(self._lost_notice())
                if out:
                    yield out
        finally:
            self._stop.set()
            for _, stop in self.readers.values():
                stop.set()

    def _sync_nodes(self) -> Iterator[bytes]:
        nodes = {n.name: n for n in self.relay.pool.nodes()}
        gone = sorted(name for name in self.readers if name not in nodes
                      or nodes[name] is not self.readers[name][0])
        for name in gone:
            self.readers.pop(name)[1].set()
        if gone:
            yield self.relay.node_status(rpb.NODE_GONE, gone)
        for name, node in sorted(nodes.items()):
            if name not in self.readers:
                stop = threading.Event()
                self.readers[name] = (node, stop)
                threading.Thread(target=self._read, args=(node, stop), daemon=True,
                                 name=f"relay-follow-{name}").start()

    def _node_event(self, kind: str, node: Node, message: str) -> bytes:
        states = {"connected": rpb.NODE_CONNECTED, "unavailable": rpb.NODE_UNAVAILABLE,
                  "error": rpb.NODE_ERROR}
        return self.relay.node_status(states[kind], [node.name], message)

    def _lost_notice(self) -> bytes:
        n, self.lost = self.lost, 0
        return lost_response(QUEUE, n, self.relay.name).SerializeToString()

    def _put(self, item: tuple[str, Node, list[bytes] | str]) -> None:
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            # The merger is behind: counted, and said in the stream.
            self.lost += len(item[2]) if isinstance(item[2], list) else 1

    def _read(self, node: Node, stop: threading.Event) -> None:
        """Follows one node until stopped; reconnects with backoff."""
        delay = 0.5
        request = self.request.SerializeToString()
        resubscribe = opb.GetFlowsRequest()
        resubscribe.CopyFrom(self.request)
        resubscribe.number = 0          # a reconnection must not repeat the history
        resubscribe.ClearField("since")
        while not stop.is_set() and not self._stop.is_set():
            try:
                call = FlowsCall.open(node.peer.address, request, self.relay.pool.tls_context,
                                      node.peer.tls_server_name)
            except FlowsError as err:
                self.relay.pool.mark(node, rpb.NODE_UNAVAILABLE, err.details())
                self._put(("unavailable", node, err.details()))
                stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            self.relay.pool.mark(node, rpb.NODE_CONNECTED)
            self._put(("connected", node, ""))
            threading.Thread(target=_cancel_when_set, args=(stop, call), daemon=True).start()
            try:
                for batch in call:
                    delay = 0.5
                    self._put(("flows", node, batch))
                return
            except FlowsError as err:
                if stop.is_set() or err.code() == grpc.StatusCode.CANCELLED:
                    return
                state = _state_of(err)
                message = err.details() or str(err.code())
                self.relay.pool.mark(node, state, message)
                self._put(("error" if state == rpb.NODE_ERROR else "unavailable", node,
                           message))
                if state == rpb.NODE_ERROR:
                    return          # the node refused this request: no point retrying
            request = resubscribe.SerializeToString()
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)


def _cancel_when_set(stop: threading.Event, call: FlowsCall) -> None:
    stop.wait()
    call.cancel()


def _flows_call(node: Node) -> "grpc.UnaryStreamMultiCallable[bytes, bytes]":
    # Raw bytes both ways: the relay forwards each node's serialized flows untouched.
    return node.channel.unary_stream(METHOD, request_serializer=passthrough,
                                     response_deserializer=passthrough)


_TIME_TAG = b"\xca\x3e"      # GetFlowsResponse.time (1001, length-delimited)


def _time_ns(data: bytes) -> int:
    """A response's time. Field 1001 is serialized last (protobuf writes fields in
    number order), so it is read from the tail when it ends the message exactly; else
    the response is parsed."""
    at = data.rfind(_TIME_TAG, max(0, len(data) - 24))
    if 0 <= at < len(data) - 2 and data[at + 2] < 0x80 and \
            at + 3 + data[at + 2] == len(data):
        seconds = nanos = 0
        i, end = at + 3, len(data)
        while i < end:
            tag = data[i]
            value = shift = 0
            i += 1
            while i < end:
                b = data[i]
                i += 1
                value |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            if tag == 0x08:
                seconds = value
            elif tag == 0x10:
                nanos = value
            else:
                break
        else:
            return seconds * 1_000_000_000 + nanos
    resp = opb.GetFlowsResponse.FromString(data)
    return resp.time.ToNanoseconds() if resp.HasField("time") else \
        resp.flow.time.ToNanoseconds()


def _state_of(err: grpc.RpcError | FlowsError) -> rpb.NodeState.ValueType:
    """Unreachable or too slow: unavailable (tried again); anything else: the node
    refused or failed the request."""
    if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return rpb.NODE_UNAVAILABLE
    return rpb.NODE_ERROR


def relay_methods(servicer: RelayServicer) -> list[Method]:
    """The relay's Observer methods, for observe.h2server."""
    return service_methods(servicer)
