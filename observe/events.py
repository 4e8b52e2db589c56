"""What the datapath reports, decoded: the input from which flows are made.

The datapath module turns each ring-buffer record (struct event in bpf/lib/events.h)
into a `DatapathEvent`; the agent enriches it with endpoint and identity metadata into a
Flow (observe.flow). This module is pure Python: observe never imports bcc.

The direction is core.protocols.Direction (the datapath's encoding). The match type is a
flow fact owned here: the datapath writes it into policy entries and events
(bpf/lib/common.h MATCH_*), Hubble prints it (policy-verdict:L3-L4), and the policy map
state (agent.policy.mapstate) computes it from an allow entry's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Callable, Hashable

from core.protocols import Direction


class EventType(IntEnum):
    POLICY_VERDICT = 1  # first packet of a new connection, allowed or denied, per direction
    DROP = 2            # a packet dropped, with its reason
    TRACE = 3           # a packet forwarded (reserved; not emitted per packet by default)


class MatchType(IntEnum):
    """How an allow matched (bpf/lib/common.h MATCH_*), as Hubble names it."""

    NONE = 0      # nothing matched: denied
    L3_ONLY = 1   # a specific peer, every port
    L3_L4 = 2     # a specific peer and port
    L4_ONLY = 3   # every peer, a specific port
    ALL = 4       # every peer, every port

    @property
    def hubble_name(self) -> str:
        """What `policy-verdict:<name>` shows: "L3-Only", "L3-L4", "L4-Only", "all"."""
        return _MATCH_TYPE_NAMES[self]


_MATCH_TYPE_NAMES = {MatchType.NONE: "none", MatchType.L3_ONLY: "L3-Only",
                     MatchType.L3_L4: "L3-L4", MatchType.L4_ONLY: "L4-Only",
                     MatchType.ALL: "all"}


def match_type_name(value: int) -> str:
    """Hubble's name of a match type number; an unknown one (a newer datapath) by number."""
    try:
        return MatchType(value).hubble_name
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class DatapathEvent:
    type: EventType
    timestamp_ns: int        # CLOCK_REALTIME nanoseconds (converted from ktime by the reader)
    node: str                # the node whose datapath reported it
    endpoint_id: int         # local endpoint the packet was seen at
    direction: Direction
    allowed: bool            # verdict: forwarded (True) or dropped/denied (False)
    drop_reason: int         # observe.reasons.DropReason value, 0 when allowed
    match_type: int          # MatchType value
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
    # Policy denied it, audit mode let it through (forwarded: allowed is True). The
    # datapath writes 2 in struct event.allowed (bpf/lib/policy.h POLICY_AUDITED).
    audit: bool = False


class EventBatch:
    """One poll's worth of datapath records, decoded only when something needs them.

    `records` are opaque to observe (the datapath reader's compact tuples):

      decode(record)    the DatapathEvent (raises ValueError on a malformed one);
      key(record)       a hashable of every field observe.metrics counts by: all that
                        a flow depends on except its time and source port, so a batch
                        is counted per distinct key instead of per record;
      flow_key(record)  (time in ns, a hashable of everything else the flow depends
                        on): records with equal keys make the same flow but for its
                        time, which is what lets observe.flow build each kind of flow
                        once. Optional: without it the record is decoded to find out.
    """

    __slots__ = ("records", "decode", "key", "flow_key")

    def __init__(self, records: list[Any], decode: Callable[[Any], DatapathEvent],
                 key: Callable[[Any], Hashable],
                 flow_key: Callable[[Any], tuple[int, Hashable]] | None = None) -> None:
        self.records = records
        self.decode = decode
        self.key = key
        self.flow_key = flow_key if flow_key is not None else self._decoded_flow_key

    def __len__(self) -> int:
        return len(self.records)

    def _decoded_flow_key(self, record: Any) -> tuple[int, Hashable]:
        event = self.decode(record)
        return event.timestamp_ns, event_flow_key(event)

    def events(self) -> list[DatapathEvent]:
        """Every record decoded (slow: for tests and per-event consumers)."""
        return [self.decode(r) for r in self.records]

    def part(self, records: list[Any]) -> "EventBatch":
        """The same kind of batch over some of its records."""
        return EventBatch(records, self.decode, self.key, self.flow_key)

    @classmethod
    def of_events(cls, events: list[DatapathEvent]) -> "EventBatch":
        """A batch of already decoded events (tests, the fake datapath, replays)."""
        return cls(list(events), _identity, event_key, _event_flow_key)


def _identity(event: DatapathEvent) -> DatapathEvent:
    return event


def event_key(event: DatapathEvent) -> Hashable:
    """EventBatch.key for DatapathEvents: the flow's fields but time and source port."""
    return (event.type, event.direction, event.allowed, event.is_reply, event.match_type,
            event.drop_reason, event.protocol, event.src_ip, event.src_identity,
            event.dst_ip, event.dst_identity, event.dst_port, event.tcp_flags,
            event.endpoint_id, event.node)


def event_flow_key(event: DatapathEvent) -> Hashable:
    """Everything a DatapathEvent's flow depends on but its time."""
    return (event_key(event), event.src_port)


def _event_flow_key(event: DatapathEvent) -> tuple[int, Hashable]:
    return event.timestamp_ns, event_flow_key(event)
