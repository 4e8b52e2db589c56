"""The processes a lab starts: detached, waited for until they say "ready", and stopped
by pid only while their command line still carries the marker recorded with them.

Namespaces and wires are lab/netbuilder.py's; this module only starts processes in them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Sequence

from core.errors import LabError
from lab.netbuilder import pod_command
from lab.state import Process

REPO_ROOT = Path(__file__).resolve().parents[1]


def python_in_pod(netns: str, module: str, args: Sequence[str]) -> list[str]:
    """The command line running `python -m module` as a process of the pod whose
    namespace is `netns`, so /etc/netns/<netns>/resolv.conf applies to it."""
    return pod_command(netns, [sys.executable, "-m", module, *args])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"]
                                          if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(cmd: Sequence[str], log: Path, stdout: int | IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """Starts a detached process (own session: a Ctrl-C on the CLI does not reach it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL,
                                stdout=stdout if stdout is not None else out, stderr=out,
                                start_new_session=True, env=child_env(), cwd=str(REPO_ROOT))


def wait_ready(proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 15.0) -> None:
    """Waits for the "ready" line a lab program prints once it listens."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    os.set_blocking(proc.stdout.fileno(), False)
    buf = b""
    while time.monotonic() < deadline:
        chunk = proc.stdout.read()
        if chunk:
            buf += chunk
            if b"ready" in buf:
                proc.stdout.close()
                return
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    proc.stdout.close()
    raise LabError(f"{what} did not start (exit code {proc.poll()}); see {log}:\n"
                   + tail(log))


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_ours(proc: Process) -> bool:
    return proc.marker in cmdline(proc.pid)


def stop(procs: Sequence[Process], grace: float = 10.0,
         first: signal.Signals = signal.SIGTERM) -> None:
    """`first` (SIGTERM; SIGKILL for a crash) to each process that still runs what we
    started, then SIGKILL to stragglers after grace seconds."""
    live = [p for p in procs if is_ours(p)]
    for p in live:
        _signal(p.pid, first)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        _reap(live)
        live = [p for p in live if is_ours(p) and not _zombie(p.pid)]
        if live:
            time.sleep(0.05)
    for p in live:
        _signal(p.pid, signal.SIGKILL)
    _reap(live)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _reap(procs: Sequence[Process]) -> None:
    # Children of this very process (started by the same CLI run) must be waited for.
    for p in procs:
        try:
            os.waitpid(p.pid, os.WNOHANG)
        except ChildProcessError:
            pass
