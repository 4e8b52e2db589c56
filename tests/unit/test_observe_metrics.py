"""Prometheus metrics from flows, and the dashboard that reads them."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from core.protocols import Direction
from observe.events import EventType
from observe.flow import flow_from_event
from observe.metrics import FlowMetrics, start_metrics_server
from observe.ring import FlowObserver
from tests.unit.test_observe_flow import META, event

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "dashboards" / "membrane-hubble.json"


@pytest.fixture
def metrics() -> tuple[FlowMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return FlowMetrics(registry), registry


def test_flows_count_by_type_and_verdict(metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    m.flow(flow_from_event(event(), META))
    m.flow(flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 match_type=2), META))
    assert reg.get_sample_value("membrane_flows_processed_total",
                                {"type": "Drop", "subtype": "", "verdict": "DROPPED"}) == 1
    assert reg.get_sample_value("membrane_flows_processed_total",
                                {"type": "PolicyVerdict", "subtype": "",
                                 "verdict": "FORWARDED"}) == 1


def test_drops_count_by_reason_direction_and_source_pod(
        metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    for _ in range(3):
        m.flow(flow_from_event(event(), META))
    assert reg.get_sample_value("membrane_drop_total", {
        "reason": "POLICY", "direction": "INGRESS", "protocol": "TCP",
        "source_pod": "default/not-frontend-7db9747986-gktg6"}) == 3


def test_policy_verdicts_count_by_direction_match_and_action(
        metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    m.flow(flow_from_event(event(type=EventType.POLICY_VERDICT), META))
    m.flow(flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 match_type=1, direction=Direction.EGRESS), META))
    assert reg.get_sample_value("membrane_policy_verdicts_total", {
        "direction": "INGRESS", "match": "none", "action": "dropped"}) == 1
    assert reg.get_sample_value("membrane_policy_verdicts_total", {
        "direction": "EGRESS", "match": "L3-Only", "action": "forwarded"}) == 1


def test_lost_events_count_by_source_through_the_observer(
        metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    obs = FlowObserver("n", capacity=4, meta=META, queue_size=1, listeners=[m])
    obs.report_lost("kernel", 9)
    obs.on_event(event())
    obs.on_event(event())
    assert reg.get_sample_value("membrane_lost_events_total",
                                {"source": "PERF_EVENT_RING_BUFFER"}) == 9
    assert reg.get_sample_value("membrane_lost_events_total",
                                {"source": "OBSERVER_EVENTS_QUEUE"}) == 1


def test_regeneration_time_is_a_histogram(metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    m.observe_regeneration(0.004)
    assert reg.get_sample_value("membrane_endpoint_regeneration_time_seconds_count") == 1
    assert reg.get_sample_value("membrane_endpoint_regeneration_time_seconds_bucket",
                                {"le": "0.005"}) == 1


def test_the_metrics_server_serves_them_over_http(
        metrics: tuple[FlowMetrics, CollectorRegistry]) -> None:
    m, reg = metrics
    m.flow(flow_from_event(event(), META))
    server, thread = start_metrics_server(0, registry=reg)
    try:
        port = server.server_port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        assert b"membrane_drop_total{" in body
    finally:
        server.shutdown()


def test_the_dashboard_has_the_seeds_panels_on_metrics_that_exist() -> None:
    dash = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dash["panels"]}
    assert {"Forwarded vs Dropped", "Drop Reason",
            "Top 10 Source Pods with Denied Packets"} <= titles
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p["targets"])
    registry = CollectorRegistry()
    FlowMetrics(registry)
    known = {m.name for m in registry.collect()}
    import re
    used = set(re.findall(r"membrane_[a-z_]+", exprs))
    for name in used:
        base = re.sub(r"_(total|bucket|count|sum)$", "", name)
        assert base in known, name
