"""A real etcd on loopback for tests: Debian's /usr/bin/etcd (package etcd-server).

    with EtcdServer() as etcd:           # free ports, a temporary data dir, waits for health
        client = EtcdAllocator([etcd.endpoint], node="n1")
        etcd.stop(); ...; etcd.start()   # an outage: same ports, same data

    etcd = etcd_fixture(scope="module")  # in a test module: a pytest fixture

    EtcdServer(tls=PKI_DIR)              # https only, client certificates required: the
                                         # files of deploy/components/etcd/make-certs.sh
    etcd.enable_auth("membrane", pw, prefix)   # etcd users on, one user for the prefix

Only loopback addresses are used. Health is read on a metrics listener (plain HTTP on
loopback), which answers whatever the client port requires. Tests skip (not fail) when
etcd is not installed.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

ETCD_BINARY = os.environ.get("MEMBRANE_ETCD", "/usr/bin/etcd")
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One etcd member on loopback. `stop()` and `start()` keep ports and data: an outage."""

    def __init__(self, data_dir: Path | None = None, name: str = "membrane-test",
                 start_timeout: float = 20.0, tls: Path | None = None,
                 auth_token_ttl: int | None = None) -> None:
        self.name = name
        self.tls = tls
        self.auth_token_ttl = auth_token_ttl
        self.start_timeout = start_timeout
        self._own_dir = data_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="membrane-etcd-")) if data_dir is None \
            else data_dir
        self.data_dir = self.base_dir / "data"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.metrics_port = free_port()
        self.log_path = self.base_dir / "etcd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _command(self) -> list[str]:
        peer = f"http://{LOOPBACK}:{self.peer_port}"
        return [
            ETCD_BINARY,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.endpoint,
            "--advertise-client-urls", self.endpoint,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{self.name}={peer}",
            "--initial-cluster-state", "new",
            # Health (and metrics) on loopback plain HTTP, whatever the client port wants.
            "--listen-metrics-urls", f"http://{LOOPBACK}:{self.metrics_port}",
            "--log-level", "warn",
            *self._tls_options(),
            *([f"--auth-token-ttl={self.auth_token_ttl}"] if self.auth_token_ttl else []),
        ]

    def _tls_options(self) -> list[str]:
        if self.tls is None:
            return []
        return ["--cert-file", str(self.tls / "server.crt"),
                "--key-file", str(self.tls / "server.key"),
                "--trusted-ca-file", str(self.tls / "ca.crt"), "--client-cert-auth"]

    def start(self) -> "EtcdServer":
        if self.running:
            return self
        if not os.access(ETCD_BINARY, os.X_OK):
            raise FileNotFoundError(f"{ETCD_BINARY} not found: apt-get install etcd-server")
        log = open(self.log_path, "ab")
        try:
            self._process = subprocess.Popen(self._command(), stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            log.close()
        self.wait_healthy()
        return self

    def health(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{self.metrics_port}/health",
                                        timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self._process.returncode}: "
                                   f"{self.log_tail()}")
            if self.health():
                return
            time.sleep(0.05)
        raise TimeoutError(f"etcd at {self.endpoint} not healthy after {self.start_timeout}s: "
                           f"{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, kill: bool = False) -> None:
        """Stops etcd (SIGTERM, or SIGKILL as a crash would); data and ports are kept."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def enable_auth(self, user: str, password: str, prefix: str) -> None:
        """Turns etcd's users on (plain-HTTP servers only): root, and `user` allowed
        to read and write keys under prefix and nothing else."""
        import requests

        assert self.tls is None, "enable_auth talks plain HTTP"

        def b64(text: str) -> str:
            return base64.b64encode(text.encode()).decode()

        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("user/add", {"name": "root", "password": "root-" + password}),
            ("role/add", {"name": "root"}),
            ("user/grant", {"user": "root", "role": "root"}),
            ("role/add", {"name": "membrane-identities"}),
            ("role/grant", {"name": "membrane-identities",
                            "perm": {"permType": "READWRITE", "key": b64(prefix),
                                     "range_end": b64(end)}}),
            ("user/add", {"name": user, "password": password}),
            ("user/grant", {"user": user, "role": "membrane-identities"}),
            ("enable", {}),
        ]
        for path, body in steps:
            resp = requests.post(f"{self.endpoint}/v3/auth/{path}", json=body, timeout=5)
            resp.raise_for_status()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> "EtcdServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def etcd_fixture(scope: Any = "module") -> Callable[..., Any]:
    """A pytest fixture yielding a started EtcdServer; skips when etcd is not installed."""
    import pytest

    @pytest.fixture(scope=scope)
    def etcd() -> Iterator[EtcdServer]:
        if not os.access(ETCD_BINARY, os.X_OK):
            pytest.skip(f"{ETCD_BINARY} not installed (Debian package etcd-server)")
        with EtcdServer() as server:
            yield server

    return etcd
