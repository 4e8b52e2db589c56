"""The flow ring and the observer that fills it.

    datapath reader thread          worker thread              gRPC handlers
    on_event(ev) ──> bounded queue ──> flow_from_event ──> FlowRing ──> GetFlows
                     (overflow:                              (overwrite: a follower
                      OBSERVER_EVENTS_QUEUE)                  behind gets HUBBLE_RING_BUFFER)
    report_lost("PERF_EVENT_RING_BUFFER", n): the kernel ring buffer was full.

Every loss is counted by where it happened and, for the kernel and the queue, written
into the ring as a lost_events entry so every reader sees it in order with the flows
around it: lost events are shown, never hidden.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from observe.events import DatapathEvent
from observe.flow import flow_from_event
from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb
from observe.metadata import EndpointMetadata

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 4095
DEFAULT_QUEUE_SIZE = 8192

# Where events get lost: the names of flow.proto's LostEventSource.
KERNEL = "PERF_EVENT_RING_BUFFER"
QUEUE = "OBSERVER_EVENTS_QUEUE"
RING = "HUBBLE_RING_BUFFER"
UNKNOWN = "UNKNOWN_LOST_EVENT_SOURCE"
# Free-form names callers use, by the word that identifies them (checked in this order:
# "kernel ring buffer" is the kernel's, "flow ring" the observer's).
_ALIASES = (("kernel", KERNEL), ("perf", KERNEL), ("ringbuf", KERNEL), ("queue", QUEUE),
            ("ring", RING), ("hubble", RING))


def lost_source(name: str) -> str:
    """Canonical LostEventSource name for a source name or a free-form one ("kernel",
    "kernel ring buffer", "queue", "flow ring")."""
    if name.upper() in fpb.LostEventSource.keys() and name.upper() != UNKNOWN:
        return name.upper()
    lowered = name.lower()
    for word, canonical in _ALIASES:
        if word in lowered:
            return canonical
    raise ValueError(f"unknown lost-event source {name!r}: use one of {KERNEL}, {QUEUE}, "
                     f"{RING} (or kernel, queue, ring)")


def _now_ts() -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def lost_response(source: str, n: int, node: str) -> opb.GetFlowsResponse:
    return opb.GetFlowsResponse(
        lost_events=fpb.LostEvent(source=fpb.LostEventSource.Value(source), num_events_lost=n),
        node_name=node, time=_now_ts())


class FlowRing:
    """Fixed capacity, oldest overwritten. Entries carry absolute sequence numbers, so a
    reader that fell behind knows exactly how many it missed."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"flow ring capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[opb.GetFlowsResponse | None] = [None] * capacity
        self._next = 0                       # sequence number of the next entry written
        self._cond = threading.Condition()
        self._closed = False

    # -- writing -------------------------------------------------------------------
    def append(self, entry: opb.GetFlowsResponse) -> None:
        with self._cond:
            self._slots[self._next % self.capacity] = entry
            self._next += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wakes every waiting reader (a cancelled stream re-checks its context)."""
        with self._cond:
            self._cond.notify_all()

    # -- reading -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def next_seq(self) -> int:
        with self._cond:
            return self._next

    def __len__(self) -> int:
        with self._cond:
            return min(self._next, self.capacity)

    def _oldest(self) -> int:
        return max(0, self._next - self.capacity)

    def snapshot(self) -> list[opb.GetFlowsResponse]:
        """Everything held, oldest first."""
        with self._cond:
            return [self._slots[s % self.capacity]  # type: ignore[misc]
                    for s in range(self._oldest(), self._next)]

    def read_from(self, seq: int, limit: int = 256
                  ) -> tuple[list[opb.GetFlowsResponse], int, int]:
        """(entries from `seq` on, how many were overwritten before `seq` was read,
        the sequence to read next)."""
        with self._cond:
            oldest = self._oldest()
            lost = max(0, oldest - seq)
            start = max(seq, oldest)
            end = min(self._next, start + limit)
            entries = [self._slots[s % self.capacity] for s in range(start, end)]
            return entries, lost, end  # type: ignore[return-value]

    def wait(self, seq: int, timeout: float) -> bool:
        """Blocks until an entry at or after `seq` exists, the ring closes, a wake(), or
        the timeout. True if there is something to read."""
        with self._cond:
            if self._next <= seq and not self._closed:
                self._cond.wait(timeout)
            return self._next > seq


class FlowListener(Protocol):
    """Told about every flow and every loss (observe.metrics.FlowMetrics is one)."""

    def flow(self, flow: fpb.Flow) -> None: ...

    def lost(self, source: str, n: int) -> None: ...


@dataclass(frozen=True)
class ObserverStatus:
    node: str
    version: str
    num_flows: int
    max_flows: int
    seen_flows: int
    uptime_ns: int
    lost: dict[str, int] = field(default_factory=dict)   # by LostEventSource name

    def to_dict(self) -> dict[str, object]:
        """JSON-ready; "seen" is an alias of seen_flows for the agent's status."""
        return {"node": self.node, "version": self.version, "num_flows": self.num_flows,
                "max_flows": self.max_flows, "seen_flows": self.seen_flows,
                "seen": self.seen_flows, "uptime_ns": self.uptime_ns, "lost": dict(self.lost)}

    def get(self, key: str, default: object = None) -> object:
        """Dict-style access, so status code written against a dict keeps working."""
        return self.to_dict().get(key, default)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("membrane")
    except Exception:  # not installed (running from the tree)
        return "0.1.0"


class FlowObserver:
    """Owns the queue, the worker thread and the ring. The agent constructs one, hands
    `on_event` to the datapath event reader, and the Observer service reads `ring`."""

    def __init__(self, node: str, capacity: int = DEFAULT_CAPACITY,
                 meta: EndpointMetadata | None = None,
                 queue_size: int = DEFAULT_QUEUE_SIZE,
                 listeners: list[FlowListener] | None = None) -> None:
        if meta is None:
            from observe.metadata import StaticMetadata
            meta = StaticMetadata()
        self.node = node
        self.meta = meta
        self.ring = FlowRing(capacity)
        self.version = _version()
        self.listeners: list[FlowListener] = list(listeners or [])
        self._queue: queue.Queue[DatapathEvent] = queue.Queue(maxsize=max(1, queue_size))
        self._lock = threading.Lock()
        self._lost = {KERNEL: 0, QUEUE: 0, RING: 0}
        self._queue_lost_unreported = 0     # queue overflow not yet written into the ring
        self._seen = 0
        self._started_ns = time.monotonic_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- inputs (reader thread) ----------------------------------------------------
    def on_event(self, event: DatapathEvent) -> None:
        """Hands one event over; never blocks. A full queue counts the event as lost."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._lost[QUEUE] += 1
                self._queue_lost_unreported += 1
            self._notify_lost(QUEUE, 1)

    def report_lost(self, source: str, n: int) -> None:
        """Losses found elsewhere (the datapath's ring-buffer drop counter): counted and
        written into the ring at once, so they are not lost in the queue themselves."""
        if n <= 0:
            return
        try:
            canonical = lost_source(source)
        except ValueError:
            # Called from the reader thread: never raise there. Count it anyway.
            log.warning("lost events from unknown source %r counted as %s", source, UNKNOWN)
            canonical = UNKNOWN
        with self._lock:
            self._lost[canonical] = self._lost.get(canonical, 0) + n
        if canonical != RING:
            self.ring.append(lost_response(canonical, n, self.node))
        self._notify_lost(canonical, n)

    def count_ring_lost(self, n: int) -> None:
        """A reader fell behind the ring by n entries (called by the Observer service)."""
        if n > 0:
            with self._lock:
                self._lost[RING] += n
            self._notify_lost(RING, n)

    def add_flow(self, flow: fpb.Flow) -> None:
        """Puts a built flow in the ring (the worker does this; tests and replays may too)."""
        with self._lock:
            self._seen += 1
        self.ring.append(opb.GetFlowsResponse(flow=flow, node_name=self.node, time=flow.time))
        for listener in self.listeners:
            try:
                listener.flow(flow)
            except Exception:  # a metrics bug must not stop flows
                log.exception("flow listener %r failed", listener)

    def _notify_lost(self, source: str, n: int) -> None:
        for listener in self.listeners:
            try:
                listener.lost(source, n)
            except Exception:
                log.exception("flow listener %r failed", listener)

    # -- the worker ----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"flow-observer-{self.node}",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.ring.close()

    def process_pending(self) -> int:
        """Turns every queued event into a flow now, on the caller's thread (tests, and
        a worker-less replay). Returns how many were processed."""
        done = 0
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return done
            self._process(event)
            done += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._queue.get(timeout=0.2)
            except queue.Empty:
                self._flush_queue_lost()
                continue
            self._process(event)

    def _flush_queue_lost(self) -> None:
        with self._lock:
            n, self._queue_lost_unreported = self._queue_lost_unreported, 0
        if n:
            self.ring.append(lost_response(QUEUE, n, self.node))

    def _process(self, event: DatapathEvent) -> None:
        # Overflow happened before this event was taken: say so before it, in order.
        self._flush_queue_lost()
        try:
            flow = flow_from_event(event, self.meta)
        except Exception:
            # A malformed event or a metadata bug: drop this one, say so, keep going.
            log.exception("cannot build a flow from %r", event)
            return
        self.add_flow(flow)

    # -- status --------------------------------------------------------------------
    def status(self) -> ObserverStatus:
        with self._lock:
            lost = dict(self._lost)
            seen = self._seen
        return ObserverStatus(node=self.node, version=self.version, num_flows=len(self.ring),
                              max_flows=self.ring.capacity, seen_flows=seen,
                              uptime_ns=time.monotonic_ns() - self._started_ns, lost=lost)

