"""One `membrane agent` per lab node, run inside the node's netns like a hostNetwork
DaemonSet pod; and, for `--identity-backend etcd` without a URL, one etcd for the lab.

The agent enters the node's network namespace only (netbuilder.net_command, nsenter
--net): `ip netns exec` would remount /sys and hide /sys/fs/bpf, so the agent's pins would
not be the node's.

Faults to rehearse (`membrane lab stop|start`): an agent stopped (SIGTERM) or killed
(SIGKILL: no cleanup, as a crash or an OOM kill) leaves its pinned programs and maps
enforcing; started again, it reuses them. The lab's etcd stopped keeps its data and
address, and started again serves both.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from agent.api.client import AgentClient, lab_socket
from core.errors import AgentUnreachable, LabError, MembraneError
from lab.names import UNDERLAY_ETCD_IP
from lab.netbuilder import net_command
from lab.processes import is_ours, spawn, stop, tail
from lab.state import LabState, NodeState, Process
from observe.metrics import AGENT_METRICS_PORT, HUBBLE_METRICS_PORT

BPFFS_ROOT = Path("/sys/fs/bpf/membrane")
# What the lab's agents count: every metric, flows, drops and verdicts with the pods as
# contexts.
LAB_HUBBLE_METRICS = ("flow:sourceContext=pod;destinationContext=pod "
                      "drop:sourceContext=pod;destinationContext=pod "
                      "policy:sourceContext=pod;destinationContext=pod port-distribution tcp")
AGENT_START_TIMEOUT = 120.0  # bcc compiles the datapath at start: seconds, not minutes
ETCD_PORT = 2379


def membrane_command() -> list[str]:
    script = Path(sys.executable).parent / "membrane"
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


def metrics_args() -> list[str]:
    """Hubble's flow metrics and the agent's own on every address of the node, at
    Cilium's ports: pods reach them at the node's IP (lab.relay.metrics_url)."""
    return ["--hubble-metrics-server", f":{HUBBLE_METRICS_PORT}",
            "--prometheus-serve-addr", f":{AGENT_METRICS_PORT}",
            "--hubble-metrics", LAB_HUBBLE_METRICS]


def node_dir(state: LabState, node: NodeState) -> Path:
    return Path(state.root) / "nodes" / node.name


def agent_command(state: LabState, node: NodeState) -> list[str]:
    args = [*membrane_command(), "agent",
            "--node", node.name,
            "--source", f"lab:{state.store_dir}",
            "--state-dir", str(node_dir(state, node) / "state"),
            "--socket", node.socket,
            "--bpffs", node.bpffs,
            "--identity-backend", state.identity_backend]
    if state.identity_backend == "etcd":
        args += ["--etcd", state.etcd_url]
    # Hubble's and the agent's metrics on every address of the node (lab.relay), and the
    # node's flows exported next to its log.
    args += [*metrics_args(), "--hubble-export-file-path",
             str(node_dir(state, node) / "flows.json")]
    return net_command(node.netns, args + state.agent_args)


def start_agent(state: LabState, node: NodeState) -> subprocess.Popen[bytes]:
    node.socket = lab_socket(state.name, node.name)
    node.bpffs = str(BPFFS_ROOT / state.name / node.name)
    # Recorded before creation; the lab's bpffs dir goes too, its parent is shared.
    state.record_path(str(BPFFS_ROOT / state.name))
    Path(node.bpffs).mkdir(parents=True, exist_ok=True)
    Path(node.socket).parent.mkdir(parents=True, exist_ok=True)
    log = node_dir(state, node) / "agent.log"
    proc = spawn(agent_command(state, node), log)
    # The socket path names this lab and node: a recycled pid will not carry it.
    node.agent = Process(pid=proc.pid, marker=f"--socket {node.socket} ")
    state.save()
    return proc


def wait_agent(state: LabState, node: NodeState, proc: subprocess.Popen[bytes],
               timeout: float = AGENT_START_TIMEOUT) -> None:
    log = node_dir(state, node) / "agent.log"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"the agent of {node.name} exited with code {proc.returncode}; "
                           f"{log}:\n{tail(log)}")
        if Path(node.socket).exists():
            try:
                with AgentClient(node.socket, timeout=2.0) as client:
                    client.status()
                return
            except AgentUnreachable as err:
                last = str(err)
            except MembraneError as err:
                # It answered, with an error of its own: up, if unwell. Say so and go on.
                print(f"warning: the agent of {node.name} answers Status with an error: "
                      f"{err}", file=sys.stderr)
                return
        time.sleep(0.2)
    raise LabError(f"the agent of {node.name} did not answer on {node.socket} within "
                   f"{timeout:.0f}s ({last or 'no socket'}); {log}:\n{tail(log)}")


def stop_agent(state: LabState, node: NodeState, sig: signal.Signals = signal.SIGTERM) -> None:
    """Stops the node's agent with sig (SIGKILL: as a crash would, no cleanup at all)."""
    if node.agent is None or not is_ours(node.agent):
        raise LabError(f"the agent of {node.name} is not running in lab {state.name}")
    stop([node.agent], first=sig)


def wait_revision(state: LabState, revision: int, timeout: float = 30.0) -> list[str]:
    """Waits, within one deadline for all nodes, until every running agent enforces the
    store at `revision`. Returns one line per node that does not: its agent is down (it
    catches up when started) or still behind when the deadline passed."""
    if not state.agents:
        return []
    deadline = time.monotonic() + timeout
    behind = []
    for node in state.nodes.values():
        left = max(0.5, deadline - time.monotonic())
        try:
            with AgentClient(node.socket, timeout=left) as client:
                client.wait_for_revision(revision, timeout=left)
        except AgentUnreachable:
            behind.append(f"the agent of {node.name} is not running: it applies revision "
                          f"{revision} when it starts (`membrane lab start --name "
                          f"{state.name} agent --node {node.name}`)")
        except MembraneError as err:
            behind.append(f"{node.name} has not applied revision {revision} within "
                          f"{timeout:.0f}s: {err}")
    return behind


# -- the lab's etcd ----------------------------------------------------------------------

def etcd_data(state: LabState) -> Path:
    return Path(state.root) / "etcd"


def _etcd_marker(state: LabState) -> str:
    return f"--data-dir {etcd_data(state)} "


def etcd_process(state: LabState) -> Process | None:
    """The lab's own etcd as recorded (running or not); None when the lab has none."""
    return next((p for p in state.processes if p.marker == _etcd_marker(state)), None)


def etcd_running(state: LabState) -> bool:
    proc = etcd_process(state)
    return proc is not None and is_ours(proc)


def stop_etcd(state: LabState) -> None:
    """Stops the lab's etcd (SIGTERM); its data and address stay for start_etcd."""
    proc = etcd_process(state)
    if proc is None:
        raise LabError(f"lab {state.name} has no etcd of its own (it was made without "
                       "--identity-backend etcd, or with --etcd URL)")
    if not is_ours(proc):
        raise LabError(f"the etcd of lab {state.name} is not running")
    stop([proc])


def start_etcd(state: LabState) -> None:
    """An etcd on the underlay bridge (172.18.0.2), reachable from every node netns; the
    same data and address when it is started again."""
    url = f"http://{UNDERLAY_ETCD_IP}:{ETCD_PORT}"
    data = etcd_data(state)
    old = etcd_process(state)
    if old is not None:
        if is_ours(old):
            raise LabError(f"the etcd of lab {state.name} is already running")
        state.processes.remove(old)
    cmd = net_command(state.underlay_netns, [
        "etcd", "--name", f"mb-{state.name}", "--data-dir", str(data),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        "--listen-peer-urls", "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", f"mb-{state.name}=http://127.0.0.1:2380"])
    log = Path(state.root) / "etcd.log"
    proc = spawn(cmd, log)
    state.processes.append(Process(pid=proc.pid, marker=_etcd_marker(state)))
    state.etcd_url = url
    state.save()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        ok = subprocess.run(net_command(state.underlay_netns,
                                        ["curl", "-sf", "-m", "1", f"{url}/health"]),
                            capture_output=True)
        if ok.returncode == 0:
            return
        time.sleep(0.2)
    raise LabError(f"etcd for lab {state.name} did not come up; {log}:\n{tail(log)}")
