"""Helpers for end-to-end tests on labs WITH agents (real datapath, real packets).

Everything runs through the lab's own verbs and state; long-lived TCP connections are
Python processes inside pod namespaces, spoken to over their stdin/stdout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.k8s.loader import objects_from_documents
from lab import agents as agent_procs
from lab.controller import Lab
from lab.netbuilder import pod_command
from lab.probe import run_probe
from lab.processes import spawn
from lab.state import LabState, Process
from agent.policy.matrix import reachability, to_json
from agent.sources.labdir import LabStoreDir
from tests.lab.conftest import unique_lab_name

TUTORIAL = Path(__file__).resolve().parents[2] / "demo" / "tutorial"
# The tutorial's demo app has no client that is not a frontend: one to be denied.
NOT_FRONTEND = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: not-frontend, labels: {app: not-frontend}}
spec:
  replicas: 1
  selector: {matchLabels: {app: not-frontend}}
  template:
    metadata: {labels: {app: not-frontend}}
    spec: {containers: [{name: not-frontend, image: busybox}]}
"""
# Pods labelled app: b accept connections from app: a only.
B_FROM_A = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: b-from-a}
spec:
  podSelector: {matchLabels: {app: b}}
  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}]}]
"""

ECHO_SERVER = r"""
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", int(sys.argv[1]))); srv.listen(16)
print("listening", flush=True)
def serve(conn):
    while True:
        data = conn.recv(4096)
        if not data:
            return
        conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# Reads "ping" lines on stdin; answers "ok" when the echo came back within a second.
ECHO_CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
s.settimeout(1.0)
print("connected", flush=True)
for line in sys.stdin:
    try:
        s.sendall(b"x"); got = s.recv(16)
        print("ok" if got else "closed", flush=True)
    except OSError as err:
        print("timeout" if isinstance(err, socket.timeout) else f"error {err}", flush=True)
"""


def state_of(lab: Lab) -> LabState:
    state = LabState.load(lab.name)
    assert state is not None, f"lab {lab.name} is not up"
    return state


def pod_netns(lab: Lab, key: str) -> str:
    return state_of(lab).pods[key].netns


def pod_key(lab: Lab, app: str) -> str:
    """The key (namespace/name) of the first pod of deployment `app`."""
    return next(k for k in state_of(lab).pods if k.split("/")[1].startswith(app + "-"))


def curl(lab: Lab, client: str, target: str, connect_timeout: int = 1) -> int:
    """curl's exit status for `target`, from a pod of deployment `client`."""
    netns = state_of(lab).pods[pod_key(lab, client)].netns
    return subprocess.run(pod_command(netns, ["curl", "-s", "-o", "/dev/null",
                                              "--connect-timeout", str(connect_timeout),
                                              target]),
                          timeout=20).returncode


def pod_ip(lab: Lab, key: str) -> str:
    return state_of(lab).pods[key].ip


def in_pod(lab: Lab, key: str, script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(pod_command(pod_netns(lab, key), [sys.executable, "-c", script, *args]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)


def expect_line(proc: subprocess.Popen[str], wanted: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line == wanted, f"expected {wanted!r}, got {line!r}"


def ping(client: subprocess.Popen[str]) -> str:
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write("ping\n")
    client.stdin.flush()
    return client.stdout.readline().strip()


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


def store_objects(lab: Lab):  # type: ignore[no-untyped-def]
    _, docs = LabStoreDir(state_of(lab).store_dir).read()
    return objects_from_documents(docs).objects


def probe_and_matrix(lab: Lab, ports: list[int], protocols: list[str]) -> tuple[dict, dict]:
    """(what real connections did, what `policy matrix` says), same JSON shape."""
    probed = run_probe(state_of(lab), ports, protocols, timeout=1.0)
    expected = reachability(store_objects(lab), ports, protocols)
    return json.loads(to_json(probed)), json.loads(to_json(expected))


def differences(probed: dict, expected: dict) -> list[str]:
    want = {(v["from"], v["to"], v["port"], v["protocol"]): v["allowed"] for v in expected["verdicts"]}
    got = {(v["from"], v["to"], v["port"], v["protocol"]): v["allowed"] for v in probed["verdicts"]}
    return [f"{k}: matrix {want.get(k)} probe {got.get(k)}" for k in sorted(set(want) | set(got))
            if want.get(k) != got.get(k)]


def restart_agent(lab: Lab, node: str, while_down=None,  # type: ignore[no-untyped-def]
                  extra_args: tuple[str, ...] = ()) -> None:
    """SIGTERM the node's agent, run while_down() with no agent at all, start it again
    (with extra_args appended to the lab's own agent command line, if any)."""
    state = state_of(lab)
    n = state.nodes[node]
    assert n.agent is not None
    cmdline = Path(f"/proc/{n.agent.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert n.agent.marker in cmdline + " "
    os.kill(n.agent.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while alive(n.agent.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(n.socket).exists(), "the agent left its socket behind"
    if while_down is not None:
        while_down()
    if extra_args:
        cmd = [*agent_procs.agent_command(state, n), *extra_args]
        proc = spawn(cmd, agent_procs.node_dir(state, n) / "agent.log")
        n.agent = Process(pid=proc.pid, marker=f"--socket {n.socket} ")
        state.save()
    else:
        proc = agent_procs.start_agent(state, n)
    agent_procs.wait_agent(state, n, proc)


def alive(pid: int) -> bool:
    """True while pid runs; reaps it if it is our own exited child (a zombie)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def dump(data: dict) -> str:
    return json.dumps(data, indent=1)


def pod(name: str, app: str, node: str) -> str:
    """A bare pod labelled app=`app` on `node`, as a manifest document."""
    return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            f"spec: {{nodeName: {node}, containers: [{{name: c, image: x}}]}}\n")


def manifest(*documents: str) -> str:
    return "---\n".join(documents)


@contextmanager
def tutorial_lab(tmp: Path, tag: str, *more: str) -> Iterator[Lab]:
    """A two-node lab with agents running the tutorial's demo app, NOT_FRONTEND and the
    `more` tutorial files, under its policies 01 and 02; always taken down."""
    extra = write(tmp, "not-frontend.yaml", NOT_FRONTEND)
    lab = Lab(unique_lab_name(tag))
    try:
        assert lab.up(2, [str(TUTORIAL / "demo-app.yaml"), extra,
                          *(str(TUTORIAL / name) for name in more)])
        assert lab.apply([str(TUTORIAL / "01-backend-ingress-deny.yaml"),
                          str(TUTORIAL / "02-backend-ingress-allow-frontend.yaml")])
        yield lab
    finally:
        lab.down()
