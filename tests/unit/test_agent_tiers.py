"""Tiers and policy modes through the whole agent (over FakeDatapath, which decides as the
C does) and its gRPC API: what `endpoint list`, `policy get`, `policy trace` and
`status` say about cluster-wide policies, audit mode and enforcement modes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.api.client import AgentClient
from agent.config import AgentConfig
from agent.daemon import Agent
from agent.datapath.fake import FakeDatapath
from agent.k8s.objects import (LabelSelector, RuleAction, Tier, TieredPolicy, TierPeer,
                               TierRule, TierSelector)
from agent.policy.mapstate import Direction
from agent.regeneration import PolicyQueries
from core.errors import MembraneError
from test_agent import StaticSource, cluster, push

FRONTEND = TierSelector(pod_selector=LabelSelector.of({"app": "frontend"}))
BACKEND = TierSelector(pod_selector=LabelSelector.of({"app": "backend"}))


def deny_frontend_to_backend(name: str, kind: str = "ClusterNetworkPolicy",
                             priority: int = 10) -> TieredPolicy:
    return TieredPolicy(kind=kind, name=name, tier=Tier.ADMIN, priority=priority,
                        subject=BACKEND, ingress=(TierRule("no-frontend", RuleAction.DENY,
                                                           (TierPeer(pods=FRONTEND),)),))


def start(tmp_path: Path, **config: object) -> tuple[Agent, StaticSource, FakeDatapath]:
    source = StaticSource(cluster())
    datapath = FakeDatapath(node="n1")
    agent = Agent(AgentConfig(node="n1", source="static", state_dir=tmp_path / "state",
                              socket=str(tmp_path / "agent.sock"),
                              bpffs=str(tmp_path / "bpf"), datapath="fake",
                              **config),  # type: ignore[arg-type]
                  datapath=datapath, source=source)
    agent.start()
    return agent, source, datapath


def test_a_tier_policy_enforces_with_no_networkpolicy_and_the_api_names_it(
        tmp_path: Path) -> None:
    agent, source, datapath = start(tmp_path)
    try:
        back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
        assert not back.ingress_enforced
        objs = cluster()
        for policy in (deny_frontend_to_backend("a"),
                       deny_frontend_to_backend("b", "AdminNetworkPolicy")):
            objs.cluster_policies[policy.key] = policy
        push(source, objs, 2)
        assert agent.wait_for_revision(2, 5)
        assert back.ingress_enforced and not back.audit
        assert not datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 80)[0]
        with AgentClient(str(tmp_path / "agent.sock")) as client:
            listed = client.get_policies()
            tiers = [(p.kind, p.name, p.tier, p.priority) for p in listed.policies]
            assert tiers == [("ClusterNetworkPolicy", "a", "Admin", "10"),
                             ("AdminNetworkPolicy", "b", "Admin", "10")]
            assert listed.notes and "order is undefined" in listed.notes[0]
            assert any("order is undefined" in e for e in client.status().errors)
            trace = client.trace("default/frontend", "default/backend", 80, "TCP")
            assert not trace.allowed
            assert 'ClusterNetworkPolicy a: spec.ingress[0] "no-frontend" Deny' in \
                trace.explanation
    finally:
        agent.stop()


def test_audit_mode_lets_denials_through_and_endpoints_say_so(tmp_path: Path) -> None:
    agent, source, datapath = start(tmp_path, policy_audit_mode=True)
    try:
        back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
        objs = cluster()
        objs.cluster_policies["ClusterNetworkPolicy/x"] = deny_frontend_to_backend("x")
        push(source, objs, 2)
        assert agent.wait_for_revision(2, 5)
        assert datapath.decide(back.id, Direction.INGRESS, "10.244.1.2", 6, 80)[0]
        with AgentClient(str(tmp_path / "agent.sock")) as client:
            [ep] = client.list_endpoints()
            assert ep.ingress_enforced and ep.policy_audit and not ep.egress_enforced
    finally:
        agent.stop()


def test_enforcement_always_enforces_every_endpoint_in_both_directions(tmp_path: Path) -> None:
    agent, _, datapath = start(tmp_path, enable_policy="always")
    try:
        front = agent.register_endpoint("default", "frontend", "lo", "10.244.1.2", timeout=5)
        assert front.ingress_enforced and front.egress_enforced
        assert not datapath.decide(front.id, Direction.EGRESS, "10.244.1.3", 6, 80)[0]
        # The node reaches its pods (no node object here: the host is identity 1 by IP
        # only in the real ipcache; the map state carries the built-in allow).
        assert datapath.policies[front.id].decide(Direction.INGRESS, {1}, 6, 10250).allowed
    finally:
        agent.stop()


def test_an_unknown_enforcement_mode_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(MembraneError, match="--enable-policy 'sometimes'"):
        replace(AgentConfig(node="n1"), enable_policy="sometimes").validate()


def test_the_agent_says_which_rule_decided_a_flows_packet(tmp_path: Path) -> None:
    """The lookup flows use (endpoint, direction, peer identity, protocol, port)."""
    agent, source, _ = start(tmp_path)
    try:
        objs = cluster()
        objs.cluster_policies["ClusterNetworkPolicy/x"] = deny_frontend_to_backend("x")
        push(source, objs, 2)
        assert agent.wait_for_revision(2, 5)
        parts = agent.parts
        view = PolicyQueries(parts.regenerator, parts.engine, parts.endpoints, parts.lock)
        frontend = parts.engine.identity_of("default/frontend")
        assert frontend is not None
        found = view.decided_by("default/backend", Direction.INGRESS, {frontend.id}, 6, 80)
        assert found is not None and not found.decision.allowed
        [rule] = found.rules
        assert (rule.tier, rule.policy, rule.rule, rule.rule_name, rule.action) == (
            "Admin", "ClusterNetworkPolicy/x", 0, "no-frontend", "Deny")
        assert view.decided_by("default/gone", Direction.INGRESS, {1}, 6, 80) is None
    finally:
        agent.stop()
