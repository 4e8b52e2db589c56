"""The lab's relay (`membrane relay --lab NAME`, observe.relay) and the metrics each
node's agent serves: what `membrane lab status -o json` lists as `relay` and
`nodes[].metrics`.

The relay runs on the machine, outside every namespace: it dials the agents' Observer
sockets (nodes/<node>/agent.observer.sock, beside agent.sock, found by listing the
directory, so it follows nodes as they come and go) and serves <lab root>/relay.sock, a target this machine can dial
(unix:///run/membrane/labs/LAB/relay.sock). Each agent serves Hubble's flow metrics on
every address of its node namespace at Cilium's port, so pods reach them at
http://<node IP>:9965/metrics.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import LabError
from lab.agents import membrane_command
from lab.processes import spawn, tail
from lab.state import LabState, NodeState, Process, lab_root
from observe.metrics import AGENT_METRICS_PORT, HUBBLE_METRICS_PORT

RELAY_START_TIMEOUT = 15.0


def relay_socket(lab: str) -> Path:
    return lab_root(lab) / "relay.sock"


def relay_target(lab: str) -> str:
    """The lab relay's gRPC target: unix:///run/membrane/labs/LAB/relay.sock."""
    return f"unix://{relay_socket(lab)}"


def metrics_url(node: NodeState) -> str:
    return f"http://{node.ip}:{HUBBLE_METRICS_PORT}/metrics"


def agent_metrics_url(node: NodeState) -> str:
    return f"http://{node.ip}:{AGENT_METRICS_PORT}/metrics"


def start_relay(state: LabState) -> None:
    """Starts the relay and waits for its socket; recorded so `down` stops it."""
    socket = relay_socket(state.name)
    log = Path(state.root) / "relay.log"
    cmd = [*membrane_command(), "relay", "--lab", state.name, "--unix-socket", str(socket)]
    proc = spawn(cmd, log)
    state.processes.append(Process(pid=proc.pid, marker=f"relay --lab {state.name} "))
    state.save()
    deadline = time.monotonic() + RELAY_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the lab's relay exited with code {proc.returncode}; "
                           f"{log}:\n{tail(log)}")
        if socket.exists():
            return
        time.sleep(0.1)
    raise LabError(f"the lab's relay did not serve {socket} within {RELAY_START_TIMEOUT:.0f}s; "
                   f"{log}:\n{tail(log)}")
