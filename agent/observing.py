"""Datapath events to flows, metrics and the export file: the agent's side of observe.

    datapath.poll_events ──EventBatch──> FlowObserver.on_events ──> flow ring ──> Observer
    (the "events" thread)                (queue, worker,               │          (gRPC)
    datapath.lost_events ──report_lost──┘  HubbleMetrics)               └──> FlowExporter
                                                                             (a follower)

The FlowObserver, the metrics and the exporter are built by the composition root
(`observing_parts`) and handed in; this part hands the batch entry point to the
datapath, runs the events loop, serves the metrics endpoints and runs the exporter.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry

from agent.api.status import AgentStatus
from agent.config import AgentConfig
from agent.datapath.interface import Datapath
from observe.agent_metrics import AgentGauges, AgentMetrics
from observe.export import MB, ExportConfig, FlowExporter
from observe.metrics import AGENT_METRICS_PORT, HUBBLE_METRICS_PORT, HubbleMetrics
from observe.metrics import serve_metrics
from observe.ring import FlowObserver

POLL_TIMEOUT_MS = 100
# The kernel's lost counter is cumulative, and reading it walks a per-CPU map: once per
# this many seconds delays a report, never loses a count.
LOST_CHECK_INTERVAL = 0.1


@dataclass(frozen=True)
class MetricsEndpoint:
    address: str                  # "[HOST]:PORT"
    registry: CollectorRegistry
    default_port: int


@dataclass(frozen=True)
class Metrics:
    """The agent's metrics and where each set is served."""

    hubble: HubbleMetrics
    agent: AgentMetrics
    endpoints: tuple[MetricsEndpoint, ...]


def make_metrics(config: AgentConfig) -> Metrics:
    """Hubble's flow metrics and the agent's own, on one registry each; --metrics-port
    (the older flag) puts both on one loopback listener."""
    if config.metrics_port and not (config.hubble_metrics_server
                                    or config.prometheus_serve_addr):
        shared = CollectorRegistry()
        return Metrics(HubbleMetrics(shared, config.hubble_metrics), AgentMetrics(shared),
                       (MetricsEndpoint(f"127.0.0.1:{config.metrics_port}", shared,
                                        config.metrics_port),))
    hubble = HubbleMetrics(CollectorRegistry(), config.hubble_metrics)
    agent = AgentMetrics(CollectorRegistry())
    endpoints = []
    if config.hubble_metrics_server:
        endpoints.append(MetricsEndpoint(config.hubble_metrics_server, hubble.registry,
                                         HUBBLE_METRICS_PORT))
    if config.prometheus_serve_addr:
        endpoints.append(MetricsEndpoint(config.prometheus_serve_addr, agent.registry,
                                         AGENT_METRICS_PORT))
    return Metrics(hubble, agent, tuple(endpoints))


def export_config(config: AgentConfig) -> ExportConfig | None:
    if not config.export_file:
        return None
    return ExportConfig(config.export_file, max_size=config.export_file_max_size_mb * MB,
                        max_backups=config.export_file_max_backups,
                        allowlist=config.export_allowlist, denylist=config.export_denylist)


class EventPipeline:
    def __init__(self, datapath: Datapath, observer: FlowObserver, stop: threading.Event,
                 metrics: Metrics | None = None, export: ExportConfig | None = None) -> None:
        self._datapath = datapath
        self.observer = observer
        self._stop = stop
        self.metrics = metrics
        self._export = export
        self.exporter: FlowExporter | None = None
        self._servers: list[WSGIServer] = []
        self._lost_seen = 0

    def start(self) -> None:
        self.observer.start()
        self._datapath.set_batch_handler(self.observer.on_events)  # one EventBatch per poll
        if self._export is not None:
            self.exporter = FlowExporter(self.observer, self._export)
            self.exporter.start()
        for endpoint in self.metrics.endpoints if self.metrics else ():
            server, _ = serve_metrics(endpoint.address, endpoint.registry,
                                      endpoint.default_port)
            self._servers.append(server)

    def run(self) -> None:
        """The events thread: poll, and report the kernel's losses to the observer."""
        next_lost_check = 0.0
        while not self._stop.is_set():
            self._datapath.poll_events(POLL_TIMEOUT_MS)
            now = time.monotonic()
            if now < next_lost_check:
                continue
            next_lost_check = now + LOST_CHECK_INTERVAL
            lost = self._datapath.lost_events()
            if lost > self._lost_seen:
                self.observer.report_lost("kernel", lost - self._lost_seen)
                self._lost_seen = lost

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self.exporter is not None:
            self.exporter.stop()
        self.observer.stop()


class StatusSource(Protocol):
    """What the agent metrics' gauges read: agent.status.StatusReporter is one."""

    def status(self) -> AgentStatus: ...


def gauges_from(source: StatusSource) -> AgentGauges:
    """The agent metrics' gauges from its typed status (read at scrape time)."""
    st = source.status()
    return AgentGauges(endpoints_by_state=dict(st.endpoints_by_state),
                       maps={m.name: (m.entries, m.max_entries) for m in st.maps},
                       lost_events=dict(st.observer.lost))
