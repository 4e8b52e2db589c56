"""Prometheus metrics for flows, drops, policy verdicts, lost events and regeneration.

Named like Hubble's (hubble_flows_processed_total, hubble_drop_total, ...) with the
`membrane_` prefix, so its dashboards translate by a rename. deploy/dashboards/
membrane-hubble.json queries exactly these names:

  membrane_flows_processed_total{type, subtype, verdict}
  membrane_drop_total{reason, direction, protocol, source_pod}
  membrane_policy_verdicts_total{direction, match, action}
  membrane_lost_events_total{source}
  membrane_endpoint_regeneration_time_seconds   (histogram; the agent observes it)

`FlowMetrics` is a FlowObserver listener: pass it in `listeners=[...]`.
"""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client import start_http_server

from core.errors import MembraneError
from observe.events import match_type_name
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE, TRACE_TO_ENDPOINT
from observe.flow import drop_reason_name, traffic_direction_name
from observe.gen import flow_pb2 as fpb

_TYPES = {MSG_DROP: "Drop", MSG_TRACE: "Trace", MSG_POLICY_VERDICT: "PolicyVerdict"}


class FlowMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY,
                 source_pod_label: bool = True) -> None:
        # Per-pod labels make the "top source pods" panel possible; a very large
        # cluster may turn them off to bound the series count.
        self.source_pod_label = source_pod_label
        self.flows = Counter("membrane_flows_processed_total",
                             "Flows processed, by event type and verdict",
                             ["type", "subtype", "verdict"], registry=registry)
        self.drops = Counter("membrane_drop_total", "Packets dropped, by reason",
                             ["reason", "direction", "protocol", "source_pod"],
                             registry=registry)
        self.verdicts = Counter("membrane_policy_verdicts_total",
                                "Policy verdicts of new connections",
                                ["direction", "match", "action"], registry=registry)
        self.lost_events = Counter("membrane_lost_events_total",
                                   "Events lost before they became flows a reader saw",
                                   ["source"], registry=registry)
        self.regeneration = Histogram(
            "membrane_endpoint_regeneration_time_seconds",
            "Time to compute and write one endpoint's policy to the datapath",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry)

    # -- FlowObserver listener -----------------------------------------------------
    def flow(self, flow: fpb.Flow) -> None:
        self.flow_count(flow, 1)

    def flow_count(self, flow: fpb.Flow, n: int) -> None:
        """n flows like this one (the observer counts a batch per kind of flow: same
        type, verdict, direction, match, reason, protocol and source)."""
        et = flow.event_type
        kind = _TYPES.get(et.type, "Unknown")
        subtype = ""
        if et.type == MSG_TRACE:
            subtype = "to-endpoint" if et.sub_type == TRACE_TO_ENDPOINT else "from-endpoint"
        verdict = fpb.Verdict.Name(flow.verdict)
        self.flows.labels(kind, subtype, verdict).inc(n)
        direction = traffic_direction_name(flow.traffic_direction)
        if et.type == MSG_POLICY_VERDICT:
            action = {fpb.FORWARDED: "forwarded", fpb.AUDIT: "audit"}.get(flow.verdict,
                                                                         "dropped")
            self.verdicts.labels(direction, match_type_name(flow.policy_match_type),
                                 action).inc(n)
        elif flow.verdict == fpb.DROPPED:
            reason = drop_reason_name(flow.drop_reason) or str(flow.drop_reason)
            # The flow's Layer4 kind (TCP, UDP, ICMPv4, SCTP), as the dashboards query it.
            protocol = flow.l4.WhichOneof("protocol") or "other"
            src = flow.source
            pod = (f"{src.namespace}/{src.pod_name}"
                   if self.source_pod_label and src.pod_name else "")
            self.drops.labels(reason, direction, protocol, pod).inc(n)

    def lost(self, source: str, n: int) -> None:
        self.lost_events.labels(source).inc(n)

    # -- for the agent -------------------------------------------------------------
    def observe_regeneration(self, seconds: float) -> None:
        self.regeneration.observe(seconds)


_default: FlowMetrics | None = None
_default_lock = threading.Lock()


def default_metrics() -> FlowMetrics:
    """The process-wide metrics on prometheus_client's default registry."""
    global _default
    with _default_lock:
        if _default is None:
            _default = FlowMetrics()
        return _default


def observe_regeneration(seconds: float) -> None:
    """The agent calls this after regenerating an endpoint (seconds taken)."""
    default_metrics().observe_regeneration(seconds)


def start_metrics_server(port: int, addr: str = "127.0.0.1",
                         registry: CollectorRegistry = REGISTRY
                         ) -> tuple[WSGIServer, threading.Thread]:
    """Serves /metrics over HTTP on addr:port in a daemon thread (returns the server and
    the thread; server.shutdown() ends it). Loopback by default:
    exposing flow metrics beyond the node is a deliberate choice (addr="0.0.0.0")."""
    try:
        return start_http_server(port, addr=addr, registry=registry)
    except OSError as err:
        raise MembraneError(f"metrics: cannot listen on {addr}:{port}: "
                            f"{err.strerror or err}") from None
