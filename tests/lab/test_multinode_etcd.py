"""Two nodes sharing identities through a real etcd: the lab starts etcd, one agent per
node allocates through it, and verdicts across nodes match the single-node engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from agent.api.client import AgentClient
from lab.controller import Lab
from tests.lab.agentlab import (B_FROM_A, differences, manifest, pod, probe_and_matrix,
                                state_of, write)
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

PODS = manifest(pod("a1", "a", "node1"), pod("a2", "a", "node2"), pod("b1", "b", "node1"),
                pod("b2", "b", "node2"), B_FROM_A)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    if shutil.which("etcd") is None:
        pytest.skip("etcd (Debian etcd-server) is not installed")
    lab = Lab(unique_lab_name("etcd"))
    try:
        assert lab.up(2, [write(tmp_path_factory.mktemp("etcd"), "pods.yaml", PODS)],
                      identity_backend="etcd")
        yield lab
    finally:
        lab.down()


def test_both_agents_give_the_same_labels_the_same_identity_number(lab: Lab) -> None:
    numbers = {}
    for node in state_of(lab).nodes.values():
        with AgentClient(node.socket) as client:
            for ident in client.list_identities():
                numbers.setdefault(tuple(ident.labels), set()).add(ident.id)
            local = {f"{e.namespace}/{e.pod}": e.identity for e in client.list_endpoints()}
        numbers.setdefault(("local", node.name), set()).update(local.values())
    assert all(len(ids) == 1 for key, ids in numbers.items() if key[0] != "local"), numbers
    # a1 (node1) and a2 (node2) are replicas of one label set: one number on both nodes.
    eps = {}
    for node in state_of(lab).nodes.values():
        with AgentClient(node.socket) as client:
            eps.update({e.pod: e.identity for e in client.list_endpoints()})
    assert eps["a1"] == eps["a2"] and eps["b1"] == eps["b2"] and eps["a1"] != eps["b1"]


def test_probe_across_nodes_agrees_with_the_policy_matrix(lab: Lab) -> None:
    probed, expected = probe_and_matrix(lab, [80], ["TCP"])
    assert not differences(probed, expected)
    allowed = {(v["from"], v["to"]) for v in probed["verdicts"] if v["allowed"]}
    assert ("default/a2", "default/b1") in allowed       # node2 -> node1, allowed
    assert ("default/b2", "default/b1") not in allowed   # denied across nodes too
