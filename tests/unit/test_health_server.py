"""The /healthz + /readyz server: on loopback unless told otherwise, a bounded number of
connections served at once (300 idle connections do not make 300 threads), and every
connection given a deadline for its request, so neither idle nor trickling clients can
keep a thread."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Iterator

import pytest

from agent.health import HealthChecks, serve_health


def get(port: int, path: str = "/healthz") -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as err:
        return err.code


def checks() -> HealthChecks:
    health = HealthChecks()
    health.add_liveness("fine", lambda: True)
    return health


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def connect_later(port: int) -> socket.socket:
    """A connection attempt that does not wait for the server's accept queue."""
    sock = socket.socket()
    sock.setblocking(False)
    sock.connect_ex(("127.0.0.1", port))
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        sock.recv(1024)   # EOF (or the start of an error reply): the server is done
        return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_the_server_listens_on_loopback_by_default() -> None:
    server = serve_health(checks(), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert get(server.server_address[1]) == 200
    finally:
        server.shutdown()


@pytest.fixture
def small() -> Iterator[int]:
    server = serve_health(checks(), 0, max_connections=4, request_timeout=1.0)
    yield server.server_address[1]
    server.shutdown()


def test_300_idle_connections_do_not_make_300_threads(small: int) -> None:
    before = threading.active_count()
    idle = [connect_later(small) for _ in range(300)]
    try:
        time.sleep(0.8)
        assert threading.active_count() - before <= 4
    finally:
        for sock in idle:
            sock.close()
    time.sleep(1.5)   # the served ones reach their deadline
    assert get(small) == 200


def test_an_idle_connection_is_closed_at_its_deadline(small: int) -> None:
    with connect(small) as sock:
        started = time.monotonic()
        assert closed_by_server(sock, within=3)
        assert time.monotonic() - started < 2.5


def test_a_trickling_request_is_cut_at_its_deadline(small: int) -> None:
    # One byte every 0.3 s: each read is quick, the request never completes.
    with connect(small) as sock:
        started = time.monotonic()
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X: " + b"a" * 100
        cut = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut = True
                break
            time.sleep(0.3)
            if time.monotonic() - started > 4:
                break
        assert cut or closed_by_server(sock, within=0.5)
        assert time.monotonic() - started < 3


def test_a_connection_over_the_limit_is_closed_at_once_without_a_thread(small: int) -> None:
    idle = [connect(small) for _ in range(4)]
    time.sleep(0.1)
    extra = connect(small)
    try:
        assert closed_by_server(extra, within=0.5)   # the served ones wait 1 s
    finally:
        extra.close()
        for sock in idle:
            sock.close()
