"""Datapath records -> wire-ready GetFlowsResponse bytes, each kind of flow built once.

Building a Flow field by field costs tens of microseconds in Python; a follower at
200,000 flows/s has five. But the flows of one connection (or one flood) differ only in
their time: the encoder builds the rest once per kind of flow (observe.flow.build_flow,
serialized by protobuf) and then, per packet, writes the timestamp and splices the
bytes (observe.wire):

    GetFlowsResponse = flow(1){ time(1) + <kind bytes> } + node_name(1000) + time(1001)

A kind is the batch's `flow_key` (observe.events.EventBatch): everything the flow
depends on but its time. The result is a `Wire`, what the flow ring keeps and every
follower sends as is: one serialization per flow for all followers.

What the metadata says can change (a pod relabelled, a policy added): the agent calls
`invalidate()` (through FlowObserver.metadata_changed) and the kinds are built again.
Safe to call from several threads: a lookup and an insert race only to build a kind
twice; an invalidation swaps the whole table, so a late insert lands in the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from observe.events import DatapathEvent, EventBatch
from observe.flow import build_flow
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.metadata import EndpointMetadata, PolicyNamer, StaticMetadata
from observe.wire import LEN, SMALL, TimestampEncoder, length_delimited, tag, varint

log = logging.getLogger(__name__)

# Kinds kept before the table starts over (a port scan makes a kind per packet).
MAX_KINDS = 65536

_FLOW_FIELD = tag(1, LEN)          # GetFlowsResponse.flow, and Flow.time: both field 1
_RESPONSE_TIME = tag(1001, LEN)    # GetFlowsResponse.time


class BadRecord(ValueError):
    """A record that cannot become a flow (a malformed event, a metadata bug)."""


class Wire:
    """One flow-ring entry as it goes on the wire.

    data: the serialized GetFlowsResponse; time_ns: its time (for since/until);
    kind: bytes that decide what filters say about it (the flow without its time;
    None for lost-event notices, which pass every filter)."""

    __slots__ = ("time_ns", "kind", "data")

    def __init__(self, time_ns: int, kind: bytes | None, data: bytes) -> None:
        self.time_ns = time_ns
        self.kind = kind
        self.data = data

    @property
    def is_flow(self) -> bool:
        return self.kind is not None

    def response(self) -> opb.GetFlowsResponse:
        return opb.GetFlowsResponse.FromString(self.data)

    @classmethod
    def of_response(cls, resp: opb.GetFlowsResponse) -> "Wire":
        """A built response (a lost-event notice, a flow added whole)."""
        kind = (resp.flow.SerializeToString()
                if resp.WhichOneof("response_types") == "flow" else None)
        return cls(resp.time.ToNanoseconds(), kind, resp.SerializeToString())


class _Kind:
    """One kind of flow's bytes: the Flow without its time, the response's tail after
    the time (kind + node_name + the response time's tag), and the heads before the time
    by its length (11 bytes most of the time)."""

    __slots__ = ("kind", "tail", "heads")

    def __init__(self, kind: bytes, tail: bytes) -> None:
        self.kind = kind
        self.tail = tail
        self.heads: list[bytes | None] = [None] * 24   # a Timestamp is at most 22 bytes


_MISSING = _Kind(b"", b"")     # kinds.get's default: not seen yet


class FlowEncoder:
    def __init__(self, node: str, meta: EndpointMetadata | None = None,
                 namer: PolicyNamer | None = None, max_kinds: int = MAX_KINDS) -> None:
        self.meta = meta if meta is not None else StaticMetadata()
        self.namer = namer
        self.max_kinds = max_kinds
        self._node_field = length_delimited(1000, node.encode())
        self._kinds: dict[Hashable, _Kind | None] = {}   # None: cannot become a flow
        self._ts = TimestampEncoder()
        self.built = 0          # kinds built (a miss of the table), for diagnostics

    def invalidate(self) -> None:
        """What the metadata says changed: every kind is built again when next seen."""
        self._kinds = {}

    def kind_bytes(self, event: DatapathEvent) -> bytes:
        """The serialized Flow of an event without its time."""
        self.built += 1
        return build_flow(event, self.meta, self.namer).SerializeToString()

    def _kind(self, record: Any, batch: EventBatch) -> _Kind | None:
        try:
            kind = self.kind_bytes(batch.decode(record))
        except Exception:
            log.exception("cannot build a flow from %r", record)
            return None
        return _Kind(kind, kind + self._node_field + _RESPONSE_TIME)

    def encode(self, record: Any, batch: EventBatch) -> Wire:
        """The Wire of one record; BadRecord if it cannot become a flow."""
        (wire,) = self.encode_many([record], batch)
        if wire is None:
            raise BadRecord(f"no flow from {record!r}")
        return wire

    def encode_many(self, records: list[Any], batch: EventBatch) -> list[Wire | None]:
        """The Wires of records of one batch, in order; None for a record that cannot
        become a flow (the first of its kind is logged with the reason, the others cost
        a lookup: a flood of them must not cost a traceback each). This loop runs once
        per flow a follower reads: everything it uses is bound to a local first."""
        kinds = self._kinds
        if len(kinds) >= self.max_kinds:
            kinds = self._kinds = {}
        flow_key, get, encode_ts = batch.flow_key, kinds.get, self._ts.encode
        join, small, new_wire = b"".join, SMALL, Wire
        out: list[Wire | None] = []
        append = out.append
        for record in records:
            time_ns, key = flow_key(record)
            kind = get(key, _MISSING)
            if kind is _MISSING:
                kind = kinds[key] = self._kind(record, batch)
            if kind is None:
                append(None)
                continue
            # GetFlowsResponse{flow: {time} + kind, node_name, time}: five parts, all but
            # the timestamp made once per kind (and timestamp length).
            ts = encode_ts(time_ns)
            n = len(ts)
            head = kind.heads[n]
            if head is None:
                head = kind.heads[n] = (_FLOW_FIELD + varint(2 + n + len(kind.kind))
                                        + b"\x0a" + small[n])
            append(new_wire(time_ns, kind.kind, join((head, ts, kind.tail, small[n], ts))))
        return out

    def flow(self, record: Any, batch: EventBatch) -> fpb.Flow:
        """The parsed Flow of a record (metrics, tests): the same bytes a follower gets."""
        return self.encode(record, batch).response().flow


def timestamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts
