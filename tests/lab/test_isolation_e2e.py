"""One namespace with policies far beyond the agent's limits, another with a small deny:
on a lab with agents, the small deny is enforced promptly, the huge policies fail
closed for the pods they select only (not-ready with the reason in `endpoint list` and
`status`), and real connections agree with `policy matrix` everywhere."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

import pytest

from agent.api.client import AgentClient
from cli.main import main
from lab.controller import Lab
from tests.lab.agentlab import differences, probe_and_matrix, state_of, write
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PODS = """
apiVersion: v1
kind: Namespace
metadata: {name: big}
---
apiVersion: v1
kind: Namespace
metadata: {name: small}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: big, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: batch, namespace: big, labels: {app: batch}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: small, labels: {app: api}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: caller, namespace: small, labels: {app: caller}}
spec: {nodeName: node1, containers: [{name: c, image: x, ports: [{containerPort: 80}]}]}
"""


def hosts(n: int) -> str:
    return "\n".join(f"    - ipBlock: {{cidr: 198.18.{i // 250}.{i % 250 + 1}/32}}"
                     for i in range(n))


def huge_policies() -> str:
    """4100 /32s selecting nothing (the cidr map holds 4096); web's egress as 170 blocks
    x 170 port ranges (more entries than an endpoint may have), allowing every pod."""
    ranges = "\n".join(f"    - {{port: {1000 + 300 * i}, endPort: {1100 + 300 * i}}}"
                       for i in range(170))
    return f"""
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: many-prefixes, namespace: big}}
spec:
  podSelector: {{matchLabels: {{app: nobody}}}}
  policyTypes: [Egress]
  egress:
  - to:
{hosts(4100)}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: product, namespace: big}}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Egress]
  egress:
  - to:
{hosts(170)}
    - ipBlock: {{cidr: 10.244.0.0/16}}
    ports:
{ranges}
    - {{port: 80}}
"""


SMALL_DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-api, namespace: small}
spec:
  podSelector: {matchLabels: {app: api}}
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    tmp = tmp_path_factory.mktemp("iso")
    lab = Lab(unique_lab_name("iso"))
    try:
        assert lab.up(1, [write(tmp, "pods.yaml", PODS)])
        yield lab
    finally:
        lab.down()


def test_a_huge_policy_in_one_namespace_fails_closed_there_and_a_small_deny_elsewhere_is_prompt(
        lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.apply([write(tmp_path, "huge.yaml", huge_policies())])
    t0 = time.monotonic()
    assert lab.apply([write(tmp_path, "deny.yaml", SMALL_DENY)])
    applied_in = time.monotonic() - t0
    assert applied_in < 5, f"the small deny took {applied_in:.1f}s to be enforced"

    probed, expected = probe_and_matrix(lab, [80, 1000], ["TCP"])
    assert not differences(probed, expected), differences(probed, expected)
    got = {(v["from"], v["to"], v["port"]): v["allowed"] for v in probed["verdicts"]}
    assert not got[("small/caller", "small/api", 80)]            # the small deny
    assert got[("small/api", "small/caller", 80)]
    assert not got[("big/web", "small/caller", 80)]              # web fails closed ...
    assert got[("big/batch", "small/caller", 80)]                # ... and only web
    assert got[("small/caller", "big/web", 80)]                  # web's ingress is open

    node = state_of(lab).nodes["node1"]
    with AgentClient(node.socket) as client:
        endpoints = {f"{e.namespace}/{e.pod}": e for e in client.list_endpoints()}
        status = client.status()
    web = endpoints["big/web"]
    assert web.state == "not-ready" and "big/product needs" in web.error
    assert {e.state for k, e in endpoints.items() if k != "big/web"} == {"ready"}
    problems = "\n".join(status.errors)     # recent errors, then what is wrong now
    assert "big/many-prefixes not enforced" in problems and "big/web" in problems
    # What a person sees: the reason under the state, in the table.
    assert main(["endpoint", "list", "--server", node.socket]) == 0
    table = capsys.readouterr().out
    assert "not-ready" in table and "policy big/product needs" in table
