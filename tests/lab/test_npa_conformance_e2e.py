"""The Network Policy API conformance cases with real packets, on a lab with agents.

tests/unit/test_npa_conformance_model.py replays all 48 ConformanceTests of
kubernetes-sigs/network-policy-api (main for ClusterNetworkPolicy, v0.1.7 for
AdminNetworkPolicy / BaselineAdminNetworkPolicy) against the engine. Here a subset of
the same cases (steps and expectations from npa_conformance_data, mutations from the
unit module, not copied) runs on a lab: two nodes, both agents, the real datapath.

  the cluster  upstream's base: namespaces gryffindor, slytherin, hufflepuff, ravenclaw
               (conformance-house=<house>), two pods each, alternating between the nodes,
               labelled conformance-house=<house>, serving TCP 80 (named web) and 8080,
               UDP 53 (named dns) and 5353, as upstream's agnhost containers do
  steps        a case's policies through `lab apply`, each mutation as the changed object
               (`lab apply` of the policy or namespace, `lab delete` of a NetworkPolicy);
               each returns once both agents enforce the new store revision
  pokes        a subtest's pokes grouped by protocol and port, probed with `run_probe`
               (real connections) between the pods they involve, compared with upstream
  between cases every policy deleted and the namespaces' labels restored

Not here (the unit model and the datapath tests cover them): SCTP pokes (this kernel
has no SCTP sockets, the lab cannot send it) and the node-peer cases (their servers are
host-network pods on upstream's random ports; the lab starts no processes for
host-network pods).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.sources.labdir import LabStoreDir
from lab.controller import Lab
from lab.probe import run_probe
from tests.lab.agentlab import state_of
from tests.lab.conftest import needs_root, unique_lab_name

sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
import npa_conformance_data as data  # noqa: E402
import test_npa_conformance_model as model  # noqa: E402

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PROBE_TIMEOUT = 1.0
NODES = 2
SELECTED = {
    "v1alpha2 CNPAdminTierEgressTCP": "Admin tier: rule order, Accept/Deny/Pass, swaps",
    "v1alpha2 CNPAdminTierIntegration": "Admin Pass to NetworkPolicy, then to Baseline",
    "v1alpha2 CNPBaselineTierIngressUDP": "Baseline tier over UDP",
    "v1alpha2 CNPAdminTierGress": "both directions at once",
    "v1alpha1 AdminNetworkPolicyPriorityField": "an ANP's priority changed",
    "v1alpha1 AdminNetworkPolicyEgressInlineCIDRPeers": "networks peers, pod /32s",
    "v1alpha1 BaselineAdminNetworkPolicyIngressNamedPort": "a BANP named port",
}
__doc__ += "\nThe cases:\n" + "".join(f"  - {k}: {v}\n" for k, v in SELECTED.items())

_BY_ID = {f"{c.version} {c.name}": c for c in data.CASES}
CASES = [pytest.param(_BY_ID[key], id=key) for key in SELECTED]
SERVED = [{"containerPort": 80, "protocol": "TCP", "name": "web"},
          {"containerPort": 8080, "protocol": "TCP"},
          {"containerPort": 53, "protocol": "UDP", "name": "dns"},
          {"containerPort": 5353, "protocol": "UDP"}]


def base_documents() -> list[dict[str, Any]]:
    """Upstream's namespaces and pods (the unit model's), placed, addresses left to the
    lab; no nodes (the lab has its own) and no host-network pods."""
    docs = []
    for i, doc in enumerate(d for d in model.base_documents() if d["kind"] == "Namespace"
                            or (d["kind"] == "Pod" and not d["spec"].get("hostNetwork"))):
        if doc["kind"] == "Pod":
            doc["spec"]["nodeName"] = f"node{i % NODES + 1}"
            doc["spec"]["containers"][0]["ports"] = SERVED
            del doc["status"]
        docs.append(doc)
    return docs


class LabCluster:
    def __init__(self, lab: Lab, tmp: Path) -> None:
        self.lab, self.tmp, self.files = lab, tmp, 0

    def manifest(self, docs: list[dict[str, Any]]) -> str:
        self.files += 1
        path = self.tmp / f"{self.files:03d}.json"
        path.write_text("\n".join(json.dumps(d) for d in docs))
        return str(path)

    def store(self) -> list[dict[str, Any]]:
        return LabStoreDir(state_of(self.lab).store_dir).read()[1]

    def apply(self, docs: list[dict[str, Any]]) -> None:
        assert self.lab.apply([self.manifest(docs)]), "lab apply failed"

    def step(self, step: data.Step) -> None:
        """One mutation: the unit module changes the store's documents, the lab applies
        the changed one."""
        view = model.Cluster(self.store())
        if step[0] == "delete":
            namespace, name = step[2].split("/")
            doc = view.find(step[1], name, model.NS + namespace)
            assert self.lab.delete([self.manifest([doc])]), "lab delete failed"
            return
        model.mutate(view, step)
        if step[0] == "namespace_labels":
            changed = view.find("Namespace", model.NS + step[1])
        else:
            changed = view.policy(step[1])
        self.apply([changed])

    def reset(self) -> None:
        policies = [d for d in self.store() if d["kind"] not in ("Namespace", "Pod", "Node")]
        if policies:
            assert self.lab.delete([self.manifest(policies)]), "lab delete failed"
        want = {d["metadata"]["name"]: d for d in base_documents() if d["kind"] == "Namespace"}
        drifted = [want[d["metadata"]["name"]] for d in self.store()
                   if d["kind"] == "Namespace" and d["metadata"]["name"] in want
                   and d["metadata"].get("labels", {}).get("conformance-house")
                   != want[d["metadata"]["name"]]["metadata"]["labels"]["conformance-house"]]
        if drifted:
            self.apply(drifted)

    def pokes(self, title: str, pokes: list[data.Step]) -> list[str]:
        """Real connections for the pokes (TCP and UDP); what differs from upstream."""
        state = state_of(self.lab)
        problems = []
        groups: dict[tuple[str, int], list[data.Step]] = {}
        for p in pokes:
            if p[2] != "SCTP":
                groups.setdefault((p[2], p[4]), []).append(p)
        for (protocol, port), group in sorted(groups.items()):
            keys = {model.NS + p[1] for p in group} | {model.NS + p[3] for p in group}
            involved = replace(state, pods={k: state.pods[k] for k in keys})
            verdicts = run_probe(involved, [port], [protocol], timeout=PROBE_TIMEOUT)
            got = {(v.src, v.dst): v.allowed for v in verdicts}
            for _, client, _, server, _, connects in group:
                connected = got[(model.NS + client, model.NS + server)]
                if connected != connects:
                    problems.append(f"[{title}] {client} -> {server} {protocol}/{port}: "
                                    f"upstream expects {'connected' if connects else 'blocked'}"
                                    f", the lab {'connected' if connected else 'blocked'}")
        return problems


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    needs_root()
    tmp = tmp_path_factory.mktemp("npa")
    lab = Lab(unique_lab_name("npa"))
    try:
        started = time.monotonic()
        path = tmp / "base.json"
        path.write_text("\n".join(json.dumps(d) for d in base_documents()))
        assert lab.up(NODES, [str(path)]), "lab up with upstream's base failed"
        print(f"\nlab {lab.name} up in {time.monotonic() - started:.1f}s")
        yield LabCluster(lab, tmp)
    finally:
        lab.down()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lab.names.prefix + "-" not in left, f"lab {lab.name} left namespaces:\n{left}"


@pytest.mark.parametrize("case", CASES)
def test_conformance_case_with_real_packets(cluster: LabCluster, case: data.Case) -> None:
    cluster.reset()
    try:
        text = data.MANIFESTS[case.manifest].replace("{NS}", model.NS)
        cluster.apply(model.manifest_documents(case) if text else [])
        problems: list[str] = []
        for title, steps in case.subtests:
            pending: list[data.Step] = []
            for step in steps:
                if step[0] == "poke":
                    pending.append(step)
                    continue
                problems += cluster.pokes(title, pending)
                pending = []
                cluster.step(step)
            problems += cluster.pokes(title, pending)
        assert not problems, "\n".join(problems)
    finally:
        cluster.reset()
