"""Datapath events to flows: the agent's side of the observer.

    datapath.poll_events ──EventBatch──> FlowObserver.on_events ──> flow ring ──> Observer
    (the "events" thread)                (queue, worker, metrics)                 (gRPC)
    datapath.lost_events ──report_lost("kernel", n)──┘

The FlowObserver is built by the composition root with the agent's metadata provider
(agent.flowmeta) and handed in; this part hands its batch entry point to the datapath,
runs the events loop, and serves Prometheus metrics when asked to.
"""

from __future__ import annotations

import threading
import time

from agent.datapath.interface import Datapath
from observe.metrics import start_metrics_server
from observe.ring import FlowObserver

POLL_TIMEOUT_MS = 100
# The kernel's lost counter is cumulative, and reading it walks a per-CPU map: once per
# this many seconds delays a report, never loses a count.
LOST_CHECK_INTERVAL = 0.1


class EventPipeline:
    def __init__(self, datapath: Datapath, observer: FlowObserver, stop: threading.Event,
                 metrics_port: int | None = None) -> None:
        self._datapath = datapath
        self.observer = observer
        self._stop = stop
        self._metrics_port = metrics_port
        self._lost_seen = 0

    def start(self) -> None:
        self.observer.start()
        self._datapath.set_batch_handler(self.observer.on_events)  # one EventBatch per poll
        if self._metrics_port:
            start_metrics_server(self._metrics_port)

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
        self.observer.stop()
