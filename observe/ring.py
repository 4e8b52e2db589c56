"""The flow ring and the observer that fills it.

    datapath reader thread          worker thread              followers (GetFlows,
    on_events(batch) ─> bounded queue ─> FlowRing (compact) ─> export) read Wires:
                        (overflow:       metrics: counts per   encoded on first read
                         OBSERVER_EVENTS  kind of flow          (observe.encoder), kept
                         _QUEUE)                                for every other reader;
                                                                overwrite: a follower
                                                                behind gets HUBBLE_RING_BUFFER
    report_lost("PERF_EVENT_RING_BUFFER", n): the kernel ring buffer was full.

Every loss is counted by where it happened and, for the kernel and the queue, written
into the ring as a lost_events entry so every reader sees it in order with the flows
around it: lost events are shown, never hidden. Events come in one way, as batches;
`on_event` is a batch of one (tests, replays).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, overload, runtime_checkable

from core.version import version
from observe.encoder import MAX_KINDS, FlowEncoder, Wire, timestamp
from observe.events import DatapathEvent, EventBatch
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.metadata import EndpointMetadata, PolicyNamer
from observe.namespaces import NamespaceTracker

log = logging.getLogger(__name__)

# The agent's defaults too (agent.config.AgentConfig reads these): one number each.
DEFAULT_CAPACITY = 4095
DEFAULT_QUEUE_SIZE = 65536

# Where events get lost: the names of flow.proto's LostEventSource.
KERNEL = "PERF_EVENT_RING_BUFFER"
QUEUE = "OBSERVER_EVENTS_QUEUE"
RING = "HUBBLE_RING_BUFFER"
UNKNOWN = "UNKNOWN_LOST_EVENT_SOURCE"
# Free-form names callers use, by the word that identifies them (checked in this order:
# "kernel ring buffer" is the kernel's, "flow ring" the observer's).
_ALIASES = (("kernel", KERNEL), ("perf", KERNEL), ("ringbuf", KERNEL), ("queue", QUEUE),
            ("ring", RING), ("hubble", RING))

# Records of one batch -> their Wires (None: cannot become a flow).
Builder = Callable[[list[object], EventBatch], list[Wire | None]]


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


def lost_response(source: str, n: int, node: str) -> opb.GetFlowsResponse:
    return opb.GetFlowsResponse(
        lost_events=fpb.LostEvent(source=fpb.LostEventSource.Value(source), num_events_lost=n),
        node_name=node, time=timestamp(time.time_ns()))


class FlowRing:
    """Fixed capacity, oldest overwritten. Entries carry absolute sequence numbers, so a
    reader that fell behind knows exactly how many it missed.

    A slot holds a Wire (lost notices, flows added whole, and records once encoded) or a
    datapath record still in its compact form, with the EventBatch it came in: its Wire
    is made by `build(records, batch)` (a run of one batch's records at once) the first
    time a reader needs it, and kept for the next reader. Writing a batch costs two slice assignments, not a flow per record.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, build: Builder | None = None
                 ) -> None:
        if capacity < 1:
            raise ValueError(f"flow ring capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.build = build
        # A slot holds None (never written), a Wire (its _src None) or a batch's record
        # (its _src that batch); records are opaque here.
        self._slots: list[object] = [None] * capacity
        self._src: list[EventBatch | None] = [None] * capacity
        self._next = 0                       # sequence number of the next entry written
        self._cond = threading.Condition()
        self._closed = False

    # -- writing -------------------------------------------------------------------
    def append(self, entry: Wire | opb.GetFlowsResponse) -> None:
        wire = entry if isinstance(entry, Wire) else Wire.of_response(entry)
        with self._cond:
            i = self._next % self.capacity
            self._slots[i] = wire
            self._src[i] = None
            self._next += 1
            self._cond.notify_all()

    def append_batch(self, batch: EventBatch, records: list[object] | None = None) -> None:
        """The batch's records (or `records`, a part of them), unbuilt, in order."""
        recs = batch.records if records is None else records
        n = len(recs)
        if not n:
            return
        cap = self.capacity
        skip = max(0, n - cap)            # only the newest `cap` can be held
        if skip:
            recs = recs[skip:]
        k = len(recs)
        with self._cond:
            start = (self._next + skip) % cap
            first = min(k, cap - start)
            self._slots[start:start + first] = recs[:first] if first < k else recs
            self._src[start:start + first] = [batch] * first
            if k > first:
                self._slots[0:k - first] = recs[first:]
                self._src[0:k - first] = [batch] * (k - first)
            self._next += n
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wake(self) -> None:
        """Wakes every waiting reader (a cancelled stream re-checks its context)."""
        with self._cond:
            self._cond.notify_all()

    # -- building ------------------------------------------------------------------
    def _built(self, start: int, slots: list[object], srcs: list[EventBatch | None]
               ) -> list[Wire | None]:
        """The Wires of copied slots (None where a record cannot become a flow); what
        was built is kept in the ring if still held. Consecutive records of one batch
        are built in one call (a poll's worth at a time)."""
        build = self.build
        out: list[Wire | None] = []
        made = False
        i, n = 0, len(slots)
        while i < n:
            src = srcs[i]
            if src is None:
                slot = slots[i]
                out.append(slot if isinstance(slot, Wire) else None)
                i += 1
                continue
            j = i + 1
            while j < n and srcs[j] is src:
                j += 1
            made = True
            try:
                out.extend(build(slots[i:j], src) if build else [None] * (j - i))
            except Exception:
                # A metadata bug or a broken batch: these are skipped, said once.
                log.exception("cannot build flows from %d records", j - i)
                out.extend([None] * (j - i))
            i = j
        if made:
            self._keep(start, slots, srcs, out)
        return out

    def _keep(self, start: int, slots: list[object], srcs: list[EventBatch | None],
              built: list[Wire | None]) -> None:
        cap = self.capacity
        with self._cond:
            oldest = max(0, self._next - cap)
            ring_slots, ring_src = self._slots, self._src
            for i, wire in enumerate(built):
                seq = start + i
                if wire is None or srcs[i] is None or seq < oldest:
                    continue
                j = seq % cap
                if ring_slots[j] is slots[i]:
                    ring_slots[j] = wire
                    ring_src[j] = None

    def _copy(self, start: int, end: int) -> tuple[list[object], list[EventBatch | None]]:
        cap = self.capacity
        a, b = start % cap, end % cap
        if end - start == 0:
            return [], []
        if a < b:
            return self._slots[a:b], self._src[a:b]
        return self._slots[a:] + self._slots[:b], self._src[a:] + self._src[:b]

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

    def held(self) -> "HeldEntries":
        """Everything held now, oldest first, built only as it is looked at (None for an
        entry that cannot become a flow)."""
        with self._cond:
            start = self._oldest()
            slots, srcs = self._copy(start, self._next)
        return HeldEntries(self, start, slots, srcs)

    def snapshot(self) -> list[opb.GetFlowsResponse]:
        """Everything held, oldest first, parsed (tests and tools; followers use Wires)."""
        return [w.response() for w in self.held().build_all() if w is not None]

    def read_from(self, seq: int, limit: int = 256) -> tuple[list[Wire], int, int]:
        """(entries from `seq` on, how many were overwritten before `seq` was read,
        the sequence to read next)."""
        with self._cond:
            oldest = self._oldest()
            lost = max(0, oldest - seq)
            start = max(seq, oldest)
            end = min(self._next, start + limit)
            slots, srcs = self._copy(start, end)
        return [w for w in self._built(start, slots, srcs) if w is not None], lost, end

    def wait(self, seq: int, timeout: float) -> bool:
        """Blocks until an entry at or after `seq` exists, the ring closes, a wake(), or
        the timeout. True if there is something to read."""
        with self._cond:
            if self._next <= seq and not self._closed:
                self._cond.wait(timeout)
            return self._next > seq


class HeldEntries(Sequence[Optional[Wire]]):
    """A copy of the ring's slots at one moment; entries are built on first access."""

    def __init__(self, ring: FlowRing, start: int, slots: list[object],
                 srcs: list[EventBatch | None]) -> None:
        self._ring, self._start, self._slots, self._srcs = ring, start, slots, srcs

    def __len__(self) -> int:
        return len(self._slots)

    @overload
    def __getitem__(self, i: int) -> Wire | None: ...

    @overload
    def __getitem__(self, i: slice) -> list[Wire | None]: ...

    def __getitem__(self, i: int | slice) -> Wire | None | list[Wire | None]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self._slots)))]
        if i < 0:
            i += len(self._slots)
        if not 0 <= i < len(self._slots):
            raise IndexError(i)
        slot = self._slots[i]
        if self._srcs[i] is None:
            return slot if isinstance(slot, Wire) else None
        (built,) = self._ring._built(self._start + i, [slot], [self._srcs[i]])
        if built is not None:
            self._slots[i], self._srcs[i] = built, None
        return built

    def build_all(self) -> list[Wire | None]:
        out = self._ring._built(self._start, self._slots, self._srcs)
        self._slots, self._srcs = list(out), [None] * len(out)
        return out


class FlowListener(Protocol):
    """Told about every flow and every loss (observe.metrics.FlowMetrics is one). A
    listener that also has `flow_count(flow, n)` ("n flows like this one, but for their
    time and source port") is told about a batch that way, one flow per kind."""

    def flow(self, flow: fpb.Flow) -> None: ...

    def lost(self, source: str, n: int) -> None: ...


@runtime_checkable
class CountingListener(FlowListener, Protocol):
    def flow_count(self, flow: fpb.Flow, n: int) -> None: ...


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


class FlowObserver:
    """Owns the queue, the worker thread, the ring and the flow encoder. The agent
    constructs one, hands `on_events` (one EventBatch per poll) to the datapath, calls
    `metadata_changed()` when pods, identities or policies change, and the Observer
    service reads `ring`.

    The queue holds up to `queue_size` events (a batch counts as its records). A batch
    goes into the ring as it is: flows are encoded when a reader wants them, and the
    listeners (metrics) hear each distinct kind of flow of a batch once, with its count
    (`flow_count(flow, n)`; a listener with only `flow(flow)` hears every flow).
    """

    def __init__(self, node: str, capacity: int = DEFAULT_CAPACITY,
                 meta: EndpointMetadata | None = None,
                 queue_size: int = DEFAULT_QUEUE_SIZE,
                 listeners: list[FlowListener] | None = None,
                 namer: PolicyNamer | None = None) -> None:
        self.node = node
        self.encoder = FlowEncoder(node, meta, namer)
        # The parsed flow of each counted kind (EventBatch.key), for the listeners and
        # the namespaces: built once per kind, not once per batch (a flood's batches
        # are all of the same two kinds). Emptied when the metadata changes.
        self._counted: dict[Hashable, fpb.Flow] = {}
        self.meta = self.encoder.meta
        self.ring = FlowRing(capacity, build=self.encoder.encode_many)
        self.version = version()
        self.listeners: list[FlowListener] = list(listeners or [])
        self.namespaces = NamespaceTracker()
        self.queue_size = max(1, queue_size)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._pending: deque[EventBatch] = deque()
        self._queued = 0                    # events in _pending and being processed
        self._lost = {KERNEL: 0, QUEUE: 0, RING: 0}
        self._queue_lost_unreported = 0     # queue overflow not yet written into the ring
        self._seen = 0
        self._started_ns = time.monotonic_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def metadata_changed(self) -> None:
        """Pods, labels, identities or policies changed: new flows are built afresh."""
        self.encoder.invalidate()
        self._counted = {}

    # -- inputs (reader thread) ----------------------------------------------------
    def on_event(self, event: DatapathEvent) -> None:
        """Hands one event over, as a batch of one; never blocks."""
        self.on_events(EventBatch.of_events([event]))

    def on_events(self, batch: EventBatch) -> None:
        """Hands a batch over (one lock acquisition); never blocks. What does not fit in
        the queue (the newest records of the batch) is counted as lost, exactly."""
        n = len(batch.records)
        if not n:
            return
        with self._lock:
            room = max(0, self.queue_size - self._queued)
            lost = max(0, n - room)
            if lost:
                self._lost[QUEUE] += lost
                self._queue_lost_unreported += lost
            if room:
                if lost:
                    batch = batch.part(batch.records[:room])
                self._pending.append(batch)
                self._queued += len(batch.records)
                self._ready.notify()
        if lost:
            self._notify_lost(QUEUE, lost)

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
        """A reader fell behind the ring by n entries (called by its follower)."""
        if n > 0:
            with self._lock:
                self._lost[RING] += n
            self._notify_lost(RING, n)

    def add_flow(self, flow: fpb.Flow) -> None:
        """Puts a built flow in the ring (tests and replays)."""
        with self._lock:
            self._seen += 1
        self.ring.append(opb.GetFlowsResponse(flow=flow, node_name=self.node, time=flow.time))
        self.namespaces.saw(flow)
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
        with self._lock:
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.ring.close()

    def _take(self, timeout: float | None) -> list[EventBatch]:
        with self._lock:
            if not self._pending and timeout is not None:
                self._ready.wait(timeout)
            items = list(self._pending)
            self._pending.clear()
        return items

    def process_pending(self) -> int:
        """Processes every queued event now, on the caller's thread (tests, and a
        worker-less replay). Returns how many events were processed."""
        done = 0
        while True:
            items = self._take(None)
            if not items:
                return done
            done += self._process_items(items)

    def _process_items(self, items: list[EventBatch]) -> int:
        done = 0
        for batch in items:
            n = len(batch.records)
            self._process_batch(batch)
            done += n
            with self._lock:
                self._queued -= n
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            items = self._take(0.2)
            if not items:
                self._flush_queue_lost()
                continue
            self._process_items(items)

    def _flush_queue_lost(self) -> None:
        with self._lock:
            n, self._queue_lost_unreported = self._queue_lost_unreported, 0
        if n:
            self.ring.append(lost_response(QUEUE, n, self.node))

    def _process_batch(self, batch: EventBatch) -> None:
        # Overflow happened before this batch was taken: say so before it, in order.
        self._flush_queue_lost()
        records = batch.records
        if not records:
            return
        self.ring.append_batch(batch)
        with self._lock:
            self._seen += len(records)
        self._count_kinds(batch)

    def _count_kinds(self, batch: EventBatch) -> None:
        """One flow per distinct kind of the batch: for the listeners (with its count)
        and for the namespaces GetNamespaces reports."""
        records = batch.records
        keys = list(map(batch.key, records))
        counts = Counter(keys)
        sample = dict(zip(keys, records))
        counting = [lst for lst in self.listeners if isinstance(lst, CountingListener)]
        plain = [lst for lst in self.listeners if not isinstance(lst, CountingListener)]
        counted = self._counted
        if len(counted) >= MAX_KINDS:
            counted = self._counted = {}
        for key, n in counts.items():
            flow = counted.get((batch.key, key))
            if flow is None:
                try:
                    flow = self.encoder.flow(sample[key], batch)
                except Exception:
                    log.exception("cannot build a flow from %r", sample[key])
                    continue
                counted[(batch.key, key)] = flow
            self.namespaces.saw(flow)       # seen now: GetNamespaces forgets the old
            for counter in counting:
                try:
                    counter.flow_count(flow, n)
                except Exception:  # a metrics bug must not stop flows
                    log.exception("flow listener %r failed", counter)
        if plain:
            for record in records:
                try:
                    flow = self.encoder.flow(record, batch)
                except Exception:
                    continue
                for listener in plain:
                    try:
                        listener.flow(flow)
                    except Exception:
                        log.exception("flow listener %r failed", listener)

    # -- status --------------------------------------------------------------------
    def status(self) -> ObserverStatus:
        with self._lock:
            lost = dict(self._lost)
            seen = self._seen
        return ObserverStatus(node=self.node, version=self.version, num_flows=len(self.ring),
                              max_flows=self.ring.capacity, seen_flows=seen,
                              uptime_ns=time.monotonic_ns() - self._started_ns, lost=lost)
