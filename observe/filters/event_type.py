"""event_type: Cilium monitor types (1 drop, 4 trace, 9 policy verdict), sub_type optional."""

from __future__ import annotations

from observe.filters import FilterFunc
from observe.gen import flow_pb2 as fpb

NAMES = {"drop": 1, "trace": 4, "policy-verdict": 9}


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.event_type:
        return []
    wanted = list(ff.event_type)

    def match(flow: fpb.Flow) -> bool:
        et = flow.event_type
        return any(et.type == w.type and (not w.match_sub_type or et.sub_type == w.sub_type)
                   for w in wanted)
    return [match]
