"""node_name: shell-style patterns ("node1", "node*")."""

from __future__ import annotations

from fnmatch import fnmatchcase

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    if not ff.node_name:
        return []
    patterns = list(ff.node_name)
    return [lambda flow: any(fnmatchcase(flow.node_name, p) for p in patterns)]
