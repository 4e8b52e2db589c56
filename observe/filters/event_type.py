"""event_type: Cilium monitor types (1 drop, 4 trace, 9 policy verdict), sub_type optional."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE, TRACE_POINT_NAMES
from observe.gen.flow import flow_pb2 as fpb

# The flow event types `hubble observe --type` names, with Cilium's monitor numbers.
# Membrane emits drop, trace and policy-verdict; the others select nothing here.
NAMES = {"capture": 3, "drop": MSG_DROP, "l7": 5, "policy-verdict": MSG_POLICY_VERDICT,
         "trace": MSG_TRACE, "trace-sock": 11}
# Subtypes by type: trace observation points ("trace:to-endpoint").
SUBTYPES: dict[int, dict[str, int]] = {
    MSG_TRACE: {name: number for number, name in TRACE_POINT_NAMES.items()}}


def parse_type(text: str) -> fpb.EventTypeFilter:
    """"TYPE[:SUBTYPE]" by name or number ("trace:to-endpoint", "4:5", "drop"), as
    `hubble observe --type` reads it; ValueError names the known ones."""
    kind, sep, sub = text.strip().partition(":")
    number = NAMES.get(kind)
    if number is None:
        try:
            number = int(kind)
        except ValueError:
            raise ValueError(f"event type {kind!r}: use one of {', '.join(NAMES)} "
                             "or a number") from None
    out = fpb.EventTypeFilter(type=number)
    if sep:
        named = SUBTYPES.get(number, {})
        if sub in named:
            out.sub_type = named[sub]
        else:
            try:
                out.sub_type = int(sub)
            except ValueError:
                known = ", ".join(named) or "numbers only"
                raise ValueError(f"event subtype {sub!r} of {kind}: use {known}") from None
        out.match_sub_type = True
    return out


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.event_type:
        return []
    wanted = list(ff.event_type)

    def match(flow: fpb.Flow) -> bool:
        et = flow.event_type
        return any(et.type == w.type and (not w.match_sub_type or et.sub_type == w.sub_type)
                   for w in wanted)
    return [match]
