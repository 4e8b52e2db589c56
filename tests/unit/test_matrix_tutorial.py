"""`membrane policy matrix` replays the NetworkPolicy tutorial, step by step.

Each step applies the tutorial's manifests cumulatively (as `kubectl create -f` would),
with the tutorial's deletions: step 03 deletes backend-ingress-allow-frontend (02), and
step 05 deletes the policy of step 04. The expected connectivity is what the tutorial
shows with curl after each step.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cli import policy as policy_cli

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"
APPS = ["demo-app.yaml", "monitoring-app.yaml", "kube-dns.yaml"]
STEPS = {
    "01": "01-backend-ingress-deny.yaml",
    "02": "02-backend-ingress-allow-frontend.yaml",
    "03": "03-all-pods-allow-within-namespace.yaml",
    "04": "04-backend-ingress-allow-monitoring-namespace.yaml",
    "05": "05-backend-ingress-allow-monitoring-app.yaml",
    "06": "06-frontend-egress-deny.yaml",
    "07": "07-frontend-egress-allow-to-backend.yaml",
    "08": "08-all-pods-egress-allow-dns.yaml",
}
DELETED_AT = {"03": "02", "05": "04"}

# The connections the tutorial tries: (from app, to app, port, protocol).
FE_BE = ("frontend", "backend", 8080, "TCP")
MON_BE = ("monitoring", "backend", 8080, "TCP")
MON_FE = ("monitoring", "frontend", 8080, "TCP")
FE_DNS = ("frontend", "coredns", 53, "UDP")
BE_DNS = ("backend", "coredns", 53, "UDP")
BE_MON = ("backend", "monitoring", 8080, "TCP")
CONNECTIONS = [FE_BE, MON_BE, MON_FE, FE_DNS, BE_DNS, BE_MON]

# step -> the connections denied after it (everything else in CONNECTIONS is allowed).
DENIED = {
    "00": set(),
    "01": {FE_BE, MON_BE},                 # backend in ingress default deny
    "02": {MON_BE},                        # frontend allowed back in
    "03": {MON_BE, MON_FE},                # 02 deleted; the namespace allows itself only
    "04": {MON_FE},                        # namespaces labelled type=monitoring allowed
    "05": {MON_FE},                        # 04 deleted; monitoring app in that namespace
    "06": {MON_FE, FE_BE, FE_DNS},         # frontend in egress default deny
    "07": {MON_FE, FE_DNS},                # frontend may reach the backend, not DNS yet
    "08": {MON_FE, BE_MON},                # DNS for all; backend's other egress cut
}


def files_at(step: str) -> list[str]:
    applied = [s for s in STEPS if s <= step]
    for at, deleted in DELETED_AT.items():
        if at <= step:
            applied.remove(deleted)
    return [str(TUTORIAL / f) for f in APPS + [STEPS[s] for s in applied]]


def matrix(files: list[str], capsys: pytest.CaptureFixture[str]) -> dict[tuple[str, ...], bool]:
    parser = argparse.ArgumentParser()
    policy_cli.register(parser.add_subparsers())
    argv = ["policy", "matrix", "-o", "json", "--port", "8080", "--port", "53",
            "--protocol", "TCP", "--protocol", "UDP"]
    for f in files:
        argv += ["-f", f]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert err == ""
    verdicts = json.loads(out)["verdicts"]
    return {(deployment(v["from"]), deployment(v["to"]), str(v["port"]), v["protocol"]):
            v["allowed"] for v in verdicts}


def deployment(pod_key: str) -> str:
    """Deployments expand into pods named <deployment>-<hash>-<suffix>."""
    return pod_key.split("/")[1].rsplit("-", 2)[0]


@pytest.fixture(autouse=True)
def tutorial_present() -> None:
    missing = [f for f in APPS + list(STEPS.values()) if not (TUTORIAL / f).exists()]
    assert not missing, f"tutorial manifests missing: {missing}"


@pytest.mark.parametrize("step", sorted(DENIED), ids=lambda s: f"after step {s}")
def test_the_matrix_shows_the_tutorials_connectivity(
        step: str, capsys: pytest.CaptureFixture[str]) -> None:
    got = matrix(files_at(step), capsys)
    expected = {c: c not in DENIED[step] for c in CONNECTIONS}
    actual = {c: got[(c[0], c[1], str(c[2]), c[3])] for c in CONNECTIONS}
    assert actual == expected


def test_after_the_last_step_the_backend_reaches_only_dns_outside_its_namespace(
        capsys: pytest.CaptureFixture[str]) -> None:
    got = matrix(files_at("08"), capsys)
    outside = {k: v for k, v in got.items() if k[0] == "backend" and k[1] != "frontend"}
    assert outside == {
        ("backend", "coredns", "53", "TCP"): True,
        ("backend", "coredns", "53", "UDP"): True,
        ("backend", "coredns", "8080", "TCP"): True,   # the DNS policy names no port
        ("backend", "coredns", "8080", "UDP"): True,
        ("backend", "monitoring", "53", "TCP"): False,
        ("backend", "monitoring", "53", "UDP"): False,
        ("backend", "monitoring", "8080", "TCP"): False,
        ("backend", "monitoring", "8080", "UDP"): False,
    }
