"""Flow filters, Hubble's way: one small module per kind, composed here.

Within one FlowFilter every field that is set must match (AND) and the values inside a
field are alternatives (OR). A request's filters combine as: the flow passes if any
allow-list (whitelist) filter matches, or the allow list is empty, and no deny-list
(blacklist) filter matches. Each module's `build(ff)` returns the predicates for the
fields it owns (none when they are unset) and raises ValueError on a bad value, which
the server turns into INVALID_ARGUMENT.
"""

from __future__ import annotations

from typing import Callable, Iterable

from observe.gen import flow_pb2 as fpb

FilterFunc = Callable[[fpb.Flow], bool]


def _builders() -> list[Callable[[fpb.FlowFilter], list[FilterFunc]]]:
    # Imported here so each kind stays a leaf module importing only this package.
    from observe.filters import (drop_reason, event_type, identity, ip, labels, node, pod,
                                 port, protocol, reply, tcp_flags, traffic_direction,
                                 verdict)
    return [m.build for m in (ip, pod, labels, identity, verdict, traffic_direction,
                              protocol, port, reply, tcp_flags, event_type, node,
                              drop_reason)]


def build_filter(ff: fpb.FlowFilter) -> FilterFunc:
    """One FlowFilter -> one predicate: all its set fields must match."""
    preds = [p for build in _builders() for p in build(ff)]
    return lambda flow: all(p(flow) for p in preds)


class FlowFilterSet:
    """An allow list and a deny list, compiled once per request."""

    def __init__(self, whitelist: Iterable[fpb.FlowFilter] = (),
                 blacklist: Iterable[fpb.FlowFilter] = ()) -> None:
        self.allow = [build_filter(f) for f in whitelist]
        self.deny = [build_filter(f) for f in blacklist]

    def __call__(self, flow: fpb.Flow) -> bool:
        if self.allow and not any(f(flow) for f in self.allow):
            return False
        return not any(f(flow) for f in self.deny)


def apply(flows: Iterable[fpb.Flow], whitelist: Iterable[fpb.FlowFilter] = (),
          blacklist: Iterable[fpb.FlowFilter] = ()) -> list[fpb.Flow]:
    keep = FlowFilterSet(whitelist, blacklist)
    return [f for f in flows if keep(f)]
