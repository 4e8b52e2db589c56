"""source_workload / destination_workload: a pod's controller (name and/or kind).

An entry's unset name or kind matches any; kinds compare case-insensitively
("deployment" is "Deployment"). Peers that are not pods have no workload.
"""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def _matcher(wanted: list[tuple[str, str]], side: str) -> FilterFunc:
    def match(flow: fpb.Flow) -> bool:
        have = [(w.name, w.kind.lower()) for w in getattr(flow, side).workloads]
        return any((not name or name == hn) and (not kind or kind == hk)
                   for name, kind in wanted for hn, hk in have)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    for field, side in (("source_workload", "source"),
                        ("destination_workload", "destination")):
        entries = getattr(ff, field)
        if entries:
            wanted = [(w.name, w.kind.lower()) for w in entries]
            if any(not name and not kind for name, kind in wanted):
                raise ValueError(f"{field}: a workload needs a name or a kind")
            out.append(_matcher(wanted, side))
    return out
