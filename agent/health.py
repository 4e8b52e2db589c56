"""Health: checks registered by the parts that own them, the bounded error history, and
/healthz + /readyz for the DaemonSet's probes.

Who registers what (each in its own constructor or start):
  liveness   "thread <name>"    agent.workers.Workers, for every thread it runs
  readiness  "synced"           agent.feed.SourceFeed: the source's initial list is in
  readiness  "policy written"   agent.regeneration.Regenerator: every endpoint's policy
                                is written at the applied revision

/healthz is 200 when every liveness check passes, /readyz when every readiness check
does. A check must be cheap and must not block: probes and `membrane status` run them
all on every request.

The error history keeps the last ERROR_HISTORY_SIZE things that went wrong (a
regeneration that failed, a map that was full, a thread that died), oldest first; what
is wrong *now* is the status's `problems`, computed afresh (agent.status).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from agent.api.status import CheckKind, CheckResult, Health

log = logging.getLogger(__name__)

Check = Callable[[], bool]

ERROR_HISTORY_SIZE = 20
HEALTH_ADDRESS = "0.0.0.0"   # kubelet probes the pod's IP (hostNetwork: the node's)


class HealthChecks:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: list[tuple[str, CheckKind, Check]] = []

    def add_liveness(self, name: str, check: Check) -> None:
        self._add(name, CheckKind.LIVENESS, check)

    def add_readiness(self, name: str, check: Check) -> None:
        self._add(name, CheckKind.READINESS, check)

    def _add(self, name: str, kind: CheckKind, check: Check) -> None:
        with self._lock:
            self._checks.append((name, kind, check))

    def report(self) -> Health:
        with self._lock:
            checks = list(self._checks)
        return Health(tuple(CheckResult(name, kind, _run(name, check))
                            for name, kind, check in checks))


def _run(name: str, check: Check) -> bool:
    try:
        return check()
    except Exception:  # a broken check fails, loudly, rather than break the probe
        log.exception("health check %r raised", name)
        return False


class ErrorHistory:
    """The last `size` errors, oldest first; a message repeating the newest is not kept
    twice (a failure retried every second stays one line)."""

    def __init__(self, size: int = ERROR_HISTORY_SIZE) -> None:
        self._lock = threading.Lock()
        self._errors: deque[str] = deque(maxlen=size)

    def record(self, message: str) -> bool:
        """Keeps message; False if it repeats the newest one (then nothing changes)."""
        with self._lock:
            if self._errors and self._errors[-1] == message:
                return False
            self._errors.append(message)
            return True

    def recent(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._errors)


def serve_health(checks: HealthChecks, port: int,
                 address: str = HEALTH_ADDRESS) -> ThreadingHTTPServer:
    """Serves /healthz and /readyz on its own thread; returns the server (shutdown() ends it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                ok = checks.report().live
            elif self.path == "/readyz":
                ok = checks.report().ready
            else:
                self.send_error(404)
                return
            body = b"ok\n" if ok else b"not ok\n"
            self.send_response(200 if ok else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
