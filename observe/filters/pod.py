"""source_pod / destination_pod: "[namespace/]pod-name-prefix"; "ns/" is every pod in ns,
"/prefix" a pod in any namespace.

Without a namespace the prefix matches pods in any namespace (the CLI adds one from
--namespace when given).
"""

from __future__ import annotations

from collections.abc import Callable

from observe.filters.base import FilterFunc
from observe.gen.flow import flow_pb2 as fpb


def _parse(value: str) -> tuple[str, str]:
    ns, sep, prefix = value.partition("/")
    if not sep:
        return "", value
    return ns, prefix      # "/name": any namespace, as Hubble reads it


def pod_matcher(values: list[str]) -> Callable[[str, str], bool]:
    """(namespace, name) -> whether one "[namespace/]prefix" value selects it (services
    are named the same way)."""
    wanted = [_parse(v.strip()) for v in values]

    def match(namespace: str, name: str) -> bool:
        return any((not ns or namespace == ns) and name.startswith(prefix)
                   for ns, prefix in wanted)
    return match


def _matcher(values: list[str], side: str) -> FilterFunc:
    named = pod_matcher(values)

    def match(flow: fpb.Flow) -> bool:
        ep = getattr(flow, side)
        # World, host and CIDR peers are not pods.
        return bool(ep.pod_name) and named(ep.namespace, ep.pod_name)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    if ff.source_pod:
        out.append(_matcher(list(ff.source_pod), "source"))
    if ff.destination_pod:
        out.append(_matcher(list(ff.destination_pod), "destination"))
    return out
