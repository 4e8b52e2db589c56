"""traffic_direction: INGRESS or EGRESS, the connection's direction at the local pod."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.traffic_direction:
        return []
    wanted = set(ff.traffic_direction)
    return [lambda flow: flow.traffic_direction in wanted]
