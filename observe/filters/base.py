"""What every flow filter is made of (Hubble's filters.go FilterFunc and FilterFuncs).

A `FilterFunc` says whether one flow matches; a `Builder` turns the fields of a
FlowFilter it owns into FilterFuncs. The three combinators fold a list of FilterFuncs
over one flow the way Hubble's do, including on an empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from observe.gen.flow import flow_pb2 as fpb

FilterFunc = Callable[[fpb.Flow], bool]
Builder = Callable[[fpb.FlowFilter], list[FilterFunc]]


def match_all(filters: Sequence[FilterFunc], flow: fpb.Flow) -> bool:
    """Every filter matches (true for none)."""
    return all(f(flow) for f in filters)


def match_one(filters: Sequence[FilterFunc], flow: fpb.Flow) -> bool:
    """At least one filter matches (false for none)."""
    return any(f(flow) for f in filters)


def match_none(filters: Sequence[FilterFunc], flow: fpb.Flow) -> bool:
    """No filter matches (true for none)."""
    return not match_one(filters, flow)
