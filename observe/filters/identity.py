"""source_identity / destination_identity: security identity numbers."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    if ff.source_identity:
        src = set(ff.source_identity)
        out.append(lambda flow: flow.source.identity in src)
    if ff.destination_identity:
        dst = set(ff.destination_identity)
        out.append(lambda flow: flow.destination.identity in dst)
    return out
