"""tcp_flags: a flow matches an entry when it carries every flag set in that entry
(SYN matches SYN and SYN,ACK); entries are alternatives."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb

FLAG_NAMES = ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS")


def parse_flags(text: str) -> fpb.TCPFlags:
    """"SYN,ACK" -> TCPFlags(SYN, ACK)."""
    flags = fpb.TCPFlags()
    for name in text.split(","):
        name = name.strip().upper()
        if name not in FLAG_NAMES:
            raise ValueError(f"tcp flag {name!r}: use {', '.join(FLAG_NAMES)}")
        setattr(flags, name, True)
    return flags


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.tcp_flags:
        return []
    wanted = [[n for n in FLAG_NAMES if getattr(f, n)] for f in ff.tcp_flags]

    def match(flow: fpb.Flow) -> bool:
        if flow.l4.WhichOneof("protocol") != "TCP":
            return False
        have = flow.l4.TCP.flags
        return any(all(getattr(have, n) for n in names) for names in wanted)
    return [match]
