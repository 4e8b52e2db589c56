"""The TCP listener speaks mutual TLS only: a client without a certificate is refused."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import grpc
import pytest

from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.ring import FlowObserver
from observe.tls import serve_tcp_with_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _pki(d: Path) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    for name, cn in (("server", "localhost"), ("client", "membrane-cli")):
        _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.csr"))
        _run("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "1", "-copy_extensions",
             "copy", "-out", str(d / f"{name}.pem"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_client_with_a_certificate_gets_status_and_one_without_is_refused(
        tmp_path: Path) -> None:
    _pki(tmp_path)
    port = _free_port()
    server = serve_tcp_with_tls(FlowObserver("node1"), f"127.0.0.1:{port}",
                                tmp_path / "server.pem", tmp_path / "server.key",
                                tmp_path / "ca.pem")
    ca = (tmp_path / "ca.pem").read_bytes()
    try:
        good = grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=(tmp_path / "client.key").read_bytes(),
            certificate_chain=(tmp_path / "client.pem").read_bytes())
        with grpc.secure_channel(f"localhost:{port}", good) as ch:
            st = opb_grpc.ObserverStub(ch).ServerStatus(opb.ServerStatusRequest(), timeout=5)
            assert st.num_connected_nodes.value == 1 and st.version
        anonymous = grpc.ssl_channel_credentials(root_certificates=ca)
        with grpc.secure_channel(f"localhost:{port}", anonymous) as ch:
            with pytest.raises(grpc.RpcError) as err:
                opb_grpc.ObserverStub(ch).ServerStatus(opb.ServerStatusRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
