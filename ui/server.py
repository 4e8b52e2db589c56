"""`membrane ui`'s web server (aiohttp): one page, its static files, a JSON API and a
Server-Sent Events stream.

    GET /                  the page (ui/static/index.html)
    GET /static/...        its script, style and the vendored libraries (offline)
    GET /api/status        the feed: which Observer, connected, flows received
    GET /api/map           the service map's Cytoscape.js elements
    GET /api/flows?...     the flows held that pass the filters (ui.filters), newest last
    GET /api/matrix?ports=TCP/80,UDP/53   the policy matrix of the policies in force
    GET /api/events?...    SSE: `status`, then `map`, then the flows held that pass the
                           filters, then every new one (`flow`), the map again whenever
                           it changed (at most every MAP_INTERVAL), and `status`

Flows cross from the feed's thread into the event loop with call_soon_threadsafe; each
page's stream has a bounded queue, and a page too slow to keep up loses flows (counted
in its next `status`) rather than holding the server's memory.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from observe.filters.build import FlowFilterSet
from observe.gen.flow import flow_pb2 as fpb
from ui.feed import FlowFeed
from ui.filters import filter_set
from ui.flowview import FlowView
from ui.policies import AgentsView, matrix

STATIC = Path(__file__).resolve().parent / "static"
MAP_INTERVAL = 0.5          # seconds between map updates on the stream, at most
PODS_INTERVAL = 5.0         # seconds between asking the agents for their pods
HEARTBEAT = 15.0            # an SSE comment keeps proxies from closing an idle stream
QUEUE_SIZE = 2000           # events a page's stream may have waiting
INITIAL_FLOWS = 500         # flows held sent to a page when it connects
MATRIX_PORTS = 6            # ports the matrix shows by default: the most seen

FEED_KEY = web.AppKey("feed", FlowFeed)
AGENTS_KEY = web.AppKey("agents", AgentsView)


@dataclass(eq=False)
class Subscriber:
    keep: FlowFilterSet
    queue: asyncio.Queue[tuple[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    lost: int = 0

    def offer(self, event: str, data: Any) -> None:
        try:
            self.queue.put_nowait((event, data))
        except asyncio.QueueFull:
            self.lost += 1


class Hub:
    """Every page's stream; used only on the event loop."""

    def __init__(self) -> None:
        self.subscribers: set[Subscriber] = set()

    def flow(self, flow: fpb.Flow, view: FlowView) -> None:
        for sub in self.subscribers:
            if sub.keep(flow):
                sub.offer("flow", view)

    def event(self, name: str, data: Any) -> None:
        for sub in self.subscribers:
            sub.offer(name, data)


HUB_KEY = web.AppKey("hub", Hub)


def seen_ports(elements: dict[str, Any], limit: int = MATRIX_PORTS) -> list[tuple[str, int]]:
    """The ports the map's edges carry, the most used first."""
    counts: dict[tuple[str, int], int] = {}
    for edge in elements["edges"]:
        total = sum(edge["data"]["verdicts"].values())
        for text in edge["data"]["ports"]:
            protocol, _, port = text.partition("/")
            if port.isdigit():
                counts[(protocol, int(port))] = counts.get((protocol, int(port)), 0) + total
    return sorted(counts, key=lambda p: (-counts[p], p))[:limit]


def parse_ports(text: str) -> list[tuple[str, int]]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        protocol, _, port = item.upper().partition("/")
        if protocol not in ("TCP", "UDP", "SCTP") or not port.isdigit() or not (
                0 < int(port) <= 65535):
            raise web.HTTPBadRequest(text=f"port {item!r}: write PROTOCOL/PORT, e.g. TCP/80")
        out.append((protocol, int(port)))
    return out


def _filters(request: web.Request) -> FlowFilterSet:
    try:
        return filter_set(request.query)
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"bad filter: {err}") from None


# -- handlers ------------------------------------------------------------------------

async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[FEED_KEY].status_dict())


async def service_map(request: web.Request) -> web.Response:
    _, elements, _ = request.app[FEED_KEY].snapshot()
    return web.json_response(elements)


async def flows(request: web.Request) -> web.Response:
    keep = _filters(request)
    held, _, _ = request.app[FEED_KEY].snapshot()
    return web.json_response([view for flow, view in held if keep(flow)][-INITIAL_FLOWS:])


async def policy_matrix(request: web.Request) -> web.Response:
    app = request.app
    ports = parse_ports(request.query.get("ports", ""))
    if not ports:
        ports = seen_ports(app[FEED_KEY].snapshot()[1])
    view = await asyncio.get_running_loop().run_in_executor(None, app[AGENTS_KEY].read)
    result = await asyncio.get_running_loop().run_in_executor(None, matrix, view, ports)
    return web.json_response(result)


async def events(request: web.Request) -> web.StreamResponse:
    app = request.app
    sub = Subscriber(_filters(request))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    held, elements, _ = app[FEED_KEY].snapshot()
    hub = app[HUB_KEY]
    hub.subscribers.add(sub)   # before sending what is held: nothing falls in between
    try:
        await _send(response, "status", app[FEED_KEY].status_dict())
        await _send(response, "map", elements)
        await _send(response, "flows", [v for f, v in held if sub.keep(f)][-INITIAL_FLOWS:])
        while True:
            try:
                name, data = await asyncio.wait_for(sub.queue.get(), HEARTBEAT)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if name == "status" and sub.lost:
                data = {**data, "lost": sub.lost}
            await _send(response, name, data)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.subscribers.discard(sub)
    return response


async def _send(response: web.StreamResponse, name: str, data: Any) -> None:
    payload = json.dumps(data, separators=(",", ":"))
    await response.write(f"event: {name}\ndata: {payload}\n\n".encode())


# -- background tasks ----------------------------------------------------------------

async def _map_updates(app: web.Application) -> None:
    feed, hub = app[FEED_KEY], app[HUB_KEY]
    sent, status_sent = -1, dict[str, Any]()
    while True:
        await asyncio.sleep(MAP_INTERVAL)
        version = feed.map_version()
        if version != sent and hub.subscribers:
            _, elements, sent = feed.snapshot()
            hub.event("map", elements)
        now = feed.status_dict()
        if now != status_sent:
            hub.event("status", now)
            status_sent = now


async def _pod_updates(app: web.Application) -> None:
    """Idle pods on the map too: the agents' endpoints, every PODS_INTERVAL."""
    loop = asyncio.get_running_loop()
    while True:
        view = await loop.run_in_executor(None, app[AGENTS_KEY].read)
        app[FEED_KEY].set_pods(view.pods())
        await asyncio.sleep(PODS_INTERVAL)


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    loop = asyncio.get_running_loop()
    feed, hub = app[FEED_KEY], app[HUB_KEY]

    def on_flow(flow: fpb.Flow, view: FlowView) -> None:   # on the feed's thread
        loop.call_soon_threadsafe(hub.flow, flow, view)

    feed.listeners.append(on_flow)
    feed.start()
    tasks = [asyncio.create_task(_map_updates(app)), asyncio.create_task(_pod_updates(app))]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await loop.run_in_executor(None, feed.stop)


def make_app(feed: FlowFeed, agents: AgentsView) -> web.Application:
    app = web.Application()
    app[FEED_KEY] = feed
    app[HUB_KEY] = Hub()
    app[AGENTS_KEY] = agents
    app.router.add_get("/", index)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/map", service_map)
    app.router.add_get("/api/flows", flows)
    app.router.add_get("/api/matrix", policy_matrix)
    app.router.add_get("/api/events", events)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.cleanup_ctx.append(_lifecycle)
    return app


Ready = Callable[[str, int], None]


def serve(feed: FlowFeed, agents: AgentsView, host: str, port: int,
          ready: Sequence[Ready] = ()) -> None:
    """Runs until interrupted (Ctrl-C). `ready` callbacks get the bound (host, port)."""
    async def main() -> None:
        runner = web.AppRunner(make_app(feed, agents), handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0] if runner.addresses else (host, port)
        for callback in ready:
            callback(bound[0], bound[1])
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    asyncio.run(main())
