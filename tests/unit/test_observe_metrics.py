"""Prometheus metrics with Hubble's names, labels and context options; the agent's own
metrics; the dashboard that reads them."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.errors import MembraneError
from core.protocols import Direction
from observe.agent_metrics import AgentGauges, AgentMetrics
from observe.events import EventType
from observe.flow import flow_from_event
from observe.metrics import HubbleMetrics, listen_address, parse_metrics, serve_metrics
from observe.metrics_context import ContextOptions
from observe.metadata import PeerInfo, PolicyRef, PolicyVerdictNames, StaticMetadata
from observe.metadata import Workload
from observe.ring import FlowObserver
from tests.unit.test_observe_flow import META, event

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "dashboards" / "membrane-hubble.json"
NOT_FRONTEND = "default/not-frontend-7db9747986-gktg6"
BACKEND = "default/backend-6f884b6495-69bbh"


def metrics(text: str = "flow drop policy port-distribution tcp"
            ) -> tuple[HubbleMetrics, CollectorRegistry]:
    m = HubbleMetrics(metrics=text)
    return m, m.registry


def allowed(**kw: object) -> dict[str, object]:
    return dict(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0, **kw)


def test_flows_processed_count_by_protocol_type_subtype_and_verdict() -> None:
    m, reg = metrics("flow")
    m.flow(flow_from_event(event(), META))
    m.flow(flow_from_event(event(**allowed(match_type=2)), META))
    m.flow(flow_from_event(event(type=EventType.TRACE, allowed=True, drop_reason=0), META))
    assert reg.get_sample_value("hubble_flows_processed_total", {
        "protocol": "TCP", "type": "Drop", "subtype": "", "verdict": "DROPPED"}) == 1
    assert reg.get_sample_value("hubble_flows_processed_total", {
        "protocol": "TCP", "type": "PolicyVerdict", "subtype": "",
        "verdict": "FORWARDED"}) == 1
    assert reg.get_sample_value("hubble_flows_processed_total", {
        "protocol": "TCP", "type": "Trace", "subtype": "to-endpoint",
        "verdict": "FORWARDED"}) == 1


def test_drops_count_by_reason_and_protocol_with_pod_contexts_as_hubble_configures() -> None:
    m, reg = metrics("drop:sourceContext=pod;destinationContext=pod")
    for _ in range(3):
        m.flow(flow_from_event(event(), META))
    assert reg.get_sample_value("hubble_drop_total", {
        "source": NOT_FRONTEND, "destination": BACKEND, "reason": "POLICY_DENIED",
        "protocol": "TCP"}) == 3


def test_drops_without_contexts_have_only_reason_and_protocol() -> None:
    m, reg = metrics("drop")
    m.flow(flow_from_event(event(), META))
    assert reg.get_sample_value("hubble_drop_total",
                                {"reason": "POLICY_DENIED", "protocol": "TCP"}) == 1


@pytest.mark.parametrize("context, want", [
    ("namespace", "default"),
    ("pod", NOT_FRONTEND),
    ("pod-short", "default/not-frontend"),
    ("workload", "default/not-frontend"),
    ("workload-name", "not-frontend"),
    ("app", "not-frontend"),
    ("ip", "10.1.0.2"),
    ("dns|namespace", "default"),      # the first non-empty one
], ids=lambda v: str(v))
def test_source_context_identifiers(context: str, want: str) -> None:
    peer = PeerInfo(84671, "default", "not-frontend-7db9747986-gktg6",
                    ["k8s:app=not-frontend"], workloads=(Workload("not-frontend",
                                                                   "Deployment"),))
    meta = StaticMetadata({"10.1.0.2": peer})
    ctx = ContextOptions.parse({"sourceContext": context})
    assert ctx.label_values(flow_from_event(event(), meta)) == [want]


def test_labels_context_adds_the_asked_labels_in_hubbles_order() -> None:
    ctx = ContextOptions.parse({"labelsContext": "traffic_direction,source_namespace"})
    assert ctx.label_names() == ["source_namespace", "traffic_direction"]
    assert ctx.label_values(flow_from_event(event(), META)) == ["default", "ingress"]


@pytest.mark.parametrize("text", ["nosuchmetric", "drop:sourceContext=planet",
                                  "drop:labelsContext=source_color", "drop:sourceContext"],
                         ids=["unknown metric", "unknown context", "unknown label",
                              "option without value"])
def test_a_bad_metrics_option_is_refused_at_start(text: str) -> None:
    with pytest.raises(ValueError):
        parse_metrics(text)


def test_policy_verdicts_count_by_direction_match_and_action() -> None:
    m, reg = metrics("policy")
    m.flow(flow_from_event(event(type=EventType.POLICY_VERDICT), META))
    m.flow(flow_from_event(event(**allowed(match_type=1, direction=Direction.EGRESS)), META))
    assert reg.get_sample_value("hubble_policy_verdicts_total", {
        "direction": "ingress", "match": "none", "action": "dropped"}) == 1
    assert reg.get_sample_value("hubble_policy_verdicts_total", {
        "direction": "egress", "match": "l3-only", "action": "forwarded"}) == 1


def test_policy_verdicts_are_counted_by_the_policies_behind_them_too() -> None:
    m, reg = metrics("policy")
    names = PolicyVerdictNames(allowed_by=(PolicyRef("allow-fe", "default"),))
    meta = StaticMetadata(META.peers, policies={(248, Direction.INGRESS, 84671, 6, 8080):
                                                names})
    m.flow(flow_from_event(event(**allowed(match_type=2)), meta, meta))
    assert reg.get_sample_value("membrane_policy_verdicts_total", {
        "policy": "default/allow-fe", "direction": "ingress", "action": "forwarded"}) == 1


def test_port_distribution_counts_forwarded_requests_by_destination_port() -> None:
    m, reg = metrics("port-distribution")
    m.flow(flow_from_event(event(**allowed()), META))
    m.flow(flow_from_event(event(**allowed(is_reply=True)), META))   # a reply: not counted
    m.flow(flow_from_event(event(), META))                           # dropped: not counted
    assert reg.get_sample_value("hubble_port_distribution_total",
                                {"protocol": "TCP", "port": "8080"}) == 1


def test_tcp_flags_count_forwarded_syn_and_syn_ack_apart() -> None:
    m, reg = metrics("tcp")
    m.flow(flow_from_event(event(**allowed(tcp_flags=0x02)), META))
    m.flow(flow_from_event(event(**allowed(tcp_flags=0x12, is_reply=True)), META))
    assert reg.get_sample_value("hubble_tcp_flags_total",
                                {"flag": "SYN", "family": "IPv4"}) == 1
    assert reg.get_sample_value("hubble_tcp_flags_total",
                                {"flag": "SYN-ACK", "family": "IPv4"}) == 1


def test_a_batch_is_counted_per_kind_with_its_count_through_the_observer() -> None:
    m, reg = metrics("drop:sourceContext=pod")
    obs = FlowObserver("n", capacity=64, meta=META, listeners=[m])
    from observe.events import EventBatch   # the batch path only
    obs.on_events(EventBatch.of_events([event(src_port=p) for p in range(40)]))
    obs.process_pending()
    assert reg.get_sample_value("hubble_drop_total", {
        "source": NOT_FRONTEND, "reason": "POLICY_DENIED", "protocol": "TCP"}) == 40


def test_lost_events_count_by_source_through_the_observer() -> None:
    m, reg = metrics()
    obs = FlowObserver("n", capacity=4, meta=META, queue_size=1, listeners=[m])
    obs.report_lost("kernel", 9)
    obs.on_event(event())
    obs.on_event(event())
    assert reg.get_sample_value("hubble_lost_events_total",
                                {"source": "PERF_EVENT_RING_BUFFER"}) == 9
    assert reg.get_sample_value("hubble_lost_events_total",
                                {"source": "OBSERVER_EVENTS_QUEUE"}) == 1


def test_the_agents_own_metrics_read_its_gauges_at_scrape_time() -> None:
    state = {"ready": 3}
    agent = AgentMetrics(gauges=lambda: AgentGauges(
        endpoints_by_state=dict(state), maps={"policy": (25, 100)},
        lost_events={"PERF_EVENT_RING_BUFFER": 4}))
    agent.observe_regeneration(0.004)
    reg = agent.registry
    assert reg.get_sample_value("membrane_endpoint_state", {"endpoint_state": "ready"}) == 3
    state["ready"] = 5
    assert reg.get_sample_value("membrane_endpoint_state", {"endpoint_state": "ready"}) == 5
    assert reg.get_sample_value("membrane_bpf_map_pressure", {"map_name": "policy"}) == 0.25
    assert reg.get_sample_value("membrane_lost_events_total",
                                {"source": "PERF_EVENT_RING_BUFFER"}) == 4
    assert reg.get_sample_value("membrane_endpoint_regeneration_time_seconds_bucket",
                                {"le": "0.005"}) == 1


@pytest.mark.parametrize("text, want", [(":9965", ("0.0.0.0", 9965)),
                                        ("127.0.0.1:1234", ("127.0.0.1", 1234)),
                                        ("[::1]:9", ("::1", 9)), ("", ("0.0.0.0", 9965))])
def test_listen_addresses_default_to_all_addresses(text: str, want: tuple[str, int]) -> None:
    assert listen_address(text, 9965) == want


def test_a_bad_listen_address_is_an_error() -> None:
    with pytest.raises(MembraneError):
        listen_address("host:port", 9965)


def test_the_metrics_server_serves_them_over_http() -> None:
    m, reg = metrics("drop:sourceContext=pod")
    m.flow(flow_from_event(event(), META))
    server, _ = serve_metrics("127.0.0.1:0", reg, 9965)
    try:
        port = server.server_port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        (line,) = [x for x in body.decode().splitlines() if x.startswith("hubble_drop_total{")]
        assert f'source="{NOT_FRONTEND}"' in line and 'reason="POLICY_DENIED"' in line
    finally:
        server.shutdown()


def test_the_dashboard_reads_hubble_series_and_the_agents_that_exist() -> None:
    dash = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dash["panels"]}
    assert {"Forwarded vs Dropped", "Drop Reason", "Drops by source and destination workload",
            "Policy verdicts by policy"} <= titles
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    known = {m.name for m in HubbleMetrics(metrics=(
        "flow drop:sourceContext=workload;destinationContext=workload policy "
        "port-distribution tcp")).registry.collect()}
    known |= {m.name for m in AgentMetrics(gauges=AgentGauges).registry.collect()}
    used = set(re.findall(r"(?:hubble|membrane)_[a-z_]+", exprs))
    assert any(u.startswith("hubble_") for u in used)
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in known, name
