"""Flows name the NetworkPolicies behind their verdicts, from the engine's provenance
(the same `policy trace` prints); pods name their workloads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agent.endpoints import Endpoint
from agent.flowmeta import AgentMetadata
from agent.k8s.loader import load_paths
from agent.k8s.objects import Pod
from agent.policy.matrix import offline_engine
from agent.policy.trace import trace
from agent.pod_workloads import workloads_of
from agent.store import Snapshot
from core.protocols import Direction
from identity.cidr import CidrAllocator
from identity.local import LocalAllocator
from observe.events import EventType
from observe.flow import flow_from_event
from observe.metadata import PolicyRef, Workload
from observe.printer import PrintOptions, format_compact
from tests.unit.test_observe_flow import event

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"


def lab(*steps: str) -> tuple[AgentMetadata, dict[str, int], dict[str, str]]:
    """The tutorial app with some steps applied, as an agent on every node sees it:
    metadata, identities by app, pod IPs by app."""
    objects, errors = load_paths([TUTORIAL / "demo-app.yaml", *(TUTORIAL / s for s in steps)])
    assert not errors
    pods = {}
    for i, (key, pod) in enumerate(sorted(objects.pods.items()), 1):
        pods[key] = replace(pod, ip=f"10.1.0.{i}")
    objects = replace(objects, pods=pods)
    engine = offline_engine(objects)
    local = [Endpoint(id=i, namespace=p.namespace, pod=p.name, ifname=f"lxc{i}", ipv4=p.ip or "")
             for i, p in enumerate(pods.values(), 1)]
    meta = AgentMetadata("node1", LocalAllocator(None), CidrAllocator(None))
    meta.refresh(Snapshot(1, objects, source_revision=7), engine, local)
    by_app = {p.labels.get("app", ""): k for k, p in pods.items()}
    idents = {app: ident.id for app, k in by_app.items()
              if (ident := engine.identity_of(k)) is not None}
    ips = {app: pods[k].ip or "" for app, k in by_app.items()}
    return meta, idents, ips


def test_an_allowed_verdict_names_the_policy_that_allowed_it() -> None:
    meta, ids, ips = lab("01-backend-ingress-deny.yaml", "02-backend-ingress-allow-frontend.yaml")
    backend = meta.lookup_ip(ips["backend"])
    assert backend is not None
    names = meta.policy_names(backend.endpoint_id, Direction.INGRESS, ids["frontend"], 6, 8080)
    assert [r.text for r in names.allowed_by] == ["default/backend-ingress-allow-frontend"]
    assert names.allowed_by[0].revision == 7
    assert {r.text for r in names.isolated_by} == {"default/backend-ingress-deny",
                                                   "default/backend-ingress-allow-frontend"}


def test_a_denied_packet_names_the_policies_that_isolated_the_pod() -> None:
    meta, ids, ips = lab("01-backend-ingress-deny.yaml")
    backend = meta.lookup_ip(ips["backend"])
    assert backend is not None
    names = meta.policy_names(backend.endpoint_id, Direction.INGRESS, ids["frontend"], 6, 8080)
    assert names.allowed_by == ()
    assert [r.text for r in names.isolated_by] == ["default/backend-ingress-deny"]
    flow = flow_from_event(event(src_ip=ips["frontend"], src_identity=ids["frontend"],
                                 dst_ip=ips["backend"], dst_identity=ids["backend"],
                                 endpoint_id=backend.endpoint_id), meta, meta)
    assert [p.name for p in flow.ingress_denied_by] == ["backend-ingress-deny"]
    assert not flow.ingress_allowed_by and not flow.egress_denied_by
    line = format_compact(flow, opts=PrintOptions(policy_names=True))
    assert "Policy denied DROPPED BY default/backend-ingress-deny" in line


def test_trace_and_flows_name_policies_the_same_way() -> None:
    objects, _ = load_paths([TUTORIAL / "demo-app.yaml",
                             TUTORIAL / "01-backend-ingress-deny.yaml",
                             TUTORIAL / "02-backend-ingress-allow-frontend.yaml"])
    keys = {p.labels.get("app"): k for k, p in objects.pods.items()}
    text = trace(objects, keys["frontend"], keys["backend"], 8080).explanation
    meta, ids, ips = lab("01-backend-ingress-deny.yaml", "02-backend-ingress-allow-frontend.yaml")
    backend = meta.lookup_ip(ips["backend"])
    assert backend is not None
    for ref in meta.policy_names(backend.endpoint_id, Direction.INGRESS, ids["frontend"], 6,
                                 8080).isolated_by:
        assert ref.text in text


def test_an_egress_allow_names_its_policy_on_the_egress_side() -> None:
    meta, ids, ips = lab("06-frontend-egress-deny.yaml", "07-frontend-egress-allow-to-backend.yaml")
    frontend = meta.lookup_ip(ips["frontend"])
    assert frontend is not None
    flow = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 direction=Direction.EGRESS, endpoint_id=frontend.endpoint_id,
                                 src_ip=ips["frontend"], src_identity=ids["frontend"],
                                 dst_ip=ips["backend"], dst_identity=ids["backend"]),
                           meta, meta)
    assert [PolicyRef(p.name, p.namespace).text for p in flow.egress_allowed_by] == [
        "default/frontend-egress-allow-to-backend"]
    assert flow.source.workloads[0].kind == "Deployment"


@pytest.mark.parametrize("name, labels, want", [
    ("backend-6f884b6495-69bbh", {"pod-template-hash": "6f884b6495"},
     Workload("backend", "Deployment")),
    ("web-0", {"statefulset.kubernetes.io/pod-name": "web-0"}, Workload("web", "StatefulSet")),
    ("agent-x7k2p", {"controller-revision-hash": "5d8f", "pod-template-generation": "1"},
     Workload("agent", "DaemonSet")),
    ("migrate-abcde", {"batch.kubernetes.io/job-name": "migrate"}, Workload("migrate", "Job")),
    ("backup-28411920-q7x2z", {"job-name": "backup-28411920"}, Workload("backup", "CronJob")),
    ("lonely", {}, None),
], ids=["deployment", "statefulset", "daemonset", "job", "cronjob", "a bare pod"])
def test_a_pods_workload_comes_from_what_its_controller_set(name: str, labels: dict[str, str],
                                                            want: Workload | None) -> None:
    pod = Pod("default", name, labels)
    assert workloads_of(pod) == ((want,) if want else ())


def test_a_dual_stack_pod_is_the_same_peer_under_both_addresses() -> None:
    """Flows over IPv6 name their pods as IPv4 ones do (the lab is dual-stack: the UI and
    `observe` show workloads, not bare addresses, for either family)."""
    objects, errors = load_paths([TUTORIAL / "demo-app.yaml"])
    assert not errors
    pods = {key: replace(pod, ip=f"10.1.0.{i}", ipv6=f"fd00:1::{i}")
            for i, (key, pod) in enumerate(sorted(objects.pods.items()), 1)}
    only6 = next(iter(pods))
    pods[only6] = replace(pods[only6], ip=None)   # an IPv6-only pod is a peer too
    objects = replace(objects, pods=pods)
    meta = AgentMetadata("node1", LocalAllocator(None), CidrAllocator(None))
    meta.refresh(Snapshot(1, objects, source_revision=1), offline_engine(objects), [])
    for key, pod in pods.items():
        for address in pod.addresses:
            peer = meta.lookup_ip(address)
            assert peer is not None and f"{peer.namespace}/{peer.pod_name}" == key, address
    assert meta.lookup_ip("10.1.0.1") is None
