"""source_pod / destination_pod: "[namespace/]pod-name-prefix"; "ns/" is every pod in ns.

Without a namespace the prefix matches pods in any namespace (the CLI adds one from
--namespace when given).
"""

from __future__ import annotations

from observe.filters.base import FilterFunc
from observe.gen import flow_pb2 as fpb


def _parse(value: str) -> tuple[str, str]:
    ns, sep, prefix = value.partition("/")
    if not sep:
        return "", value
    if not ns:
        raise ValueError(f"pod filter {value!r}: empty namespace before '/'")
    return ns, prefix


def _matcher(values: list[str], side: str) -> FilterFunc:
    wanted = [_parse(v.strip()) for v in values]

    def match(flow: fpb.Flow) -> bool:
        ep = getattr(flow, side)
        if not ep.pod_name:   # world, host, CIDR peers are not pods
            return False
        return any((not ns or ep.namespace == ns) and ep.pod_name.startswith(prefix)
                   for ns, prefix in wanted)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    if ff.source_pod:
        out.append(_matcher(list(ff.source_pod), "source"))
    if ff.destination_pod:
        out.append(_matcher(list(ff.destination_pod), "destination"))
    return out
