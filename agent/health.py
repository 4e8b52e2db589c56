"""/healthz and /readyz for the DaemonSet's probes (loopback HTTP, no payload secrets)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.daemon import Agent


def serve_health(agent: "Agent", port: int, address: str = "0.0.0.0") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/healthz":
                ok = not any(e.startswith("thread") for e in agent.errors)
            elif self.path == "/readyz":
                ok = agent.snapshot.synced and agent.applied_revision >= 0
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
