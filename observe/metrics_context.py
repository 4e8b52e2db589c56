"""Context labels of the flow metrics, configured the way Hubble's are.

A metric's options (`drop:sourceContext=pod;destinationContext=pod`) may add:

    sourceContext=ID[|ID...]        a "source" label: the first non-empty of the IDs
    destinationContext=ID[|ID...]   a "destination" label, the same way
    labelsContext=NAME[,NAME...]    one label per NAME, from the list below

    ID:   identity  namespace  pod  pod-short  workload  workload-name  app  dns  ip
          reserved-identity
    NAME: source_pod source_namespace source_workload source_app destination_pod
          destination_namespace destination_workload destination_app traffic_direction

`pod` is "namespace/pod", `pod-short` drops the pod's generated suffixes,
`workload` is "namespace/name" of the pod's controller, `app` the value of its
app.kubernetes.io/name, k8s-app or app label. Unknown names are errors that say what
exists, at start, not at the first flow.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from observe.gen.flow import flow_pb2 as fpb

Endpoint = fpb.Endpoint
_SHORT_POD = re.compile(r"^(.+?)(-[a-z0-9]+){1,2}$")
_APP_LABELS = ("k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app=")


def _pod(ep: Endpoint, flow: fpb.Flow, side: str) -> str:
    return f"{ep.namespace}/{ep.pod_name}" if ep.namespace and ep.pod_name else ep.pod_name


def _pod_short(ep: Endpoint, flow: fpb.Flow, side: str) -> str:
    short = _SHORT_POD.sub(r"\1", ep.pod_name)
    return f"{ep.namespace}/{short}" if ep.namespace and short else short


def _workload(ep: Endpoint, flow: fpb.Flow, side: str) -> str:
    if not ep.workloads:
        return ""
    name = ep.workloads[0].name
    return f"{ep.namespace}/{name}" if ep.namespace else name


def _workload_name(ep: Endpoint, flow: fpb.Flow, side: str) -> str:
    return ep.workloads[0].name if ep.workloads else ""


def app_of(ep: Endpoint) -> str:
    for prefix in _APP_LABELS:
        for label in ep.labels:
            if label.startswith(prefix) and len(label) > len(prefix):
                return label[len(prefix):]
    return ""


def _reserved(ep: Endpoint, flow: fpb.Flow, side: str) -> str:
    if "reserved:kube-apiserver" in ep.labels:
        return "reserved:kube-apiserver"
    return next((label for label in ep.labels if label.startswith("reserved:")), "")


Getter = Callable[[Endpoint, fpb.Flow, str], str]
IDENTIFIERS: dict[str, Getter] = {
    "identity": lambda ep, f, side: ",".join(ep.labels),
    "namespace": lambda ep, f, side: ep.namespace,
    "pod": _pod,
    "pod-short": _pod_short,
    "workload": _workload,
    "workload-name": _workload_name,
    "app": lambda ep, f, side: app_of(ep),
    "dns": lambda ep, f, side: ",".join(getattr(f, f"{side}_names")),
    "ip": lambda ep, f, side: getattr(f.IP, side),
    "reserved-identity": _reserved,
}


def _direction(flow: fpb.Flow) -> str:
    if flow.traffic_direction == fpb.TRAFFIC_DIRECTION_UNKNOWN:
        return "unknown"
    return fpb.TrafficDirection.Name(flow.traffic_direction).lower()


LABELS: dict[str, Callable[[fpb.Flow], str]] = {
    "source_pod": lambda f: f.source.pod_name,
    "source_namespace": lambda f: f.source.namespace,
    "source_workload": lambda f: f.source.workloads[0].name if f.source.workloads else "",
    "source_app": lambda f: app_of(f.source),
    "destination_pod": lambda f: f.destination.pod_name,
    "destination_namespace": lambda f: f.destination.namespace,
    "destination_workload": lambda f: (f.destination.workloads[0].name
                                       if f.destination.workloads else ""),
    "destination_app": lambda f: app_of(f.destination),
    "traffic_direction": _direction,
}


def _identifiers(key: str, value: str) -> tuple[str, ...]:
    ids = tuple(v.strip().lower() for v in value.split("|") if v.strip())
    for ident in ids:
        if ident not in IDENTIFIERS:
            raise ValueError(f"{key}={value}: unknown context {ident!r}; use one of "
                             f"{', '.join(IDENTIFIERS)}")
    if not ids:
        raise ValueError(f"{key}: give at least one context ({', '.join(IDENTIFIERS)})")
    return ids


@dataclass(frozen=True)
class ContextOptions:
    source: tuple[str, ...] = ()
    destination: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()          # in LABELS order, whatever order was asked

    @classmethod
    def parse(cls, options: dict[str, str]) -> "ContextOptions":
        source: tuple[str, ...] = ()
        destination: tuple[str, ...] = ()
        labels: tuple[str, ...] = ()
        for key, value in options.items():
            lowered = key.lower()
            if lowered == "sourcecontext":
                source = _identifiers(key, value)
            elif lowered == "destinationcontext":
                destination = _identifiers(key, value)
            elif lowered == "labelscontext":
                asked = {v.strip() for v in value.split(",") if v.strip()}
                unknown = asked - set(LABELS)
                if unknown:
                    raise ValueError(f"labelsContext: unknown {', '.join(sorted(unknown))}; "
                                     f"use {', '.join(LABELS)}")
                labels = tuple(name for name in LABELS if name in asked)
        return cls(source, destination, labels)

    def label_names(self) -> list[str]:
        """In Hubble's order: labelsContext's, then source, then destination."""
        names = list(self.labels)
        if self.source:
            names.append("source")
        if self.destination:
            names.append("destination")
        return names

    def label_values(self, flow: fpb.Flow) -> list[str]:
        values = [LABELS[name](flow) for name in self.labels]
        for ids, ep, side in ((self.source, flow.source, "source"),
                              (self.destination, flow.destination, "destination")):
            if ids:
                values.append(next((v for v in (IDENTIFIERS[i](ep, flow, side) for i in ids)
                                    if v), ""))
        return values
