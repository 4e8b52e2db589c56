"""source_port / destination_port: TCP, UDP and SCTP ports ("8080")."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.flow import l4_ports
from observe.gen.flow import flow_pb2 as fpb


def _ports(values: list[str]) -> set[int]:
    out: set[int] = set()
    for v in values:
        try:
            port = int(v.strip())
        except ValueError:
            raise ValueError(f"port filter {v!r}: not a number") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"port filter {v!r}: out of range 0-65535")
        out.add(port)
    return out


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    for index, values in ((0, ff.source_port), (1, ff.destination_port)):
        if values:
            wanted = _ports(list(values))

            def match(flow: fpb.Flow, wanted: set[int] = wanted, index: int = index) -> bool:
                ports = l4_ports(flow)
                return ports is not None and ports[index] in wanted
            out.append(match)
    return out
