"""Smoke: an open endpoint forwards TCP, UDP and ICMP; verdict events are emitted."""

from __future__ import annotations

from agent.policy.mapstate import Direction, EndpointPolicy, PolicyKey
from tests.datapath.conftest import Env


def test_open_endpoints_forward_tcp_udp_icmp(clean: Env) -> None:
    t = clean.topo
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"
    assert t.ping(clean.ns("p0"), clean.ip("p1")) == "ok"


def test_ingress_enforced_without_entries_denies(clean: Env) -> None:
    clean.set_policy("p1", EndpointPolicy(ingress_enforced=True))
    assert clean.topo.tcp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"
    evs = clean.drain(0.1)
    print(evs)
    assert any(e.drop_reason == 133 for e in evs)
