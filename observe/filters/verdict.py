"""verdict: FORWARDED, DROPPED, ERROR, AUDIT."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.verdict:
        return []
    wanted = set(ff.verdict)
    return [lambda flow: flow.verdict in wanted]
