"""`lab probe`: real connections between every ordered pair of lab pods.

One helper per source pod (lab/probe_helper.py) runs inside the pod's netns; this side
starts them all, waits until every one listens, says "go" to all, and gathers their
results as `Verdict`s, the shape `policy matrix` computes, so the two compare directly.
One IP family per run (`family`, 4 or 6): every connection goes to the target pods'
addresses of that family, as `policy matrix --family` assumes.
"""

from __future__ import annotations

import json
import socket
import subprocess

from agent.policy.matrix import Verdict
from core.errors import LabError
from lab.processes import REPO_ROOT, child_env, python_in_pod
from lab.state import LabState


def _sctp_note(protocols: list[str]) -> str:
    if "SCTP" not in protocols:
        return ""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as err:
        return f" (and this kernel has no SCTP sockets: {err.strerror})"
    return ""


def run_probe(state: LabState, ports: list[int], protocols: list[str],
              timeout: float = 1.0, family: int = 4) -> list[Verdict]:
    """Verdicts for every ordered pair of distinct pods, sorted, over IPv<family>."""
    unsupported = sorted({p.upper() for p in protocols} - {"TCP", "UDP"})
    if unsupported:
        # SCTP is enforced by the datapath (and checked there with BPF test runs), but
        # a probe that cannot send it must not report "denied" for it either.
        raise LabError(f"lab probe: cannot probe {', '.join(unsupported)}: the lab sends "
                       f"TCP and UDP only{_sctp_note(unsupported)}")
    pods = sorted((p for p in state.pods.values() if p.netns), key=lambda p: p.key)
    missing = [p.key for p in pods if not p.address(family)]
    if missing:
        raise LabError(f"lab probe: no IPv{family} address for {', '.join(missing)} (a lab "
                       "made before labs were dual-stack? `lab down` and up again)")
    checks = [[port, proto.upper()] for proto in sorted(set(protocols))
              for port in sorted(set(ports))]
    helpers: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for pod in pods:
            config = {"checks": checks, "timeout": timeout,
                      "targets": [[t.key, t.address(family)] for t in pods if t.key != pod.key]}
            cmd = python_in_pod(pod.netns, "lab.probe_helper", ["--config", json.dumps(config)])
            helpers.append((pod.key, subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=child_env(), cwd=str(REPO_ROOT))))
        for key, proc in helpers:
            _expect(proc, key, "ready")
        # Every listener is up before anyone probes.
        for _, proc in helpers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        verdicts: list[Verdict] = []
        for key, proc in helpers:
            for dst, port, proto, ok in json.loads(_expect(proc, key, "[")):
                verdicts.append(Verdict(key, dst, proto, int(port), bool(ok)))
        return sorted(verdicts)
    finally:
        for _, proc in helpers:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        for _, proc in helpers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _expect(proc: subprocess.Popen[str], key: str, start: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(start):
        proc.kill()
        _, err = proc.communicate()
        raise LabError(f"the probe helper in pod {key} failed: {(line + err).strip()[-800:]}")
    return line
