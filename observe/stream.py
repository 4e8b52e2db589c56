"""One GetFlows request over a FlowObserver's ring: history, then follow.

The Observer service, the flow exporter and the events benchmark all read flows this
way, so what a gRPC client receives and what they measure or write is the same:

    FlowStream(observer, request).entries(active) -> Wire, Wire, ...   (oldest first)
    FlowStream(observer, request).batches(active) -> [Wire, ...], ...  (the same, as read)

The window (since/until) is checked on each entry's time; the filters on its flow, and
their answer is kept per kind of flow (Wire.kind: everything but the time), so a follower
at a flood's rate parses and filters each kind once, not each packet. Lost-event notices
pass every filter: losses are never hidden. A follower that falls behind the ring is
told how many entries it missed (HUBBLE_RING_BUFFER), in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from observe.encoder import Wire
from observe.filters.build import FlowFilterSet
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.ring import RING, FlowObserver, lost_response

# How long a follower waits for new entries before it re-checks that it is wanted.
FOLLOW_POLL_SECONDS = 0.25
READ_BATCH = 2048
# After a read that did not fill a batch, a follower lets entries gather this long before
# it reads again: at a flood's rate a batch then holds hundreds of flows and the threads
# of the agent (reader, observer, follower, transport) hand the GIL over a few hundred
# times a second instead of once per poll; a flow waits at most this long for it.
FOLLOW_LINGER_SECONDS = 0.005
MAX_MEMO = 65536    # filter answers kept per stream before the table starts over
# What one GetFlows request may ask of the filters (allow-list and deny-list together).
# A new kind of flow is matched against all of them under the GIL: 100,000 CIDRs cost
# ~18 ms per flow. Far above what `membrane observe` or a Hubble client sends.
MAX_FILTERS = 64              # FlowFilter messages
MAX_FILTER_VALUES = 1024      # values in their repeated fields (addresses, pods, labels, ...)
MAX_FILTER_BYTES = 64 * 1024  # their encoded size


class InvalidRequest(ValueError):
    """The request cannot be served as asked (the server answers INVALID_ARGUMENT)."""


class Window:
    """since/until as nanoseconds; unset means open."""

    def __init__(self, req: opb.GetFlowsRequest) -> None:
        self.since = req.since.ToNanoseconds() if req.HasField("since") else None
        self.until = req.until.ToNanoseconds() if req.HasField("until") else None

    def contains(self, time_ns: int) -> bool:
        return ((self.since is None or time_ns >= self.since)
                and (self.until is None or time_ns <= self.until))

    def closed_at(self, now_ns: int) -> bool:
        return self.until is not None and now_ns > self.until


def filter_limit_problem(request: opb.GetFlowsRequest) -> str | None:
    """Why the request's filters are too large to serve, or None. Checked before any
    filter is built."""
    filters = list(request.whitelist) + list(request.blacklist)
    if len(filters) > MAX_FILTERS:
        return (f"{len(filters)} flow filters: a request may have at most {MAX_FILTERS} "
                "(allow-list and deny-list together)")
    # Every FlowFilter field but `experimental` is a repeated one (a list of alternatives).
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


def check_request(req: opb.GetFlowsRequest) -> FlowFilterSet:
    """The request's filters, built; InvalidRequest says what cannot be served."""
    problem = filter_limit_problem(req)
    if problem is not None:
        raise InvalidRequest(problem)
    if req.first and req.follow:
        raise InvalidRequest("first and follow cannot be combined: --first reads the "
                             "oldest flows held, --follow waits for new ones")
    for ff in (*req.whitelist, *req.blacklist):
        if ff.experimental.cel_expression:
            raise InvalidRequest("CEL expression filters are not supported by Membrane")
    try:
        return FlowFilterSet(req.whitelist, req.blacklist)
    except ValueError as err:
        raise InvalidRequest(f"bad filter: {err}") from None


class FlowStream:
    def __init__(self, observer: FlowObserver, request: opb.GetFlowsRequest) -> None:
        self.observer = observer
        self.request = request
        self.window = Window(request)
        self._keep = check_request(request)
        self._filtered = bool(request.whitelist or request.blacklist)
        self._memo: dict[bytes, bool] = {}

    def wanted(self, wire: Wire) -> bool:
        """In the window, and (a flow) passing the filters."""
        if not self.window.contains(wire.time_ns):
            return False
        kind = wire.kind
        if kind is None or not self._filtered:
            return True
        memo = self._memo
        answer = memo.get(kind)
        if answer is None:
            answer = self._keep(fpb.Flow.FromString(kind))
            if len(memo) >= MAX_MEMO:
                memo.clear()
            memo[kind] = answer
        return answer

    def entries(self, active: Callable[[], bool] = lambda: True) -> Iterator[Wire]:
        """The history the request asks for, then (with follow) new entries until
        `active()` turns false, the ring closes or `until` passes."""
        for batch in self.batches(active):
            yield from batch

    def batches(self, active: Callable[[], bool] = lambda: True) -> Iterator[list[Wire]]:
        """entries(), as the ring hands them out: the whole history at once, then each
        read of the ring (at most READ_BATCH entries, a lost-event notice first), so a
        transport can send a batch in one write."""
        req = self.request
        ring = self.observer.ring
        start = ring.next_seq()
        if not (req.follow and req.number == 0 and not req.HasField("since")):
            history = select(ring.held(), self.wanted, req.number, req.first)
            if history:
                yield history
        if req.follow:
            yield from self._follow(start, active)

    def _follow(self, seq: int, active: Callable[[], bool]) -> Iterator[list[Wire]]:
        ring = self.observer.ring
        window = self.window
        wanted = self.wanted
        # Nothing to check per entry: a plain follower takes whole reads (the common
        # case, and the one that must keep up with a flood).
        everything = not self._filtered and window.since is None and window.until is None
        while active() and not ring.closed:
            if not ring.wait(seq, FOLLOW_POLL_SECONDS):
                if window.closed_at(time.time_ns()):
                    return
                continue
            entries, lost, seq = ring.read_from(seq, READ_BATCH)
            if len(entries) < READ_BATCH:
                time.sleep(FOLLOW_LINGER_SECONDS)
            if lost:
                # This reader fell behind and entries were overwritten under it.
                self.observer.count_ring_lost(lost)
                yield [Wire.of_response(lost_response(RING, lost, self.observer.node))]
            if everything:
                if entries:
                    yield entries
                continue
            keep: list[Wire] = []
            for wire in entries:
                if window.until is not None and wire.time_ns > window.until:
                    if keep:
                        yield keep
                    return
                if wanted(wire):
                    keep.append(wire)
            if keep:
                yield keep


def select(held: Sequence[Wire | None], wanted: Callable[[Wire], bool], number: int,
           first: bool) -> list[Wire]:
    """The first or last `number` wanted flows held (0 = all), with the lost-event
    notices that lie between them; lost notices do not count toward `number`. Entries
    are looked at one by one (a lazily built ring builds only those)."""
    order = iter(held) if first else reversed(held)
    out: list[Wire] = []
    flows = 0
    for wire in order:
        if wire is None or not wanted(wire):
            continue
        if wire.kind is not None and number and flows >= number:
            break
        out.append(wire)
        flows += wire.kind is not None
    return out if first else list(reversed(out))
