"""The Observer gRPC service over a FlowObserver's ring.

The agent integrator creates the grpc.server (unix socket, mode 0600, shared with the
Agent service) and calls `add_observer_to_server(server, observer)`. A TCP listener
exists only with mutual TLS: observe.tls.serve_tcp_with_tls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from observe.filters.build import FlowFilterSet
from observe.gen import observer_pb2 as opb
from observe.gen import observer_pb2_grpc as opb_grpc
from observe.gen import flow_pb2 as fpb
from observe.ring import RING, FlowObserver, lost_response

log = logging.getLogger(__name__)

# How long a follower sleeps between checks of its stream's liveness when no flow
# arrives: bounds how long a cancelled stream holds its handler thread.
FOLLOW_POLL_SECONDS = 0.25
READ_BATCH = 256

# Whether a held or new entry goes to this stream (window and filters).
Wanted = Callable[[opb.GetFlowsResponse], bool]

# What one GetFlows request may ask of the filters (allow-list and deny-list together).
# Every held and new flow is matched against all of them under the GIL: 100,000 CIDRs
# cost ~18 ms per flow. Far above what `membrane observe` or a Hubble client sends.
MAX_FILTERS = 64              # FlowFilter messages
MAX_FILTER_VALUES = 1024      # values in their repeated fields (addresses, pods, labels, ...)
MAX_FILTER_BYTES = 64 * 1024  # their encoded size


def _ns(ts: Timestamp) -> int:
    return ts.ToNanoseconds()


class _Window:
    """since/until as nanoseconds; unset means open."""

    def __init__(self, req: opb.GetFlowsRequest) -> None:
        self.since = _ns(req.since) if req.HasField("since") else None
        self.until = _ns(req.until) if req.HasField("until") else None

    def contains(self, entry: opb.GetFlowsResponse) -> bool:
        t = _ns(entry.time)
        return ((self.since is None or t >= self.since)
                and (self.until is None or t <= self.until))


class ObserverServicer(opb_grpc.ObserverServicer):
    def __init__(self, observer: FlowObserver) -> None:
        self.observer = observer

    # -- GetFlows ------------------------------------------------------------------
    def GetFlows(self, request: opb.GetFlowsRequest,
                 context: grpc.ServicerContext) -> Iterator[opb.GetFlowsResponse]:
        problem = filter_limit_problem(request)
        if problem is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if request.first and request.follow:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "first and follow cannot be combined: --first reads the oldest "
                          "flows held, --follow waits for new ones")
        try:
            keep = FlowFilterSet(request.whitelist, request.blacklist)
        except ValueError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"bad filter: {err}")
        window = _Window(request)
        ring = self.observer.ring

        def wanted(entry: opb.GetFlowsResponse) -> bool:
            # Lost-event notices pass every filter: losses are never hidden.
            if not window.contains(entry):
                return False
            return entry.WhichOneof("response_types") != "flow" or keep(entry.flow)

        start = ring.next_seq()
        if request.follow and request.number == 0 and not request.HasField("since"):
            history: list[opb.GetFlowsResponse] = []
        else:
            # Held entries are built into flows only as _select looks at them.
            history = _select(ring.held(), wanted, request.number, request.first)
        yield from history
        if not request.follow:
            return
        yield from self._follow(start, wanted, window, context)

    def _follow(self, seq: int, wanted: Wanted, window: _Window,
                context: grpc.ServicerContext) -> Iterator[opb.GetFlowsResponse]:
        ring = self.observer.ring
        # A cancelled client should not wait for the next poll: wake the ring.
        context.add_callback(ring.wake)
        while context.is_active() and not ring.closed:
            if not ring.wait(seq, FOLLOW_POLL_SECONDS):
                if window.until is not None and time.time_ns() > window.until:
                    return
                continue
            entries, lost, seq = ring.read_from(seq, READ_BATCH)
            if lost:
                # This reader fell behind and entries were overwritten under it.
                self.observer.count_ring_lost(lost)
                yield lost_response(RING, lost, self.observer.node)
            for entry in entries:
                if window.until is not None and _ns(entry.time) > window.until:
                    return
                if wanted(entry):
                    yield entry

    # -- status --------------------------------------------------------------------
    def ServerStatus(self, request: opb.ServerStatusRequest,
                     context: grpc.ServicerContext) -> opb.ServerStatusResponse:
        return status_message(self.observer)

    def GetNodes(self, request: opb.GetNodesRequest,
                 context: grpc.ServicerContext) -> opb.GetNodesResponse:
        st = self.observer.status()
        return opb.GetNodesResponse(nodes=[opb.Node(
            name=st.node, version=st.version, state=opb.NODE_CONNECTED,
            uptime_ns=st.uptime_ns, num_flows=st.num_flows, max_flows=st.max_flows,
            seen_flows=st.seen_flows)])


def status_message(observer: FlowObserver) -> opb.ServerStatusResponse:
    st = observer.status()
    return opb.ServerStatusResponse(
        num_flows=st.num_flows, max_flows=st.max_flows, seen_flows=st.seen_flows,
        uptime_ns=st.uptime_ns, version=st.version, node_name=st.node,
        lost_events=[opb.LostEventsCount(source=fpb.LostEventSource.Value(src), count=n)
                     for src, n in sorted(st.lost.items())])


def filter_limit_problem(request: opb.GetFlowsRequest) -> str | None:
    """Why the request's filters are too large to serve, or None. Checked at request
    entry, before any filter is built."""
    filters = list(request.whitelist) + list(request.blacklist)
    if len(filters) > MAX_FILTERS:
        return (f"{len(filters)} flow filters: a request may have at most {MAX_FILTERS} "
                "(allow-list and deny-list together)")
    # Every FlowFilter field is a repeated one (a list of alternatives).
    values = sum(len(value) for f in filters for _, value in f.ListFields()
                 if isinstance(value, Sequence) and not isinstance(value, (str, bytes)))
    if values > MAX_FILTER_VALUES:
        return (f"flow filters with {values} values: a request may have at most "
                f"{MAX_FILTER_VALUES} values in its filters")
    size = sum(f.ByteSize() for f in filters)
    if size > MAX_FILTER_BYTES:
        return (f"flow filters of {size} bytes: a request may have at most "
                f"{MAX_FILTER_BYTES} bytes of filters")
    return None


def _select(held: Sequence[opb.GetFlowsResponse | None], wanted: Wanted, number: int,
            first: bool) -> list[opb.GetFlowsResponse]:
    """The first or last `number` wanted flows held (0 = all), with the lost-event
    notices that lie between them; lost notices do not count toward `number`. Entries
    are looked at one by one (a lazily built ring builds only those)."""
    order = iter(held) if first else reversed(held)
    out: list[opb.GetFlowsResponse] = []
    flows = 0
    for entry in order:
        if entry is None or not wanted(entry):
            continue
        is_flow = entry.WhichOneof("response_types") == "flow"
        if is_flow and number and flows >= number:
            break
        out.append(entry)
        flows += is_flow
    return out if first else list(reversed(out))


def add_observer_to_server(server: grpc.Server, observer: FlowObserver) -> ObserverServicer:
    servicer = ObserverServicer(observer)
    opb_grpc.add_ObserverServicer_to_server(servicer, server)
    return servicer
