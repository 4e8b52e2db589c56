"""`lab probe` on a --no-agent lab: real connections, the shape and order of
`policy matrix`, and denials seen as denials (made here with nftables inside a pod)."""

from __future__ import annotations

import json
import subprocess

import pytest

from agent.k8s.loader import objects_from_documents
from lab.controller import Lab
from lab.netbuilder import pod_command
from lab.probe import run_probe
from lab.state import LabState
from agent.policy.matrix import reachability, to_json
from agent.sources.labdir import LabStoreDir
from tests.lab.conftest import MakeLab, run_cli

pytestmark = pytest.mark.privileged

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec: {nodeName: node2, containers: [{name: c, image: x, ports: [{containerPort: 8080}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: c, namespace: other, labels: {app: c}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
"""


@pytest.fixture(scope="module")
def lab(make_lab: MakeLab, manifests) -> Lab:
    return make_lab("probe", nodes=2, files=[manifests("pods.yaml", PODS)])


def state_of(lab: Lab) -> LabState:
    state = LabState.load(lab.name)
    assert state is not None
    return state


def test_without_policies_the_probe_equals_the_policy_matrix(lab: Lab) -> None:
    state = state_of(lab)
    _, docs = LabStoreDir(state.store_dir).read()
    expected = reachability(objects_from_documents(docs).objects, [80, 8080], ["TCP", "UDP"])
    probed = run_probe(state, [80, 8080], ["TCP", "UDP"], timeout=1.0)
    assert to_json(probed) == to_json(expected)
    assert all(v.allowed for v in probed)
    # The DNS pod is a pod of the lab like any other.
    assert {v.src for v in probed} == {"default/a", "default/b", "kube-system/coredns", "other/c"}


def test_a_dropped_port_is_denied_and_only_that_one(lab: Lab) -> None:
    netns = lab.netns_of("default/b")
    rules = ("add table ip probetest; add chain ip probetest in "
             "{ type filter hook input priority 0; }; "
             "add rule ip probetest in tcp dport 8080 drop; "
             "add rule ip probetest in udp dport 80 drop")
    subprocess.run(pod_command(netns, ["nft", rules]), check=True)
    try:
        verdicts = run_probe(state_of(lab), [80, 8080], ["TCP", "UDP"], timeout=0.5)
    finally:
        subprocess.run(pod_command(netns, ["nft", "delete table ip probetest"]))
    denied = {(v.src, v.dst, v.protocol, v.port) for v in verdicts if not v.allowed}
    sources = {"default/a", "kube-system/coredns", "other/c"}
    assert denied == {(s, "default/b", "TCP", 8080) for s in sources} | \
                     {(s, "default/b", "UDP", 80) for s in sources}


def test_udp_probe_gets_an_answer_from_the_dns_server(lab: Lab) -> None:
    verdicts = run_probe(state_of(lab), [53], ["UDP"], timeout=1.0)
    assert all(v.allowed for v in verdicts if v.dst == "kube-system/coredns")


def test_cli_prints_the_matrix_json_shape(lab: Lab, capsys) -> None:
    assert run_cli("lab", "probe", "--name", lab.name, "-o", "json") == 0
    out = json.loads(capsys.readouterr().out)
    first = out["verdicts"][0]
    assert list(first) == ["from", "to", "port", "protocol", "allowed"]
    assert (first["port"], first["protocol"]) == (80, "TCP")
    keys = [(v["from"], v["to"], v["protocol"], v["port"]) for v in out["verdicts"]]
    assert keys == sorted(keys) and len(keys) == 4 * 3


def test_a_protocol_the_lab_cannot_send_is_refused_with_the_reason_not_reported_denied() -> None:
    from core.errors import LabError

    with pytest.raises(LabError, match=r"cannot probe SCTP: the lab sends TCP and UDP only"):
        run_probe(LabState(name="unused", root="/nonexistent"), [80], ["TCP", "SCTP"])
