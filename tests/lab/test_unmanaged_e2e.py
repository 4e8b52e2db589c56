"""A pod the API places on a node that never registered with its agent (as one created
before Membrane was installed would be) is reported by that agent: `membrane status`,
`membrane endpoint list` (state "unmanaged") and /readyz (503). The pods the lab creates
are registered, so they never show up.

The unregistered pod is written straight into the lab's store, as the API server would
hold it, without the lab wiring or registering it.
"""

from __future__ import annotations

import subprocess
import time
from typing import Iterator

import pytest

from agent.api.client import AgentClient
from agent.sources.labdir import LabStoreDir
from lab import agents as agent_procs
from lab.controller import Lab
from lab.netbuilder import net_command
from tests.lab.agentlab import restart_agent, state_of, write
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

HEALTH_PORT = 19879   # inside the node's namespace: no clash with anything on the host

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
"""

UNREGISTERED = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "legacy", "namespace": "default", "labels": {"app": "legacy"}},
    "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "x"}]},
    "status": {"phase": "Running", "podIP": "10.244.1.200"},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    tmp = tmp_path_factory.mktemp("unmanaged")
    lab = Lab(unique_lab_name("unmgd"))
    try:
        assert lab.up(1, [write(tmp, "pods.yaml", PODS)])
        # A short grace, and /readyz served inside the node's namespace.
        restart_agent(lab, "node1", extra_args=("--unmanaged-grace", "1",
                                                "--health-port", str(HEALTH_PORT)))
        yield lab
    finally:
        lab.down()


def readyz(lab: Lab) -> int:
    node = state_of(lab).nodes["node1"]
    out = subprocess.run(net_command(node.netns, [
        "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5",
        f"http://127.0.0.1:{HEALTH_PORT}/readyz"]), capture_output=True, text=True)
    return int(out.stdout or 0)


def until(check, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def test_the_lab_registers_its_pods_so_none_is_unmanaged(lab: Lab) -> None:
    with AgentClient(state_of(lab).nodes["node1"].socket) as client:
        assert until(lambda: client.status().applied_revision > 0)
        time.sleep(1.5)   # past the grace
        assert list(client.status().unmanaged) == []
        assert "unmanaged" not in {e.state for e in client.list_endpoints()}
    assert until(lambda: readyz(lab) == 200)


def test_a_pod_in_the_store_that_never_registered_is_reported_unmanaged(lab: Lab) -> None:
    state = state_of(lab)
    store = LabStoreDir(state.store_dir)
    revision = store.apply([UNREGISTERED])
    agent_procs.wait_revision(state, revision)
    try:
        with AgentClient(state.nodes["node1"].socket) as client:
            assert until(lambda: len(client.status().unmanaged) == 1)
            (line,) = client.status().unmanaged
            assert line.startswith("pod default/legacy (10.244.1.200) unmanaged")
            rows = [(e.namespace, e.pod, e.state, e.ipv4) for e in client.list_endpoints()]
            assert ("default", "legacy", "unmanaged", "10.244.1.200") in rows
            assert ("default", "web", "ready", state.pods["default/web"].ip) in rows
        assert until(lambda: readyz(lab) == 503)
    finally:
        revision = store.delete([("Pod", "default", "legacy")])
        agent_procs.wait_revision(state, revision)
    assert until(lambda: readyz(lab) == 200)
    with AgentClient(state.nodes["node1"].socket) as client:
        assert list(client.status().unmanaged) == []


def test_the_cli_lists_the_unmanaged_pod(lab: Lab) -> None:
    state = state_of(lab)
    store = LabStoreDir(state.store_dir)
    agent_procs.wait_revision(state, store.apply([UNREGISTERED]))
    try:
        out = ""

        def listed() -> bool:
            nonlocal out
            out = subprocess.run([*agent_procs.membrane_command(), "endpoint", "list",
                                  "--lab", lab.name], capture_output=True, text=True).stdout
            return "pod default/legacy" in out

        assert until(listed), out
        assert "unmanaged" in out
    finally:
        agent_procs.wait_revision(state, store.delete([("Pod", "default", "legacy")]))
