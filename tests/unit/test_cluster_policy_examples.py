"""docs/cluster-policies.md's examples (demo/cluster-policies/) say what they do: the
matrix and the trace the page shows are what `policy matrix` and `policy trace` give."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.k8s.loader import load_paths
from agent.policy.matrix import reachability
from agent.policy.trace import trace

EXAMPLES = Path(__file__).resolve().parents[2] / "demo" / "cluster-policies"
DOC = Path(__file__).resolve().parents[2] / "docs" / "cluster-policies.md"


@pytest.fixture(scope="module")
def verdicts() -> dict[tuple[str, str, str, int], bool]:
    objects, errors = load_paths([EXAMPLES])
    assert not errors, errors
    return {(v.src, v.dst, v.protocol, v.port): v.allowed
            for v in reachability(objects, [53, 5432, 8080, 9090], ["TCP", "UDP"])}


@pytest.mark.parametrize(("src", "dst", "protocol", "port", "allowed"), [
    pytest.param("tenant-b/web", "tenant-a/web", "TCP", 8080, False,
                 id="another tenant is denied by the Admin tier"),
    pytest.param("tenant-a/web", "tenant-a/db", "TCP", 5432, True,
                 id="a tenant's own NetworkPolicy opens what the baseline denies"),
    pytest.param("tenant-a/db", "tenant-a/web", "TCP", 8080, False,
                 id="what no NetworkPolicy selects falls to the baseline default deny"),
    pytest.param("monitoring/prometheus", "tenant-b/web", "TCP", 9090, True,
                 id="monitoring always scrapes the metrics port"),
    pytest.param("monitoring/prometheus", "tenant-b/web", "TCP", 8080, False,
                 id="but nothing else"),
    pytest.param("tenant-b/web", "kube-system/coredns", "UDP", 53, True,
                 id="DNS always works"),
])
def test_the_examples_do_what_the_page_says(verdicts: dict[tuple[str, str, str, int], bool],
                                            src: str, dst: str, protocol: str, port: int,
                                            allowed: bool) -> None:
    assert verdicts[(src, dst, protocol, port)] is allowed


def test_the_traces_on_the_page_are_the_tools_output() -> None:
    objects, _ = load_paths([EXAMPLES])
    page = DOC.read_text()
    for src, dst, port in (("tenant-a/web", "tenant-a/db", 5432),
                           ("tenant-b/web", "tenant-a/web", 8080)):
        explanation = trace(objects, src, dst, port).explanation
        ingress = explanation[explanation.index(f"Ingress to {dst}:"):]
        for line in ingress.splitlines():
            if line.strip():
                assert line in page, line
