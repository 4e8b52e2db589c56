"""reply: whether the packet is a reply. A flow whose is_reply is unknown (a denied
packet) matches neither true nor false, as in Hubble."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.reply:
        return []
    wanted = set(ff.reply)
    return [lambda flow: flow.HasField("is_reply") and flow.is_reply.value in wanted]
