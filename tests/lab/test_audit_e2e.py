"""Audit mode end to end: `membrane lab up --policy-audit-mode`, real packets, and what
`membrane observe`, `endpoint list` and `policy trace` say about them.

The tutorial's app (frontend, backend) with two denials of frontend -> backend:8080, one
per kind of step: the tutorial's NetworkPolicy 01 (backend isolated for ingress, nothing
allowed) and an Admin-tier ClusterNetworkPolicy Deny of the frontend's egress. In audit
mode both connections go through; the flows say AUDIT (with the drop reason the packet
would have had), never DROPPED; an allowed connection is FORWARDED."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from lab.controller import Lab
from tests.lab.agentlab import curl, pod_key, state_of
from tests.lab.conftest import needs_root, run_cli, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"
MEMBRANE = [sys.executable, "-m", "cli.main"]
ADMIN_DENY = textwrap.dedent("""\
    apiVersion: policy.networking.k8s.io/v1alpha2
    kind: ClusterNetworkPolicy
    metadata: {name: no-frontend-to-backend}
    spec:
      tier: Admin
      priority: 10
      subject: {pods: {podSelector: {matchLabels: {app: frontend}}}}
      egress:
      - name: deny-backend
        action: Deny
        to: [{pods: {podSelector: {matchLabels: {app: backend}}}}]
        protocols: [{tcp: {destinationPort: {number: 8080}}}]
    """)


def membrane(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MEMBRANE, *args], capture_output=True, text=True, timeout=30)


def flows(lab: Lab, *filters: str) -> list[dict[str, Any]]:
    out = membrane("observe", "--lab", lab.name, "--last", "1000", "-o", "json", *filters)
    assert out.returncode == 0, out.stderr
    return [json.loads(line)["flow"] for line in out.stdout.splitlines()
            if line.strip() and "flow" in json.loads(line)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    tmp = tmp_path_factory.mktemp("audit")
    (tmp / "admin-deny.yaml").write_text(ADMIN_DENY)
    name = unique_lab_name("audit")
    try:
        assert run_cli("lab", "up", "--name", name, "--policy-audit-mode",
                       "-f", str(TUTORIAL / "demo-app.yaml"),
                       "-f", str(TUTORIAL / "01-backend-ingress-deny.yaml"),
                       "-f", str(tmp / "admin-deny.yaml")) == 0
        yield Lab(name)
    finally:
        Lab(name).down()


def test_a_denied_connection_goes_through_and_is_reported_as_audit_never_dropped(
        lab: Lab) -> None:
    assert curl(lab, "frontend", "http://backend:8080/", 2) == 0  # denied twice, audited
    assert curl(lab, "backend", "http://kubernetes.io/", 2) == 0  # allowed, to world
    between = flows(lab, "--from-label", "app=frontend", "--to-label", "app=backend")
    assert between, "no flow from frontend to backend"
    assert not [f for f in between if f["verdict"] == "DROPPED"], between
    audited = [f for f in between if f["verdict"] == "AUDIT"]
    directions = {f["traffic_direction"] for f in audited}
    assert directions == {"EGRESS", "INGRESS"}, audited     # the CNP's side and the NP's
    assert all(f["drop_reason_desc"] == "POLICY_DENIED" for f in audited)
    # Each names what would have denied it: the CNP's rule, the isolating NetworkPolicy.
    denied_by = {(f["traffic_direction"], p.get("kind", ""), p["name"])
                 for f in audited if f["event_type"]["type"] == 9
                 for p in f.get("egress_denied_by", []) + f.get("ingress_denied_by", [])}
    assert denied_by == {("EGRESS", "ClusterNetworkPolicy", "no-frontend-to-backend"),
                         ("INGRESS", "NetworkPolicy", "backend-ingress-deny")}, audited
    printed = membrane("observe", "--lab", lab.name, "--type", "policy-verdict",
                       "--from-label", "app=frontend", "--to-label", "app=backend",
                       "--last", "4", "--print-policy-names").stdout
    assert "AUDITED BY ClusterNetworkPolicy/no-frontend-to-backend" in printed, printed
    world = [f for f in flows(lab, "--from-label", "app=backend")
             if f["IP"]["destination"] == state_of(lab).external_ip]
    assert world and {f["verdict"] for f in world} == {"FORWARDED"}


def test_endpoint_list_says_disabled_audit_where_policy_would_be_enforced(lab: Lab) -> None:
    table = membrane("endpoint", "list", "--lab", lab.name).stdout
    rows = json.loads(membrane("endpoint", "list", "--lab", lab.name, "-o", "json").stdout)
    by_pod = {f"{e['namespace']}/{e['pod']}": e for e in rows}
    backend = by_pod[pod_key(lab, "backend")]
    assert backend["ingress_enforced"] and backend["policy_audit"]
    assert "Disabled (Audit)" in table


def test_trace_names_what_would_have_denied_each_side(lab: Lab) -> None:
    out = membrane("policy", "trace", "--lab", lab.name, "--from", pod_key(lab, "frontend"),
                   "--to", pod_key(lab, "backend"), "--port", "8080").stdout
    assert "Policy modes: enforcement default, audit" in out
    assert 'ClusterNetworkPolicy no-frontend-to-backend: spec.egress[0] "deny-backend" Deny' \
        in out
    assert "isolated for ingress" in out and "reported as AUDIT" in out
    assert "Verdict: DENIED by egress and ingress policy" in out
