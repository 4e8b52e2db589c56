"""Generated dual-stack scenarios with real packets: for both IP families, `membrane lab
probe --family` (real TCP and UDP connections) and `membrane policy matrix --family`
agree with the NetworkPolicy spec.

  the cluster   upstream's model (namespaces x, y, z; pods a, b, c in each, serving 80
                and 81) on a two-node lab with agents, every pod dual-stack with the
                addresses its manifest gives in status.podIPs (dualstack_scenarios.py's
                plan from 10.244.11.0/24 and fd00:10:244:11::/64 on, outside the nodes'
                pod CIDRs, so the lab routes each pod's /32 and /128 to its node); pods
                alternate between the nodes, so most pairs cross the underlay
  scenarios     drawn by dualstack_scenarios.py against those addresses: 1-3 policies in
                upstream's shapes with ipBlocks of both families, each one a scenario in
                which the spec allows different connections over IPv4 and over IPv6 (so
                a datapath or engine that mixed the families up would fail); each is
                applied with `lab apply` (returning once both agents enforce it) and
                deleted after
  the check     per family: the CLI's `lab probe --family` verdicts for every ordered pair
                of the nine pods on TCP and UDP, ports 80 and 81, and `policy matrix -f
                --family` over the same manifests, each equal to the spec's answer
                (tests/datapath/netpol_spec.py, which shares no code with the engine)

SCTP is not sent: this kernel has no SCTP sockets (the unit test covers SCTP).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent.k8s.objects import ClusterObjects, Protocol
from cli.main import main as membrane
from lab.controller import Lab
from tests.lab.agentlab import state_of
from tests.datapath.netpol_spec import spec_allows
from tests.lab.conftest import needs_root, unique_lab_name

# The generator lives with the unit tests (pytest puts tests/unit on sys.path only when
# it collects that directory).
sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
import dualstack_scenarios as dual  # noqa: E402

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PLAN = dual.model_plan(first_subnet=11)
NODES = {key: f"node{i % 2 + 1}" for i, key in enumerate(dual.PODS)}
PORTS, PROTOCOLS = (80, 81), ("TCP", "UDP")
SCENARIOS = 6

Key = tuple[str, str, int, str]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    tmp = tmp_path_factory.mktemp("dualstack")
    cluster = tmp / "cluster.yaml"
    cluster.write_text(yaml.safe_dump_all(dual.cluster_documents(PLAN, NODES)))
    lab = Lab(unique_lab_name("dual"))
    try:
        assert lab.up(2, [str(cluster)]), "lab up with the dual-stack model failed"
        yield lab
    finally:
        lab.down()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lab.names.prefix + "-" not in left, f"lab {lab.name} left namespaces:\n{left}"


def cli_json(*argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = membrane(list(argv))
    assert code == 0, f"membrane {' '.join(argv)} exited {code}"
    return json.loads(out.getvalue())   # type: ignore[no-any-return]


def verdicts(data: dict[str, Any]) -> dict[Key, bool]:
    """The nine model pods' pairs of a matrix/probe JSON (the lab's DNS pod left out)."""
    return {(v["from"], v["to"], v["port"], v["protocol"]): v["allowed"]
            for v in data["verdicts"] if v["from"] in PLAN and v["to"] in PLAN}


def spec(objects: ClusterObjects, family: int) -> dict[Key, bool]:
    return {(s, d, port, proto): spec_allows(objects, s, d, Protocol(proto), port,
                                             family=family)
            for s in dual.PODS for d in dual.PODS if s != d
            for port in PORTS for proto in PROTOCOLS}


def families_differ(scenario: dual.Scenario) -> bool:
    objects = dual.objects_for(PLAN, scenario)
    return spec(objects, 4) != spec(objects, 6)


def mismatches(name: str, got: dict[Key, bool], want: dict[Key, bool]) -> list[str]:
    assert set(got) == set(want), f"{name}: other pairs than the spec's"
    out = []
    for (src, dst, port, proto), allowed in sorted(want.items()):
        if got[(src, dst, port, proto)] != allowed:
            out.append(f"{name}: {src} -> {dst} {proto}/{port} "
                       f"{'denied' if allowed else 'allowed'}, the spec says "
                       f"{'allowed' if allowed else 'denied'}")
    return out


def test_the_lab_gives_every_pod_both_addresses_of_its_manifest(lab: Lab) -> None:
    pods = state_of(lab).pods
    assert {key: (pods[key].ip, pods[key].ip6) for key in dual.PODS} == dict(PLAN)
    assert {key: pods[key].node for key in dual.PODS} == NODES


@settings(max_examples=SCENARIOS, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(data=st.data())
def test_probe_and_matrix_of_each_family_agree_with_the_spec(lab: Lab, data: st.DataObject,
                                                             tmp_path_factory:
                                                             pytest.TempPathFactory) -> None:
    scenario = data.draw(dual.scenarios(PLAN).filter(families_differ), label="scenario")
    tmp = tmp_path_factory.mktemp("scenario")
    policies = tmp / "policies.yaml"
    policies.write_text(yaml.safe_dump_all(list(scenario.policies)))
    everything = tmp / "everything.yaml"
    everything.write_text(yaml.safe_dump_all(dual.cluster_documents(PLAN, NODES)
                                             + list(scenario.policies)))
    objects = dual.objects_for(PLAN, scenario)
    ports = [a for port in PORTS for a in ("--port", str(port))]
    protocols = [a for proto in PROTOCOLS for a in ("--protocol", proto)]
    assert lab.apply([str(policies)]), "lab apply of the scenario failed"
    problems: list[str] = []
    try:
        for family, flag in ((4, "ipv4"), (6, "ipv6")):
            want = spec(objects, family)
            probed = cli_json("lab", "probe", "--name", lab.name, "--family", flag,
                              "--timeout", "1", "-o", "json", *ports, *protocols)
            matrix = cli_json("policy", "matrix", "-f", str(everything), "--family", flag,
                              "-o", "json", *ports, *protocols)
            problems += mismatches(f"lab probe --family {flag}", verdicts(probed), want)
            problems += mismatches(f"policy matrix --family {flag}", verdicts(matrix), want)
    finally:
        assert lab.delete([str(policies)]), "lab delete of the scenario failed"
    assert not problems, "\n".join(problems[:40]) + "\n\n" + policies.read_text()
