"""Flow metrics for Prometheus, with Hubble's names, labels and configuration.

    hubble_flows_processed_total{protocol, type, subtype, verdict, ...}
    hubble_drop_total{..., reason, protocol}
    hubble_policy_verdicts_total{direction, match, action, ...}
    hubble_port_distribution_total{protocol, port, ...}
    hubble_tcp_flags_total{flag, family, ...}
    hubble_lost_events_total{source}

and, with "policy", one series Hubble does not have, since Membrane's flows name the
policies behind a verdict (observe.flow): membrane_policy_verdicts_total{policy,
direction, action}, one count per policy that allowed (or isolated) the flow.

`...` are the context labels a metric's options ask for (observe.metrics_context), and
metrics are chosen and configured as Cilium's `--hubble-metrics` does:

    "flow drop:sourceContext=pod;destinationContext=pod policy port-distribution tcp"

entries separated by spaces, a metric's options after `:` separated by `;`.
`HubbleMetrics` is a FlowObserver listener: it counts each kind of flow of a batch once,
with its count (`flow_count`). `serve_metrics` serves a registry over HTTP.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, start_http_server

from core.errors import MembraneError
from observe.events import match_type_name
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE, TRACE_POINT_NAMES
from observe.flow import policy_text
from observe.gen.flow import flow_pb2 as fpb
from observe.metrics_context import ContextOptions

NAMESPACE = "hubble"
DEFAULT_METRICS = "flow drop policy port-distribution tcp"
HUBBLE_METRICS_PORT = 9965   # Cilium's --hubble-metrics-server port
AGENT_METRICS_PORT = 9962    # Cilium's --prometheus-serve-addr port

_TYPES = {MSG_DROP: "Drop", MSG_TRACE: "Trace", MSG_POLICY_VERDICT: "PolicyVerdict"}
_RESERVED_HOST, _RESERVED_HEALTH = 1, 4


@dataclass(frozen=True)
class MetricSpec:
    name: str
    options: dict[str, str] = field(default_factory=dict)


def parse_metrics(text: str) -> list[MetricSpec]:
    """"drop:sourceContext=pod;destinationContext=pod flow" -> MetricSpecs; a
    ValueError names what is wrong."""
    specs = []
    for entry in text.split():
        name, _, opts = entry.partition(":")
        options: dict[str, str] = {}
        for opt in filter(None, opts.split(";")):
            key, sep, value = opt.partition("=")
            if not sep:
                raise ValueError(f"metric {name}: option {opt!r} is not KEY=VALUE")
            options[key.strip()] = value.strip()
        if name not in HANDLERS:
            raise ValueError(f"unknown metric {name!r}: use {', '.join(HANDLERS)}")
        ContextOptions.parse(options)     # fail now, not at the first flow
        specs.append(MetricSpec(name, options))
    return specs


def flow_protocol(flow: fpb.Flow) -> str:
    """Hubble's protocol label: the Layer4 kind ("TCP", "ICMPv4"), else "Unknown flow"."""
    return flow.l4.WhichOneof("protocol") or "Unknown flow"


class _Handler:
    """One metric: its counter, with its context labels after (or before) its own."""

    own: tuple[str, ...] = ()
    name = ""
    help = ""
    context_first = False     # hubble_drop_total puts the context labels first

    def __init__(self, registry: CollectorRegistry, options: dict[str, str]) -> None:
        self.context = ContextOptions.parse(options)
        ctx = self.context.label_names()
        labels = [*ctx, *self.own] if self.context_first else [*self.own, *ctx]
        self.counter = Counter(f"{NAMESPACE}_{self.name}", self.help, labels,
                               registry=registry)

    def _inc(self, own: list[str], flow: fpb.Flow, n: int) -> None:
        ctx = self.context.label_values(flow)
        values = [*ctx, *own] if self.context_first else [*own, *ctx]
        self.counter.labels(*values).inc(n)

    def count(self, flow: fpb.Flow, n: int) -> None:
        raise NotImplementedError


class FlowHandler(_Handler):
    name, help = "flows_processed_total", "Total number of flows processed"
    own = ("protocol", "type", "subtype", "verdict")

    def count(self, flow: fpb.Flow, n: int) -> None:
        et = flow.event_type.type
        kind = _TYPES.get(et, "Unknown")
        subtype = (TRACE_POINT_NAMES.get(flow.event_type.sub_type, "")
                   if et == MSG_TRACE else "" if et in _TYPES else str(et))
        self._inc([flow_protocol(flow), kind, subtype, fpb.Verdict.Name(flow.verdict)],
                  flow, n)


class DropHandler(_Handler):
    name, help = "drop_total", "Number of drops"
    own = ("reason", "protocol")
    context_first = True

    def count(self, flow: fpb.Flow, n: int) -> None:
        if flow.verdict != fpb.DROPPED:
            return
        self._inc([fpb.DropReason.Name(flow.drop_reason_desc), flow_protocol(flow)], flow, n)


class PolicyHandler(_Handler):
    name, help = "policy_verdicts_total", "Total number of network policy verdicts"
    own = ("direction", "match", "action")

    def __init__(self, registry: CollectorRegistry, options: dict[str, str]) -> None:
        super().__init__(registry, options)
        self.by_policy = Counter("membrane_policy_verdicts_total",
                                 "Network policy verdicts by the policy behind them",
                                 ["policy", "direction", "action"], registry=registry)

    def count(self, flow: fpb.Flow, n: int) -> None:
        if flow.event_type.type != MSG_POLICY_VERDICT:
            return
        # As Hubble: the host's own connections and health checks are not counted.
        if flow.source.identity == _RESERVED_HOST or _RESERVED_HEALTH in (
                flow.source.identity, flow.destination.identity):
            return
        direction = fpb.TrafficDirection.Name(flow.traffic_direction).lower()
        match = match_type_name(flow.policy_match_type).lower()
        action = fpb.Verdict.Name(flow.verdict).lower()
        self._inc([direction, match, action], flow, n)
        ingress = flow.traffic_direction == fpb.INGRESS
        if flow.verdict == fpb.FORWARDED:
            policies = flow.ingress_allowed_by if ingress else flow.egress_allowed_by
        else:
            policies = flow.ingress_denied_by if ingress else flow.egress_denied_by
        for policy in policies:
            self.by_policy.labels(policy_text(policy), direction, action).inc(n)


class PortDistributionHandler(_Handler):
    name, help = "port_distribution_total", "Numbers of packets distributed by destination port"
    own = ("protocol", "port")

    def count(self, flow: fpb.Flow, n: int) -> None:
        if flow.verdict != fpb.FORWARDED or (flow.HasField("is_reply")
                                             and flow.is_reply.value):
            return
        kind = flow.l4.WhichOneof("protocol")
        if kind in ("TCP", "UDP", "SCTP"):
            port = getattr(flow.l4, str(kind)).destination_port
            self._inc([str(kind), str(port)], flow, n)
        elif kind in ("ICMPv4", "ICMPv6"):
            self._inc([str(kind), "0"], flow, n)


class TcpHandler(_Handler):
    name, help = "tcp_flags_total", "TCP flag occurrences"
    own = ("flag", "family")

    def count(self, flow: fpb.Flow, n: int) -> None:
        if flow.verdict != fpb.FORWARDED or flow.l4.WhichOneof("protocol") != "TCP":
            return
        flags = flow.l4.TCP.flags
        family = fpb.IPVersion.Name(flow.IP.ipVersion)
        for flag, present in (("FIN", flags.FIN), ("SYN-ACK", flags.SYN and flags.ACK),
                              ("SYN", flags.SYN and not flags.ACK), ("RST", flags.RST)):
            if present:
                self._inc([flag, family], flow, n)


HANDLERS: dict[str, type[_Handler]] = {
    "flow": FlowHandler, "drop": DropHandler, "policy": PolicyHandler,
    "port-distribution": PortDistributionHandler, "tcp": TcpHandler,
}


class HubbleMetrics:
    """The flow metrics a `--hubble-metrics` text asks for, on `registry`."""

    def __init__(self, registry: CollectorRegistry | None = None,
                 metrics: str | list[MetricSpec] = DEFAULT_METRICS) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        specs = parse_metrics(metrics) if isinstance(metrics, str) else metrics
        self.handlers = [HANDLERS[s.name](self.registry, s.options) for s in specs]
        self.lost_events = Counter(f"{NAMESPACE}_lost_events_total",
                                   "Number of lost events", ["source"],
                                   registry=self.registry)

    # -- FlowObserver listener -----------------------------------------------------
    def flow(self, flow: fpb.Flow) -> None:
        self.flow_count(flow, 1)

    def flow_count(self, flow: fpb.Flow, n: int) -> None:
        """n flows like this one (but for time and source port)."""
        for handler in self.handlers:
            handler.count(flow, n)

    def lost(self, source: str, n: int) -> None:
        self.lost_events.labels(source).inc(n)


def listen_address(text: str, default_port: int) -> tuple[str, int]:
    """":9965" (all addresses), "127.0.0.1:9965", "[::1]:9965" or a bare port."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "0.0.0.0"
    try:
        number = int(port) if port else default_port
    except ValueError:
        raise MembraneError(f"metrics address {text!r}: use [HOST]:PORT, e.g. "
                            f":{default_port}") from None
    return host, number


def serve_metrics(address: str, registry: CollectorRegistry, default_port: int
                  ) -> tuple[WSGIServer, threading.Thread]:
    """Serves /metrics of `registry` on `address` in a daemon thread (server.shutdown()
    ends it). Raises MembraneError naming the address it could not listen on."""
    host, port = listen_address(address, default_port)
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise MembraneError(f"metrics: cannot listen on {host}:{port}: "
                            f"{err.strerror or err}") from None


