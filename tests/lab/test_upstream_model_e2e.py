"""Upstream's NetworkPolicy e2e cases with real packets, on a lab with agents.

tests/unit/test_upstream_e2e_model.py ports all 48 `It()` cases of kubernetes
test/e2e/network/netpol and checks their truth tables against the policy engine. Here a
representative subset of the same cases (their steps and expected tables imported from
that module, not copied) runs on a lab: two nodes, both agents, the real datapath.

  the cluster   upstream's model as lab pods: namespaces x, y, z (labels ns=<name> and
                kubernetes.io/metadata.name), pods a, b, c in each (label pod=<name>),
                each declaring ports 80 and 81 on TCP, UDP and SCTP named
                serve-<port>-<protocol>; the lab serves 80 and 81 on TCP and UDP in every
                pod. Pods alternate between node1 and node2, so every namespace spans both
                nodes and most pairs cross the underlay.
  steps         policies go through `lab apply` / `lab delete`, labels through `lab label`;
                each returns once both agents enforce the new store revision
  Validate      `run_probe`: real connections between every ordered pair of the nine pods
                for the step's port and protocol (consecutive Validates share one probe),
                compared with upstream's table; on a difference, expected / observed /
                comparison tables as the unit module prints them. Pod -> itself is not
                probed (upstream ignores loopback too): the diagonal is not compared.
  ipBlocks      upstream builds CIDRs from the pods' IPs. The unit cases hold the model's
                addresses; here a /32 of a model pod becomes the /32 of that lab pod, and a
                wider prefix (upstream's "<podIP>/4") is kept only if it holds the same pods
                under both address plans, else the case fails as unrelocatable.
  between cases as upstream: every policy deleted, pod and namespace labels restored (from
                the store, so a case that failed half-way leaves nothing behind)

SCTP is not sent here: this kernel has no SCTP sockets and `run_probe` refuses it. SCTP
enforcement is covered by the datapath tests (BPF test runs) and the SCTP cases by the
unit model; a case with an SCTP Validate would be skipped with that reason.

The cases, by what each exercises (ids are upstream's titles):
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from agent.k8s.serialize import to_document
from lab.controller import Lab
from lab.probe import run_probe
from lab.state import LabState
from agent.sources.labdir import LabStoreDir
from tests.lab.agentlab import state_of
from tests.lab.conftest import needs_root, unique_lab_name

# The unit module and its helpers live in tests/unit, which pytest puts on sys.path only
# when it collects that directory.
sys.path.append(str(Path(__file__).resolve().parents[1] / "unit"))
import test_upstream_e2e_model as upstream  # noqa: E402

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PROBE_TIMEOUT = 1.0  # a denied probe costs this much; every pair is probed at once
NODES = 2

SELECTED = {
    "should support a 'default-deny-ingress' policy":
        "deny-all ingress",
    "should deny egress from all pods in a namespace":
        "deny-all egress",
    "should enforce policy to allow traffic only from a different namespace, based on "
    "NamespaceSelector":
        "allow from a namespace",
    "should enforce policy based on PodSelector and NamespaceSelector":
        "podSelector AND namespaceSelector in one peer",
    "should enforce policy based on PodSelector or NamespaceSelector":
        "two peers, OR",
    "should allow ingress access from namespace on one named port":
        "an ingress named port, and the other port denied",
    "should enforce multiple, stacked policies with overlapping podSelectors":
        "multiple ports, from two policies selecting the same pod",
    "should enforce egress policy allowing traffic to a server in a different namespace "
    "based on PodSelector and NamespaceSelector":
        "egress to one pod of another namespace",
    "should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed":
        "ipBlock with except from pod IPs, then updated to the excepted /32",
    "should enforce updated policy":
        "a policy update revoking an allow-all",
    "should allow ingress access from updated namespace":
        "a namespace relabelled into a selector",
    "should allow ingress access from updated pod":
        "a pod relabelled into a selector",
    "using UDP should enforce policy based on Ports":
        "UDP, on a port, from a namespace",
}
__doc__ += "".join(f"  - {what}: {title!r}\n" for title, what in SELECTED.items())

_BY_ID = {case.id: case for case in upstream.CASES}
CASES = [pytest.param(*_BY_ID[title].values, id=title) for title in SELECTED]


# -- the cluster ------------------------------------------------------------------------

def node_of(key: str) -> str:
    """x/a node1, x/b node2, x/c node1, y/a node2, ...: both nodes in every namespace."""
    return f"node{upstream.PODS.index(key) % NODES + 1}"


def cluster_documents() -> list[dict[str, Any]]:
    """upstream's model as manifests: its namespaces and pods, placed, addresses left to
    the lab."""
    objects = upstream.Model().objects()
    docs = [to_document(ns) for ns in objects.namespaces.values()]
    docs += [to_document(replace(pod, ip=None, node_name=node_of(key)))
             for key, pod in objects.pods.items()]
    return docs


def write_manifest(path: Path, docs: list[dict[str, Any]]) -> str:
    """docs as a JSON stream (one object after another), as kubectl reads it."""
    path.write_text("\n".join(json.dumps(d) for d in docs))
    return str(path)


class Cluster:
    """The lab with upstream's model on it, and the steps as lab verbs."""

    def __init__(self, lab: Lab, tmp: Path) -> None:
        self.lab, self.tmp = lab, tmp
        self.files = 0
        self.initial = upstream.Model()

    def manifest(self, docs: list[dict[str, Any]]) -> str:
        self.files += 1
        return write_manifest(self.tmp / f"{self.files:03d}.json", docs)

    def state(self) -> LabState:
        return state_of(self.lab)

    def addresses(self) -> dict[str, str]:
        """model address -> lab address, for every pod of the model."""
        pods = self.state().pods
        return {upstream.pod_ip(key): pods[key].ip for key in upstream.PODS}

    # -- steps ----------------------------------------------------------------------
    def apply_policy(self, policy: Any) -> None:
        doc = relocate(to_document(policy), self.addresses())
        assert self.lab.apply([self.manifest([doc])]), f"lab apply of {policy.key} failed"

    def delete_policies(self, docs: list[dict[str, Any]]) -> None:
        if docs:
            assert self.lab.delete([self.manifest(docs)]), "lab delete of policies failed"

    def change(self, model: Any, step: Any) -> None:
        """One cluster change through the lab's verbs; `model` follows it."""
        if isinstance(step, (upstream.Create, upstream.Update)):
            self.apply_policy(step.policy)
        elif isinstance(step, upstream.DeleteAllPolicies):
            self.delete_policies([to_document(p) for p in model.policies.values()])
        elif isinstance(step, upstream.DeletePolicy):
            if step.key in model.policies:
                self.delete_policies([to_document(model.policies[step.key])])
        elif isinstance(step, upstream.AddPodLabels):
            self.lab.label("Pod", step.key, [f"{k}={v}" for k, v in step.labels.items()])
        elif isinstance(step, upstream.AddNamespaceLabel):
            self.lab.label("Namespace", step.namespace, [f"{step.key}={step.value}"])
        elif isinstance(step, upstream.RemovePodLabel):
            self.lab.label("Pod", step.key, [f"{step.label}-"])
        elif isinstance(step, upstream.RemoveNamespaceLabel):
            self.lab.label("Namespace", step.namespace, [f"{step.label}-"])
        else:  # pods recreated with other ports or IPs: beyond upstream, not selected here
            pytest.fail(f"{type(step).__name__} has no lab verb in this module")
        upstream.apply(model, step)

    def drift(self) -> tuple[list[dict[str, Any]], list[tuple[str, str, list[str]]]]:
        """(policies in the store, label changes back to the model): what a case left."""
        _, docs = LabStoreDir(self.state().store_dir).read()
        policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
        relabels = []
        for doc in docs:
            meta = doc.get("metadata") or {}
            have = dict(meta.get("labels") or {})
            if doc.get("kind") == "Namespace" and meta["name"] in upstream.NAMESPACES:
                kind, target = "Namespace", meta["name"]
                want = self.initial.namespace_labels[target]
            elif doc.get("kind") == "Pod" and \
                    (target := f"{meta.get('namespace')}/{meta['name']}") in upstream.PODS:
                kind, want = "Pod", self.initial.pod_labels[target]
            else:
                continue
            changes = [f"{k}={v}" for k, v in want.items() if have.get(k) != v]
            changes += [f"{k}-" for k in have if k not in want]
            if changes:
                relabels.append((kind, target, changes))
        return policies, relabels

    def reset(self) -> None:
        """As upstream between cases: no policy left, every label as the model had it.
        Read from the store, so whatever a failed case left is undone too."""
        policies, relabels = self.drift()
        self.delete_policies(policies)
        for kind, target, changes in relabels:
            self.lab.label(kind, target, changes)
        assert self.drift() == ([], []), f"the lab still differs from the model: {self.drift()}"

    # -- Validate -------------------------------------------------------------------
    def validate(self, validates: list[tuple[int, Any]]) -> list[str]:
        """Probes the nine pods once for every (port, protocol) of the Validates; the
        problems, one per Validate whose table differs from upstream's."""
        if not validates:
            return []
        state = self.state()
        # Only the model's pods: the lab's DNS pod is not in upstream's table.
        nine = replace(state, pods={k: state.pods[k] for k in upstream.PODS})
        verdicts = run_probe(nine, sorted({v.port for _, v in validates}),
                             sorted({v.protocol for _, v in validates}), timeout=PROBE_TIMEOUT)
        got = {(v.src, v.dst, v.port, v.protocol): v.allowed for v in verdicts}
        placement = "; ".join(
            f"{node}: {' '.join(k for k in upstream.PODS if state.pods[k].node == node)}"
            for node in sorted(state.nodes))
        problems = []
        for i, v in validates:
            expected = dict(v.reachability.cells)
            observed = {(s, d): expected[(s, d)] if s == d else got[(s, d, v.port, v.protocol)]
                        for s, d in expected}
            if observed != expected:
                problems.append(upstream.describe_mismatch(
                    f"step {i}: {v.protocol}/{v.port} with real packets (the diagonal is "
                    f"not probed: shown as expected; pods on {placement})", expected, observed))
        return problems


def relocate(doc: dict[str, Any], addresses: dict[str, str]) -> dict[str, Any]:
    """The policy document with its ipBlocks moved from the model's pod addresses to the
    lab's: a pod's /32 follows the pod; a wider prefix stays if it holds the same pods."""
    def move(cidr: str) -> str:
        net = ipaddress.ip_network(cidr)
        if net.prefixlen == 32 and str(net.network_address) in addresses:
            return f"{addresses[str(net.network_address)]}/32"
        inside = {m for m in addresses if ipaddress.ip_address(m) in net}
        if {addresses[m] for m in inside} != {a for a in addresses.values()
                                              if ipaddress.ip_address(a) in net}:
            raise AssertionError(f"ipBlock {cidr} holds other pods under the lab's addresses "
                                 f"({addresses}); the case cannot be relocated as is")
        return cidr

    spec = doc["spec"]
    for direction, side in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(direction) or []:
            for peer in rule.get(side) or []:
                block = peer.get("ipBlock")
                if block:
                    block["cidr"] = move(block["cidr"])
                    if block.get("except"):
                        block["except"] = [move(c) for c in block["except"]]
    return doc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    needs_root()
    tmp = tmp_path_factory.mktemp("upstream")
    lab = Lab(unique_lab_name("upstream"))
    try:
        started = time.monotonic()
        path = write_manifest(tmp / "cluster.json", cluster_documents())
        assert lab.up(NODES, [path]), "lab up with upstream's model failed"
        state = state_of(lab)
        assert {state.pods[k].node for k in upstream.PODS} == {"node1", "node2"}
        print(f"\nlab {lab.name} up in {time.monotonic() - started:.1f}s")
        yield Cluster(lab, tmp)
    finally:
        lab.down()
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert lab.names.prefix + "-" not in left, f"lab {lab.name} left namespaces:\n{left}"


@pytest.fixture
def clean(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster as the model has it, before the case and again after it."""
    cluster.reset()
    yield cluster
    cluster.reset()


def test_the_lab_serves_upstreams_model_and_everything_is_allowed_without_policies(
        clean: Cluster) -> None:
    """The baseline every case's table departs from (NewReachability: all allowed)."""
    validates = [(1, upstream.Validate(port, protocol, upstream.reach()))
                 for port in upstream.PORTS for protocol in ("TCP", "UDP")]
    assert not (problems := clean.validate(validates)), "\n\n".join(problems)


@pytest.mark.parametrize("steps", CASES)
def test_upstream_netpol_case_with_real_packets(clean: Cluster, steps: list[Any]) -> None:
    sctp = [i for i, step in enumerate(steps, 1)
            if isinstance(step, upstream.Validate) and step.protocol == "SCTP"]
    if sctp:
        pytest.skip(f"step {sctp[0]} validates SCTP: this kernel has no SCTP sockets, so the "
                    "lab cannot send it (the unit model and the datapath tests cover SCTP)")
    model = upstream.Model()
    problems: list[str] = []
    validates: list[tuple[int, Any]] = []
    for i, step in enumerate(steps, 1):
        if isinstance(step, upstream.Validate):
            validates.append((i, step))
            continue
        problems += clean.validate(validates)
        validates = []
        clean.change(model, step)
    problems += clean.validate(validates)
    assert not problems, "\n\n".join(problems)
