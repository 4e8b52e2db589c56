"""Faults rehearsed on a two-node lab with etcd identities (issue 11, "Done when"):

1. etcd stopped (`lab stop etcd`): known identities keep working; a pod with a label set
   no node has seen stays pending (named by `lab apply`, which returns within 30 s) and
   holds back nothing: a deny applied afterwards is enforced within 5 s.
2. `lab start etcd`: the pending pod gets its identity and connects within 20 s.
3. node2's agent SIGKILLed (`lab stop agent --node node2 --signal KILL`) during traffic:
   an established connection keeps flowing, what was allowed stays allowed, what was
   denied stays denied; `lab apply` of a pod for node2 leaves it pending without holding
   back a pod for node1; a policy applied while the agent is down is enforced within
   10 s of `lab start agent`, and the pending pod runs.

The tests run in file order on one lab (each leaves the lab as the next expects).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from lab.controller import Lab
from lab.netbuilder import pod_command
from tests.lab.agentlab import (ECHO_CLIENT, ECHO_SERVER, expect_line, in_pod, ping, pod_ip,
                                state_of, stop, write)
from tests.lab.conftest import needs_root, run_cli, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

ECHO_PORT = 9000

PODS = f"""
apiVersion: v1
kind: Pod
metadata: {{name: client1, labels: {{app: client}}}}
spec: {{nodeName: node1, containers: [{{name: c, image: x}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: server2, labels: {{app: server}}}}
spec: {{nodeName: node2, containers: [{{name: c, image: x, ports: [{{containerPort: 80}}]}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: other2, labels: {{app: other}}}}
spec: {{nodeName: node2, containers: [{{name: c, image: x}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web2, labels: {{app: web}}}}
spec: {{nodeName: node2, containers: [{{name: c, image: x}}]}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: server-from-client}}
spec:
  podSelector: {{matchLabels: {{app: server}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{app: client}}}}}}]
    ports: [{{port: 80}}, {{port: {ECHO_PORT}}}]
"""

FRESH = """
apiVersion: v1
kind: Pod
metadata: {name: fresh2, labels: {app: brand-new-while-etcd-is-down}}
spec: {nodeName: node2, containers: [{name: c, image: x}]}
"""

DENY_OTHER = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: other-deny-ingress}
spec: {podSelector: {matchLabels: {app: other}}, policyTypes: [Ingress]}
"""

DENY_WEB = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny-ingress}
spec: {podSelector: {matchLabels: {app: web}}, policyTypes: [Ingress]}
"""

LATE = """
apiVersion: v1
kind: Pod
metadata: {name: late2, labels: {app: client}}
spec: {nodeName: node2, containers: [{name: c, image: x}]}
---
apiVersion: v1
kind: Pod
metadata: {name: late1, labels: {app: web}}
spec: {nodeName: node1, containers: [{name: c, image: x}]}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], str]:
    root = tmp_path_factory.mktemp("faults")
    return lambda name, text: write(root, name, text)


@pytest.fixture(scope="module")
def lab(files: Callable[[str, str], str]) -> Iterator[Lab]:
    needs_root()
    if shutil.which("etcd") is None:
        pytest.skip("etcd (Debian etcd-server) is not installed")
    lab = Lab(unique_lab_name("faults"))
    try:
        assert lab.up(2, [files("pods.yaml", PODS)], identity_backend="etcd")
        yield lab
    finally:
        lab.down()


def connects(lab: Lab, src: str, dst: str, port: int = 80) -> bool:
    netns = state_of(lab).pods[src].netns
    result = subprocess.run(pod_command(netns, [
        "curl", "-s", "-o", "/dev/null", "--connect-timeout", "1", "-m", "2",
        f"http://{pod_ip(lab, dst)}:{port}/"]), capture_output=True, timeout=10)
    return result.returncode == 0


def within(seconds: float, condition: Callable[[], bool], since: float) -> float | None:
    """Seconds from `since` until condition held, polling until since + seconds; None if
    it never did."""
    while True:
        if condition():
            return time.monotonic() - since
        if time.monotonic() - since > seconds:
            return None
        time.sleep(0.2)


def timed_cli(*argv: str) -> tuple[int, float]:
    t0 = time.monotonic()
    code = run_cli(*argv)
    return code, time.monotonic() - t0


def pod_status(lab: Lab, key: str) -> str:
    return next(p["status"] for p in lab.status()["pods"] if p["pod"] == key)


# -- 1 and 2: etcd down, then back ---------------------------------------------------------

def test_with_etcd_down_a_new_label_set_stays_pending_and_a_later_deny_is_enforced(
        lab: Lab, files: Callable[[str, str], str], capsys: pytest.CaptureFixture[str]) -> None:
    assert connects(lab, "default/client1", "default/other2")
    assert run_cli("lab", "stop", "--name", lab.name, "etcd") == 0
    assert lab.status()["etcd"]["running"] is False
    # known identities keep working
    assert connects(lab, "default/client1", "default/server2")
    assert not connects(lab, "default/other2", "default/server2")

    capsys.readouterr()
    code, took = timed_cli("lab", "apply", "--name", lab.name, "-f", files("fresh.yaml", FRESH))
    err = capsys.readouterr().err
    assert took < 30, f"lab apply took {took:.1f}s"
    assert code == 1 and "default/fresh2 on node2 is pending" in err, err
    assert pod_status(lab, "default/fresh2").startswith("pending")

    t0 = time.monotonic()
    run_cli("lab", "apply", "--name", lab.name, "-f", files("deny-other.yaml", DENY_OTHER))
    took_deny = within(5.0, lambda: not connects(lab, "default/client1", "default/other2"), t0)
    assert took_deny is not None, "the deny was not enforced within 5 s with etcd down"
    assert connects(lab, "default/client1", "default/server2")


def test_after_etcd_is_back_the_pending_pod_connects_within_20s(
        lab: Lab, files: Callable[[str, str], str]) -> None:
    state = state_of(lab)
    if "default/fresh2" not in state.pods:      # the test above did not get that far
        assert run_cli("lab", "stop", "--name", lab.name, "etcd") == 0
        run_cli("lab", "apply", "--name", lab.name, "-f", files("fresh.yaml", FRESH))
    t0 = time.monotonic()
    assert run_cli("lab", "start", "--name", lab.name, "etcd") == 0
    assert lab.status()["etcd"]["running"] is True
    took = within(20.0, lambda: connects(lab, "default/fresh2", "default/client1"), t0)
    assert took is not None, "the new pod did not connect within 20 s of `lab start etcd`"
    assert pod_status(lab, "default/fresh2") == "running"
    # and it is enforced with an identity of its own: server2 admits only app=client
    assert not connects(lab, "default/fresh2", "default/server2")


# -- 3: an agent killed ----------------------------------------------------------------------

def test_a_killed_agent_leaves_enforcement_as_it_was_and_catches_up_on_restart(
        lab: Lab, files: Callable[[str, str], str], capsys: pytest.CaptureFixture[str]) -> None:
    server = in_pod(lab, "default/server2", ECHO_SERVER, str(ECHO_PORT))
    client = None
    try:
        expect_line(server, "listening")
        client = in_pod(lab, "default/client1", ECHO_CLIENT, pod_ip(lab, "default/server2"),
                        str(ECHO_PORT))
        expect_line(client, "connected")
        assert ping(client) == "ok"
        assert connects(lab, "default/client1", "default/web2")

        assert run_cli("lab", "stop", "--name", lab.name, "agent", "--node", "node2",
                       "--signal", "KILL") == 0
        assert lab.status()["nodes"][1]["agent"].startswith("unreachable")
        # during traffic and after: allowed stays allowed, denied stays denied
        assert ping(client) == "ok"
        assert connects(lab, "default/client1", "default/server2")
        assert not connects(lab, "default/other2", "default/server2")
        assert not connects(lab, "default/client1", "default/other2")

        # a pod for node2 waits for its agent; the one for node1 does not
        capsys.readouterr()
        code, took = timed_cli("lab", "apply", "--name", lab.name, "-f",
                               files("late.yaml", LATE))
        err = capsys.readouterr().err
        assert took < 30 and code == 1
        assert "default/late2 on node2 is pending" in err, err
        assert pod_status(lab, "default/late1") == "running"
        assert connects(lab, "default/client1", "default/late1")

        # a policy applied while the agent is down
        run_cli("lab", "apply", "--name", lab.name, "-f", files("deny-web.yaml", DENY_WEB))
        assert ping(client) == "ok"
        assert connects(lab, "default/client1", "default/web2"), "nothing enforces it yet"

        assert run_cli("lab", "start", "--name", lab.name, "agent", "--node", "node2") == 0
        started = time.monotonic()
        took = within(10.0, lambda: not connects(lab, "default/client1", "default/web2"),
                      started)
        assert took is not None, "the policy applied while node2's agent was down was not " \
                                 "enforced within 10 s of its restart"
        assert pod_status(lab, "default/late2") == "running"
        assert connects(lab, "default/late2", "default/server2")   # app=client: allowed
        assert ping(client) == "ok"
        assert not connects(lab, "default/other2", "default/server2")
    finally:
        for proc in (client, server):
            if proc is not None:
                stop(proc)
