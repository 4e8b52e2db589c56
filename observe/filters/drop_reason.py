"""drop_reason_desc: drop reasons by enum value (POLICY_DENIED, ...)."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.drop_reason_desc:
        return []
    wanted = set(ff.drop_reason_desc)
    return [lambda flow: flow.drop_reason_desc in wanted]
