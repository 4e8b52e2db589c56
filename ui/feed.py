"""The UI's one follower of an Observer (an agent or a relay): flows in, views out.

One thread reads GetFlows (the last `history` flows held, then follow) and, for each
flow, makes its view (ui.flowview), keeps the newest `history` of them for pages that
connect later, adds it to the service map, and hands it to every listener (the web
server's, which crosses into its event loop). When the stream ends or fails it says so
in `status` and dials again after a pause, asking only for flows after the last one it
has, so nothing is shown twice.

The Observer is reached through `agent.api.client.open_channel`, the same channel every
client command uses; tests hand in their own `follow` function instead.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from agent.api.client import open_channel
from core.errors import MembraneError
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from ui.flowview import FlowView, flow_view
from ui.servicemap import ServiceMap

log = logging.getLogger(__name__)

DEFAULT_HISTORY = 2000
RETRY_SECONDS = 2.0

Listener = Callable[[fpb.Flow, FlowView], None]


class FlowCall(Protocol):
    """A streaming GetFlows call: its responses, and a way to end it from elsewhere."""

    def __iter__(self) -> Iterator[opb.GetFlowsResponse]: ...

    def cancel(self) -> bool: ...


Follow = Callable[[opb.GetFlowsRequest], FlowCall]


class _ObserverCall:
    """A GetFlows stream that closes its channel when it ends or is cancelled."""

    def __init__(self, address: str, request: opb.GetFlowsRequest) -> None:
        self.channel = open_channel(address)
        self.stream = opb_grpc.ObserverStub(self.channel).GetFlows(request)

    def __iter__(self) -> Iterator[opb.GetFlowsResponse]:
        try:
            yield from self.stream
        finally:
            self.channel.close()

    def cancel(self) -> bool:
        cancelled = self.stream.cancel()
        self.channel.close()
        return cancelled


def observer_follow(address: str) -> Follow:
    """GetFlows on the Observer at `address` (a unix socket, or TLS host:port)."""
    def follow(request: opb.GetFlowsRequest) -> FlowCall:
        return _ObserverCall(address, request)
    return follow


@dataclass
class FeedStatus:
    address: str
    connected: bool = False
    error: str = ""
    flows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"address": self.address, "connected": self.connected, "error": self.error,
                "flows": self.flows}


class FlowFeed:
    def __init__(self, address: str, follow: Follow | None = None,
                 history: int = DEFAULT_HISTORY) -> None:
        self.follow = follow or observer_follow(address)
        self.history = history
        self.lock = threading.Lock()      # recent, map and status
        self.recent: deque[tuple[fpb.Flow, FlowView]] = deque(maxlen=history)
        self.map = ServiceMap()
        self.status = FeedStatus(address)
        self.listeners: list[Listener] = []
        self._seq = 0
        self._last_time: int = 0          # ns of the newest flow, to resume after it
        self._stop = threading.Event()
        self._call: FlowCall | None = None
        self._thread = threading.Thread(target=self._run, name="ui-feed", daemon=True)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(5)

    # -- reading ---------------------------------------------------------------------
    def snapshot(self) -> tuple[list[tuple[fpb.Flow, FlowView]], dict[str, Any], int]:
        """The flows held, the map's elements and its version, consistently."""
        with self.lock:
            return list(self.recent), self.map.elements(), self.map.version

    def map_version(self) -> int:
        with self.lock:
            return self.map.version

    def status_dict(self) -> dict[str, Any]:
        with self.lock:
            return self.status.as_dict()

    def set_pods(self, pods: list[tuple[str, str, list[str], int]]) -> None:
        with self.lock:
            self.map.set_pods(pods)

    # -- the thread ------------------------------------------------------------------
    def _request(self) -> opb.GetFlowsRequest:
        request = opb.GetFlowsRequest(follow=True)
        if self._last_time:
            request.since.FromNanoseconds(self._last_time + 1)
        else:
            request.number = self.history
        return request

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._call = self.follow(self._request())
                self._set(connected=True, error="")
                for resp in self._call:
                    if resp.WhichOneof("response_types") == "flow":
                        self._receive(resp.flow, resp.node_name)
                self._set(connected=False, error="the Observer ended the stream")
            except grpc.RpcError as err:
                if self._stop.is_set():
                    return
                self._set(connected=False, error=f"{err.code().name}: {err.details()}")
            except MembraneError as err:
                self._set(connected=False, error=str(err))
            self._stop.wait(RETRY_SECONDS)

    def _set(self, connected: bool, error: str) -> None:
        with self.lock:
            self.status.connected, self.status.error = connected, error
        if error:
            log.info("ui: %s: %s", self.status.address, error)

    def _receive(self, flow: fpb.Flow, node: str) -> None:
        with self.lock:
            self._seq += 1
            view = flow_view(flow, self._seq, node)
            self.recent.append((flow, view))
            self.map.add(view)
            self.status.flows += 1
            if flow.HasField("time"):
                self._last_time = max(self._last_time, flow.time.ToNanoseconds())
            listeners = list(self.listeners)
        for listener in listeners:
            listener(flow, view)
