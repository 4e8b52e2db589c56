"""interface: the network interface a flow was observed on (the local endpoint's
host-side veth). An entry's unset index or name matches any."""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.interface:
        return []
    wanted = [(i.index, i.name) for i in ff.interface]

    def match(flow: fpb.Flow) -> bool:
        if not flow.HasField("interface"):
            return False
        have = flow.interface
        return any((not index or index == have.index) and (not name or name == have.name)
                   for index, name in wanted)
    return [match]
