"""Filters on names a flow carries as strings: FQDNs of the peers (source_fqdn /
destination_fqdn against source_names / destination_names), cluster names, services
and flow UUIDs. Patterns are shell-style ("*.cilium.io"), as Hubble's.

Membrane fills names only where it knows them (a lab's DNS), and never services or
UUIDs: a filter on those matches no flow, as Hubble's does for flows without them.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from observe.filters.base import FilterFunc
from observe.filters.pod import pod_matcher
from observe.gen.flow import flow_pb2 as fpb


def _fqdn(patterns: list[str], side: str) -> FilterFunc:
    lowered = [p.strip().lower().rstrip(".") for p in patterns]

    def match(flow: fpb.Flow) -> bool:
        names = getattr(flow, f"{side}_names")
        return any(fnmatchcase(n.lower().rstrip("."), p) for n in names for p in lowered)
    return match


def _cluster(patterns: list[str], side: str) -> FilterFunc:
    def match(flow: fpb.Flow) -> bool:
        name = getattr(flow, side).cluster_name
        return any(fnmatchcase(name, p) for p in patterns)
    return match


def _service(values: list[str], side: str) -> FilterFunc:
    # "[namespace/]name-prefix", as pods; a flow without a service matches nothing.
    named = pod_matcher(values)

    def match(flow: fpb.Flow) -> bool:
        svc = getattr(flow, f"{side}_service")
        return bool(svc.name) and named(svc.namespace, svc.name)
    return match


def build(ff: fpb.FlowFilter) -> list[FilterFunc]:
    out: list[FilterFunc] = []
    for side in ("source", "destination"):
        fqdns = list(getattr(ff, f"{side}_fqdn"))
        if fqdns:
            out.append(_fqdn(fqdns, side))
        clusters = list(getattr(ff, f"{side}_cluster_name"))
        if clusters:
            out.append(_cluster(clusters, side))
        services = list(getattr(ff, f"{side}_service"))
        if services:
            out.append(_service(services, side))
    if ff.uuid:
        uuids = set(ff.uuid)
        out.append(lambda flow: flow.uuid in uuids)
    return out
