"""event_type: Cilium monitor types (1 drop, 4 trace, 9 policy verdict), sub_type optional."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE
from observe.gen import flow_pb2 as fpb

# The names `membrane observe --type` takes, as `hubble observe` does.
NAMES = {"drop": MSG_DROP, "trace": MSG_TRACE, "policy-verdict": MSG_POLICY_VERDICT}


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.event_type:
        return []
    wanted = list(ff.event_type)

    def match(flow: fpb.Flow) -> bool:
        et = flow.event_type
        return any(et.type == w.type and (not w.match_sub_type or et.sub_type == w.sub_type)
                   for w in wanted)
    return [match]
