"""What the datapath reports, decoded: the input from which flows are made.

The datapath module turns each ring-buffer record (struct event in bpf/lib/events.h)
into a `DatapathEvent`; the agent enriches it with endpoint and identity metadata into a
Flow (observe.flow). This module is pure Python: observe never imports bcc.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


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
