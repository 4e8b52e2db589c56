"""`membrane ui` without a browser: the service map's folding and counts, the page's
filters as observe's, the feed resuming after the last flow, and the server's JSON and
SSE stream over a real aiohttp server fed by a scripted Observer."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.api.gen import agent_pb2 as pb
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from tests.unit.test_policy_suggest import Cluster
from ui.feed import FlowFeed
from ui.filters import filter_set, flow_filters
from ui.flowview import flow_view
from ui.policies import AgentsView, ClusterView, matrix
from ui.server import make_app, parse_ports, seen_ports
from ui.servicemap import ServiceMap


def demo() -> Cluster:
    c = Cluster()
    c.pod("default/frontend-a", {"app": "frontend"}, workload="frontend")
    c.pod("default/frontend-b", {"app": "frontend"}, workload="frontend")
    c.pod("default/backend-x", {"app": "backend"}, workload="backend")
    c.pod("other/client", {"app": "client"})
    return c


def views(c: Cluster, *flows: opb.GetFlowsResponse) -> list[dict[str, Any]]:
    return [flow_view(r.flow, i, r.node_name) for i, r in enumerate(flows, 1)]


def test_the_map_folds_pods_into_workloads_and_counts_each_verdict() -> None:
    c = demo()
    smap = ServiceMap()
    for view in views(c, c.flow("default/frontend-a", "default/backend-x", 8080),
                      c.flow("default/frontend-b", "default/backend-x", 8080),
                      c.flow("default/backend-x", "default/frontend-a", 8080, reply=True),
                      c.flow("other/client", "default/backend-x", 8080, verdict=fpb.DROPPED),
                      c.flow("default/frontend-a", "93.184.216.34", 443)):
        smap.add(view)
    elements = smap.elements()
    nodes = {n["data"]["id"]: n["data"] for n in elements["nodes"]}
    assert nodes["wl:default/frontend"]["pods"] == ["frontend-a", "frontend-b"]
    assert nodes["wl:default/frontend"]["label"] == "frontend\nfrontend-a\nfrontend-b"
    assert nodes["wl:default/frontend"]["parent"] == "ns:default"
    assert nodes["wl:other/client"]["label"] == "client"   # a bare pod: its name once
    assert nodes["ip:93.184.216.34"]["kind"] == "world"
    edges = {e["data"]["id"]: e for e in elements["edges"]}
    assert sorted(edges) == ["wl:default/frontend->ip:93.184.216.34",
                             "wl:default/frontend->wl:default/backend",
                             "wl:other/client->wl:default/backend"]   # no reply edge
    ok = edges["wl:default/frontend->wl:default/backend"]
    assert ok["data"]["verdicts"] == {"FORWARDED": 2} and ok["classes"] == ""
    dropped = edges["wl:other/client->wl:default/backend"]
    assert dropped["classes"] == "dropped"
    assert dropped["data"]["reasons"] == {"POLICY_DENIED": 1}
    assert dropped["data"]["ports"] == ["TCP/8080"]


def test_idle_pods_from_the_agents_join_their_workload_once_a_flow_names_it() -> None:
    c = demo()
    smap = ServiceMap()
    smap.set_pods([("default", "backend-x", ["k8s:app=backend"], 300)])
    assert [n["data"]["id"] for n in smap.elements()["nodes"]] == [
        "ns:default", "wl:default/backend-x"]
    smap.add(views(c, c.flow("default/frontend-a", "default/backend-x", 80))[0])
    ids = {n["data"]["id"] for n in smap.elements()["nodes"]}
    assert "wl:default/backend" in ids and "wl:default/backend-x" not in ids


def test_the_filters_are_observes_either_side_filters() -> None:
    c = demo()
    forwarded = c.flow("default/frontend-a", "default/backend-x", 8080).flow
    dropped = c.flow("other/client", "default/backend-x", 9090, verdict=fpb.DROPPED).flow
    assert flow_filters({}) == []
    assert len(flow_filters({"label": "app=backend"})) == 2
    keep = filter_set({"label": "app=backend", "verdict": "dropped"})
    assert not keep(forwarded) and keep(dropped)
    assert filter_set({"namespace": "other"})(dropped)
    assert not filter_set({"namespace": "other"})(forwarded)
    assert filter_set({"pod": "default/front"})(forwarded)
    assert filter_set({"port": "9090"})(dropped) and not filter_set({"port": "9090"})(forwarded)
    with pytest.raises(ValueError):
        filter_set({"verdict": "MAYBE"})
    with pytest.raises(ValueError):
        filter_set({"port": "http"})


def test_ports_for_the_matrix_are_the_most_seen_and_parsed_strictly() -> None:
    elements = {"edges": [{"data": {"verdicts": {"FORWARDED": 5}, "ports": ["TCP/8080"]}},
                          {"data": {"verdicts": {"DROPPED": 1}, "ports": ["UDP/53", "ICMP"]}}]}
    assert seen_ports(elements) == [("TCP", 8080), ("UDP", 53)]
    assert parse_ports("tcp/80, UDP/53") == [("TCP", 80), ("UDP", 53)]
    with pytest.raises(Exception):
        parse_ports("80")


def test_the_matrix_is_policy_matrix_over_the_agents_pods_and_policies() -> None:
    def endpoint(i: int, name: str) -> pb.Endpoint:
        return pb.Endpoint(id=i, namespace="default", pod=name, identity=300 + i,
                           ipv4=f"10.0.0.{i}", labels=[f"k8s:app={name}",
                                                       "k8s:io.kubernetes.pod.namespace=default"])
    deny = pb.PolicyInfo(namespace="default", name="deny", yaml=(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, "
        "namespace: default}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  ingress:\n"
        "  - from: [{podSelector: {matchLabels: {app: a}}}]\n    ports: [{port: 80}]\n"))
    view = ClusterView([endpoint(1, "a"), endpoint(2, "b"), endpoint(3, "c")], [deny])
    result = matrix(view, [("TCP", 80), ("TCP", 81)])
    assert result["pods"] == ["default/a", "default/b", "default/c"]
    assert result["policies"] == ["default/deny"] and result["errors"] == []
    b = 1
    assert [row[b] for row in result["allowed"]["TCP/80"]] == [True, True, False]
    assert [row[b] for row in result["allowed"]["TCP/81"]] == [False, True, False]


def test_without_an_agent_the_matrix_says_what_to_pass() -> None:
    view = AgentsView([]).read()
    assert "--agent" in view.errors[0]


# -- the feed and the server, with a scripted Observer --------------------------------

class ScriptedObserver:
    """Answers GetFlows with the flows given, then follows `live` until cancelled."""

    def __init__(self, history: list[opb.GetFlowsResponse]) -> None:
        self.history = history
        self.live: list[opb.GetFlowsResponse] = []
        self.requests: list[opb.GetFlowsRequest] = []
        self.wake = threading.Condition()
        self.cancelled = False

    def push(self, resp: opb.GetFlowsResponse) -> None:
        with self.wake:
            self.live.append(resp)
            self.wake.notify_all()

    def __call__(self, request: opb.GetFlowsRequest) -> "ScriptedObserver":
        self.requests.append(request)
        return self

    def __iter__(self) -> Iterator[opb.GetFlowsResponse]:
        yield from self.history
        while True:
            with self.wake:
                while not self.live and not self.cancelled:
                    self.wake.wait()
                if self.cancelled:
                    return
                resp = self.live.pop(0)
            yield resp

    def cancel(self) -> bool:
        with self.wake:
            self.cancelled = True
            self.wake.notify_all()
        return True


def timed(c: Cluster, resp: opb.GetFlowsResponse, second: int) -> opb.GetFlowsResponse:
    resp.flow.time.FromSeconds(1_700_000_000 + second)
    return resp


def test_the_feed_asks_for_history_first_and_resumes_after_its_last_flow() -> None:
    c = demo()
    observer = ScriptedObserver([timed(c, c.flow("default/frontend-a", "default/backend-x",
                                                 80), 5)])
    feed = FlowFeed("scripted", follow=observer, history=100)
    feed._call = observer
    for resp in observer.history:
        feed._receive(resp.flow, resp.node_name)
    first = opb.GetFlowsRequest(follow=True, number=100)
    assert FlowFeed("scripted", follow=observer, history=100)._request() == first
    again = feed._request()
    assert again.follow and again.number == 0
    assert again.since.ToNanoseconds() == (1_700_000_005 * 10**9) + 1


def test_the_server_streams_what_it_holds_then_each_new_flow_and_the_map() -> None:
    c = demo()
    observer = ScriptedObserver([c.flow("default/frontend-a", "default/backend-x", 80)])
    feed = FlowFeed("scripted", follow=observer)

    async def scenario() -> None:
        client = TestClient(TestServer(make_app(feed, AgentsView([]))))
        await client.start_server()
        try:
            page = await client.get("/")
            assert page.status == 200 and "cytoscape.min.js" in await page.text()
            vendored = await client.get("/static/vendor/cytoscape-fcose.js")
            assert vendored.status == 200
            for _ in range(50):
                if (await (await client.get("/api/status")).json())["flows"] == 1:
                    break
                await asyncio.sleep(0.05)
            events = await client.get("/api/events", params={"verdict": "DROPPED"})
            assert events.headers["Content-Type"] == "text/event-stream"
            got = await read_events(events, 3)
            assert [name for name, _ in got] == ["status", "map", "flows"]
            assert got[2][1] == []   # the forwarded flow held does not pass the filter
            observer.push(c.flow("other/client", "default/backend-x", 80,
                                 verdict=fpb.DROPPED))
            observer.push(c.flow("default/frontend-b", "default/backend-x", 80))
            later: list[tuple[str, Any]] = []
            while not any(name == "map" and any(e["classes"] == "dropped"
                                                for e in data["edges"])
                          for name, data in later):
                later += await read_events(events, 1)
            flows = [data for name, data in later if name == "flow"]
            assert [f["source"]["pod"] for f in flows] == ["client"]
            bad = await client.get("/api/flows", params={"port": "http"})
            assert bad.status == 400
            held = await (await client.get("/api/flows", params={"pod": "client"})).json()
            assert [f["verdict"] for f in held] == ["DROPPED"]
            events.close()
        finally:
            await client.close()

    asyncio.run(scenario())


async def read_events(response: Any, count: int) -> list[tuple[str, Any]]:
    """The next `count` SSE events off the stream (10 s each at most)."""
    out: list[tuple[str, Any]] = []
    name = ""
    while True:
        line = (await asyncio.wait_for(response.content.readline(), 10)).decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: "):])))
            if len(out) == count:
                return out
