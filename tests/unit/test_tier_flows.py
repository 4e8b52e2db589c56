"""Flows name the cluster-wide tier policy and rule that decided (agent/flowmeta.py): an
Admin or Baseline Allow in *_allowed_by, a Deny in *_denied_by (also on an AUDIT flow:
what would have denied it), a Pass leaving it to the NetworkPolicies; the policy
verdict metric counts them by that name. Over the examples of docs/cluster-policies.md."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.endpoints import Endpoint
from agent.flowmeta import AgentMetadata
from agent.k8s.loader import load_paths
from agent.policy.engine import PolicyEngine
from agent.policy.modes import PolicyModes
from agent.store import Snapshot
from core.protocols import Direction
from identity.cidr import CidrAllocator
from identity.local import LocalAllocator
from observe.events import EventType
from observe.flow import flow_from_event, policy_text
from observe.gen.flow import flow_pb2 as fpb
from observe.metrics import HubbleMetrics
from tests.unit.test_observe_flow import event

EXAMPLES = Path(__file__).resolve().parents[2] / "demo" / "cluster-policies"


class Lab:
    def __init__(self, audit: bool = False) -> None:
        objects, errors = load_paths([EXAMPLES])
        assert not errors
        pods = {k: replace(p, ip=f"10.1.0.{i}")
                for i, (k, p) in enumerate(sorted(objects.pods.items()), 1)}
        objects = replace(objects, pods=pods)
        engine = PolicyEngine(LocalAllocator(None), CidrAllocator(None),
                              modes=PolicyModes(audit=audit))
        engine.update(objects)
        local = [Endpoint(id=i, namespace=p.namespace, pod=p.name, ifname=f"lxc{i}",
                          ipv4=p.ip or "") for i, p in enumerate(pods.values(), 1)]
        self.meta = AgentMetadata("node1", LocalAllocator(None), CidrAllocator(None))
        self.meta.refresh(Snapshot(1, objects, source_revision=3), engine, local)
        self.ids = {k: ident.id for k in pods if (ident := engine.identity_of(k))}
        self.eps = {ep.key: ep.id for ep in local}
        self.ips = {k: p.ip or "" for k, p in pods.items()}

    def names(self, pod: str, direction: Direction, peer: str, protocol: int, port: int
              ) -> tuple[list[str], list[str], list[str]]:
        got = self.meta.policy_names(self.eps[pod], direction, self.ids[peer], protocol, port)
        return ([r.text for r in got.allowed_by], [r.text for r in got.isolated_by],
                [r.rule for r in got.allowed_by + got.isolated_by])

    def flow(self, src: str, dst: str, port: int, **kw: object) -> fpb.Flow:
        return flow_from_event(event(
            src_ip=self.ips[src], src_identity=self.ids[src], dst_ip=self.ips[dst],
            dst_identity=self.ids[dst], endpoint_id=self.eps[dst], dst_port=port,
            type=EventType.POLICY_VERDICT, **kw), self.meta, self.meta)


def test_an_admin_allow_names_its_policy_and_rule() -> None:
    lab = Lab()
    allowed, _, rules = lab.names("tenant-b/web", Direction.INGRESS, "monitoring/prometheus",
                                  6, 9090)
    assert allowed == ["ClusterNetworkPolicy/always-allow-dns-and-monitoring"]
    assert rules == ['spec.ingress[0] "prometheus-scrapes"']


def test_an_admin_deny_names_its_policy_in_denied_by() -> None:
    lab = Lab()
    allowed, denied, rules = lab.names("tenant-a/web", Direction.INGRESS, "tenant-b/web", 6,
                                       8080)
    assert (allowed, denied) == ([], ["ClusterNetworkPolicy/isolate-tenant-a"])
    assert rules == ['spec.ingress[1] "other-tenants"']
    flow = lab.flow("tenant-b/web", "tenant-a/web", 8080, allowed=False, drop_reason=133)
    assert flow.verdict == fpb.DROPPED
    [policy] = flow.ingress_denied_by
    assert (policy.kind, policy.name, policy.namespace) == (
        "ClusterNetworkPolicy", "isolate-tenant-a", "")
    assert 'k8s:io.membrane.policy.rule=spec.ingress[1] "other-tenants"' in policy.labels
    assert policy_text(policy) == "ClusterNetworkPolicy/isolate-tenant-a"


def test_a_pass_leaves_the_names_to_the_networkpolicy_that_decided() -> None:
    lab = Lab()
    allowed, _, _ = lab.names("tenant-a/db", Direction.INGRESS, "tenant-a/web", 6, 5432)
    assert allowed == ["tenant-a/web-to-db"]


def test_a_baseline_deny_names_the_baseline_policy() -> None:
    lab = Lab()
    _, denied, rules = lab.names("tenant-a/web", Direction.INGRESS, "tenant-a/db", 6, 8080)
    assert denied == ["BaselineAdminNetworkPolicy/default"]
    assert rules == ['spec.ingress[0] "default-deny"']


def test_an_audit_flow_says_what_would_have_denied_it_and_the_metric_counts_it() -> None:
    lab = Lab(audit=True)
    flow = lab.flow("tenant-b/web", "tenant-a/web", 8080, allowed=True, audit=True,
                    drop_reason=133)
    assert flow.verdict == fpb.AUDIT
    assert [policy_text(p) for p in flow.ingress_denied_by] == [
        "ClusterNetworkPolicy/isolate-tenant-a"]
    assert not flow.ingress_allowed_by
    metrics = HubbleMetrics(metrics="policy")
    metrics.flow_count(flow, 1)
    registry = metrics.registry
    assert registry.get_sample_value("membrane_policy_verdicts_total", {
        "policy": "ClusterNetworkPolicy/isolate-tenant-a", "direction": "ingress",
        "action": "audit"}) == 1
    assert registry.get_sample_value("hubble_policy_verdicts_total", {
        "direction": "ingress", "match": "none", "action": "audit"}) == 1
