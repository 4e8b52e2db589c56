"""The page's flow filters -> the observe filters (observe.filters), run on each flow.

The table's fields are `membrane observe`'s either-side flags: a label, a pod
("[ns/]name-prefix"), a namespace and a port match the source or the destination; a
verdict matches the flow. As `hubble observe` builds them, that is two FlowFilters (the
source half and the destination half, the verdict in both), and a flow passes when
either matches. Empty fields are left out; no field set passes every flow.
"""

from __future__ import annotations

from collections.abc import Mapping

from observe.filters.build import FlowFilterSet
from observe.gen.flow import flow_pb2 as fpb

FIELDS = ("label", "pod", "namespace", "verdict", "port")


def flow_filters(query: Mapping[str, str]) -> list[fpb.FlowFilter]:
    wanted = {k: query.get(k, "").strip() for k in FIELDS}
    if not any(wanted.values()):
        return []
    halves = []
    for side in ("source", "destination"):
        ff = fpb.FlowFilter()
        if wanted["label"]:
            getattr(ff, f"{side}_label").append(wanted["label"])
        pod = wanted["pod"]
        if wanted["namespace"]:
            pod = f"{wanted['namespace']}/{pod.split('/')[-1]}"
        if pod:
            getattr(ff, f"{side}_pod").append(pod)
        if wanted["port"]:
            getattr(ff, f"{side}_port").append(wanted["port"])
        if wanted["verdict"]:
            ff.verdict.append(fpb.Verdict.Value(wanted["verdict"].upper()))
        halves.append(ff)
    return halves


def filter_set(query: Mapping[str, str]) -> FlowFilterSet:
    """Raises ValueError for a value the filters cannot take (a port that is no number,
    an unknown verdict)."""
    return FlowFilterSet(flow_filters(query))
