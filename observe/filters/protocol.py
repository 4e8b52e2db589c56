"""protocol: tcp, udp, icmp (icmpv4), sctp; case-insensitive, as core.protocols names them."""

from __future__ import annotations

from core.protocols import IPProtocol, protocol_number
from observe.filters.base import FilterFunc
from observe.flow import L4_KINDS
from observe.gen import flow_pb2 as fpb

# Hubble's spelling of ICMP in flows, accepted as a filter value too.
_ALIASES: dict[str, int] = {"icmpv4": IPProtocol.ICMP}


def _kind(text: str) -> str:
    """The Layer4 kind a protocol name selects ("udp" -> "UDP", "icmp" -> "ICMPv4")."""
    name = text.strip()
    number = _ALIASES.get(name.lower())
    if number is None:
        try:
            number = protocol_number(name)
        except ValueError:
            number = None
    kind = L4_KINDS.get(number) if number is not None else None
    if kind is None:
        raise ValueError(f"protocol filter {text!r}: use one of tcp, udp, icmp, sctp")
    return kind


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.protocol:
        return []
    wanted = {_kind(p) for p in ff.protocol}
    return [lambda flow: flow.l4.WhichOneof("protocol") in wanted]
