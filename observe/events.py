"""What the datapath reports, decoded: the input from which flows are made.

The datapath module turns each ring-buffer record (struct event in bpf/lib/events.h)
into a `DatapathEvent`; the agent enriches it with endpoint and identity metadata into a
Flow (observe.flow). This module is pure Python: observe never imports bcc.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Hashable


class EventType(IntEnum):
    POLICY_VERDICT = 1  # first packet of a new connection, allowed or denied, per direction
    DROP = 2            # a packet dropped, with its reason
    TRACE = 3           # a packet forwarded (reserved; not emitted per packet by default)


class TrafficDirection(IntEnum):
    INGRESS = 0  # into the local endpoint (to-container)
    EGRESS = 1   # out of the local endpoint (from-container)


@dataclass(frozen=True)
class DatapathEvent:
    type: EventType
    timestamp_ns: int        # CLOCK_REALTIME nanoseconds (converted from ktime by the reader)
    node: str                # the node whose datapath reported it
    endpoint_id: int         # local endpoint the packet was seen at
    direction: TrafficDirection
    allowed: bool            # verdict: forwarded (True) or dropped/denied (False)
    drop_reason: int         # observe.reasons.DropReason value, 0 when allowed
    match_type: int          # agent.policy.mapstate.MatchType value
    src_identity: int
    dst_identity: int
    src_ip: str
    dst_ip: str
    protocol: int            # IP protocol number
    src_port: int            # host byte order; ICMP: echo id
    dst_port: int            # ICMP: type << 8 | code
    tcp_flags: int           # raw TCP flags byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 ...)
    is_reply: bool
    packet_len: int


class EventBatch:
    """One poll's worth of datapath records, decoded only when something needs them.

    `records` are opaque to observe (the datapath reader's compact tuples);
    `decode(record)` makes the DatapathEvent (raising ValueError on a malformed one) and
    `key(record)` returns a hashable of every field that observe.metrics counts by
    (type, direction, verdict, reply, match, reason, protocol, source), so a batch can
    be counted per distinct key instead of per record.
    """

    __slots__ = ("records", "decode", "key")

    def __init__(self, records: list[Any], decode: Callable[[Any], DatapathEvent],
                 key: Callable[[Any], Hashable]) -> None:
        self.records = records
        self.decode = decode
        self.key = key

    def __len__(self) -> int:
        return len(self.records)

    def events(self) -> list[DatapathEvent]:
        """Every record decoded (slow: for tests and per-event consumers)."""
        return [self.decode(r) for r in self.records]

    @classmethod
    def of_events(cls, events: list[DatapathEvent]) -> "EventBatch":
        """A batch of already decoded events (tests, the fake datapath, replays)."""
        return cls(list(events), _identity, event_key)


def _identity(event: DatapathEvent) -> DatapathEvent:
    return event


def event_key(event: DatapathEvent) -> Hashable:
    """EventBatch.key for DatapathEvents."""
    return (event.type, event.direction, event.allowed, event.is_reply, event.match_type,
            event.drop_reason, event.protocol, event.src_ip, event.src_identity,
            event.endpoint_id)
