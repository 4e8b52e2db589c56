"""FlowFilters -> FilterFuncs, from the registered per-kind builders (Hubble's
BuildFilter, BuildFilterList and Apply).

`BUILDERS` is the registry: every kind's `build`, in the order their FilterFuncs run
(cheap field comparisons after the address and label ones they usually narrow). A new
kind of filter is a module with `build(ff)` and one line here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from observe.filters import (drop_reason, event_type, identity, interface, ip, l7, labels,
                             names, node, pod, port, protocol, reply, tcp_flags,
                             traffic_direction, verdict, workload)
from observe.filters.base import Builder, FilterFunc, match_all, match_none, match_one
from observe.gen.flow import flow_pb2 as fpb

BUILDERS: tuple[Builder, ...] = (
    ip.build, pod.build, labels.build, identity.build, workload.build, names.build,
    verdict.build, traffic_direction.build, protocol.build, port.build, reply.build,
    tcp_flags.build, event_type.build, node.build, drop_reason.build, interface.build,
    l7.build,
)


def build_filter(ff: fpb.FlowFilter, builders: Sequence[Builder] = BUILDERS) -> FilterFunc:
    """One FlowFilter -> one FilterFunc: all its set fields must match. Raises
    ValueError naming a bad value."""
    funcs = [f for build in builders for f in build(ff)]
    return lambda flow: match_all(funcs, flow)


def build_filter_list(filters: Iterable[fpb.FlowFilter]) -> list[FilterFunc]:
    return [build_filter(ff) for ff in filters]


class FlowFilterSet:
    """An allow list and a deny list, built once per request: a flow passes when the
    allow list is empty or one of it matches, and none of the deny list matches."""

    def __init__(self, whitelist: Iterable[fpb.FlowFilter] = (),
                 blacklist: Iterable[fpb.FlowFilter] = ()) -> None:
        self.allow = build_filter_list(whitelist)
        self.deny = build_filter_list(blacklist)

    def __call__(self, flow: fpb.Flow) -> bool:
        if self.allow and not match_one(self.allow, flow):
            return False
        return match_none(self.deny, flow)


def apply(flows: Iterable[fpb.Flow], whitelist: Iterable[fpb.FlowFilter] = (),
          blacklist: Iterable[fpb.FlowFilter] = ()) -> list[fpb.Flow]:
    """The flows that pass, in order."""
    keep = FlowFilterSet(whitelist, blacklist)
    return [f for f in flows if keep(f)]
