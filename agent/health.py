"""Health: checks registered by the parts that own them, the bounded error history, and
/healthz + /readyz for the DaemonSet's probes.

Who registers what (each in its own constructor or start):
  liveness   "thread <name>"    agent.workers.Workers, for every thread it runs
  readiness  "synced"           agent.feed.SourceFeed: the source's initial list is in
  readiness  "policy written"   agent.regeneration.Regenerator: every endpoint's policy
                                is written at the applied revision

/healthz is 200 when every liveness check passes, /readyz when every readiness check
does. A check must be cheap and must not block: probes and `membrane status` run them
all on every request. The server listens on loopback unless told otherwise, serves at
most MAX_CONNECTIONS at once (more are closed at once, never queued on a thread) and
cuts a connection that has not been answered REQUEST_TIMEOUT seconds after accept.

The error history keeps the last ERROR_HISTORY_SIZE things that went wrong (a
regeneration that failed, a map that was full, a thread that died), oldest first; what
is wrong *now* is the status's `problems`, computed afresh (agent.status).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from agent.api.status import CheckKind, CheckResult, Health

log = logging.getLogger(__name__)

Check = Callable[[], bool]

ERROR_HISTORY_SIZE = 20
# Loopback: the DaemonSet's probes ask 127.0.0.1 (the agent is hostNetwork, and the
# kubelet probes from the node), so nothing off the node reaches the server.
HEALTH_ADDRESS = "127.0.0.1"
MAX_CONNECTIONS = 8       # served at once; the kubelet makes one per probe
REQUEST_TIMEOUT = 5.0     # seconds from accept to the reply (the probes' timeoutSeconds)
REAP_INTERVAL = 0.25      # how often connections past their deadline are cut


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


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a ceiling on connections served at once and a deadline
    per connection. A connection over the ceiling is closed at once (no thread); one
    that has not sent its request by its deadline (idle, or trickling a byte at a time)
    is shut down by one reaper thread, which ends its handler thread."""

    daemon_threads = True
    request_queue_size = 64   # the kernel's accept queue: a burst waits there, threadless

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int, request_timeout: float) -> None:
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._deadlines: dict[socket.socket, float] = {}
        self._deadlines_lock = threading.Lock()
        self._closed = threading.Event()
        super().__init__(address, handler)
        threading.Thread(target=self._reap, name="health-reaper", daemon=True).start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)   # over the ceiling: closed, no thread
            return
        with self._deadlines_lock:
            self._deadlines[request] = time.monotonic() + self.request_timeout
        try:
            super().process_request(request, client_address)   # a thread of its own
        except BaseException:
            self._forget(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._forget(request)

    def _forget(self, request: socket.socket) -> None:
        with self._deadlines_lock:
            self._deadlines.pop(request, None)
        self._slots.release()

    def _reap(self) -> None:
        while not self._closed.wait(REAP_INTERVAL):
            now = time.monotonic()
            with self._deadlines_lock:
                late = [sock for sock, deadline in self._deadlines.items() if deadline < now]
            for sock in late:
                try:
                    sock.shutdown(socket.SHUT_RDWR)   # its handler's read returns at once
                except OSError:
                    pass   # already closed by its handler

    def shutdown(self) -> None:
        """Stops serving, the reaper, and closes the listening socket."""
        super().shutdown()
        self._closed.set()
        self.server_close()


def serve_health(checks: HealthChecks, port: int, address: str = HEALTH_ADDRESS,
                 max_connections: int = MAX_CONNECTIONS,
                 request_timeout: float = REQUEST_TIMEOUT) -> BoundedHTTPServer:
    """Serves /healthz and /readyz on its own thread; returns the server (shutdown() ends
    it). At most `max_connections` are served at once; each gets `request_timeout`
    seconds from accept to the end of its reply."""

    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout   # per read: an idle connection ends even unreaped

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

    server = BoundedHTTPServer((address, port), Handler, max_connections, request_timeout)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
