"""protocol: tcp, udp, icmp (icmpv4), icmpv6, sctp; case-insensitive, as core.protocols
names them. Hubble's L7 protocols (dns, http, kafka) are accepted and match nothing:
Membrane's flows are L3/L4."""

from __future__ import annotations

from core.protocols import IPProtocol, protocol_number
from observe.filters.base import FilterFunc
from observe.flow import L4_KINDS
from observe.gen.flow import flow_pb2 as fpb

# Hubble's spelling of ICMP in flows, accepted as a filter value too.
_ALIASES: dict[str, int] = {"icmpv4": IPProtocol.ICMP}
_ICMPV6 = "ICMPv6"
L7_PROTOCOLS = frozenset({"dns", "http", "kafka"})


def _kind(text: str) -> str:
    """The Layer4 kind a protocol name selects ("udp" -> "UDP", "icmp" -> "ICMPv4")."""
    name = text.strip()
    if name.lower() == "icmpv6":
        return _ICMPV6
    if name.lower() in L7_PROTOCOLS:
        return name.lower()          # no Layer4 kind is named like it: matches nothing
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
