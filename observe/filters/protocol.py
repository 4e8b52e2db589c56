"""protocol: tcp, udp, icmp (icmpv4), sctp; case-insensitive."""

from __future__ import annotations

from observe.filters import FilterFunc
from observe.gen import flow_pb2 as fpb

_L4 = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMPv4", "icmpv4": "ICMPv4", "sctp": "SCTP"}


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.protocol:
        return []
    wanted = set()
    for p in ff.protocol:
        kind = _L4.get(p.strip().lower())
        if kind is None:
            raise ValueError(f"protocol filter {p!r}: use one of tcp, udp, icmp, sctp")
        wanted.add(kind)
    return [lambda flow: flow.l4.WhichOneof("protocol") in wanted]
