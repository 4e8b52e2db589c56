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
from cli.daemon import config_from
from cli.main import build_parser
from core.errors import MembraneError
from observe.ring import FlowObserver
from observe.tls import serve_tcp_with_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


# (file name, CN, SAN): the server, an allowed client, a client allowed by a SAN only,
# and a client the same CA signed that is not on the allow-list.
CERTS = (("server", "localhost", "DNS:localhost,IP:127.0.0.1"),
         ("client", "membrane-cli", "DNS:localhost,IP:127.0.0.1"),
         ("relay", "some-relay-pod", "DNS:hubble-relay.kube-system.svc"),
         ("intruder", "intruder", "DNS:intruder.example"))


def _pki(d: Path) -> None:
    _run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    for name, cn, san in CERTS:
        _run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-addext", f"subjectAltName={san}",
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
                                tmp_path / "ca.pem", client_names=["membrane-cli"])
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


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _pki(d)
    return d


def _status_as(pki: Path, port: int, client: str) -> grpc.StatusCode:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / f"{client}.key").read_bytes(),
        certificate_chain=(pki / f"{client}.pem").read_bytes())
    with grpc.secure_channel(f"localhost:{port}", creds) as ch:
        stub = opb_grpc.ObserverStub(ch)
        try:
            stub.ServerStatus(opb.ServerStatusRequest(), timeout=5)
            list(stub.GetFlows(opb.GetFlowsRequest(), timeout=5))
        except grpc.RpcError as err:
            return err.code()   # type: ignore[no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.parametrize("allowed,expected", [
    (["membrane-cli"], {"client": "OK", "relay": "PERMISSION_DENIED",
                        "intruder": "PERMISSION_DENIED"}),
    (["membrane-cli", "hubble-relay.kube-system.svc"],
     {"client": "OK", "relay": "OK", "intruder": "PERMISSION_DENIED"}),
    (["*"], {"client": "OK", "relay": "OK", "intruder": "OK"}),
], ids=["a common name", "a subject alternative name", "every certificate of the CA"])
def test_only_client_certificates_on_the_allow_list_read_flows(
        pki: Path, allowed: list[str], expected: dict[str, str]) -> None:
    port = _free_port()
    server = serve_tcp_with_tls(FlowObserver("node1"), f"127.0.0.1:{port}",
                                pki / "server.pem", pki / "server.key", pki / "ca.pem",
                                client_names=allowed)
    try:
        assert {client: _status_as(pki, port, client).name for client in expected} == expected
    finally:
        server.stop(None)


def test_a_listener_without_an_allow_list_refuses_to_start(pki: Path) -> None:
    with pytest.raises(MembraneError, match="--tls-client-name"):
        serve_tcp_with_tls(FlowObserver("node1"), "127.0.0.1:0", pki / "server.pem",
                           pki / "server.key", pki / "ca.pem", client_names=[])


def test_the_denial_names_the_certificate_and_the_flag(pki: Path) -> None:
    port = _free_port()
    server = serve_tcp_with_tls(FlowObserver("node1"), f"127.0.0.1:{port}",
                                pki / "server.pem", pki / "server.key", pki / "ca.pem",
                                client_names=["membrane-cli"])
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "intruder.key").read_bytes(),
        certificate_chain=(pki / "intruder.pem").read_bytes())
    try:
        with grpc.secure_channel(f"localhost:{port}", creds) as ch:
            with pytest.raises(grpc.RpcError) as err:
                opb_grpc.ObserverStub(ch).ServerStatus(opb.ServerStatusRequest(), timeout=5)
        assert "intruder" in str(err.value.details())
        assert "--tls-client-name" in str(err.value.details())
    finally:
        server.stop(None)


def test_the_agent_flag_takes_repeated_and_comma_separated_names() -> None:
    args = build_parser().parse_args(
        ["agent", "--node", "n1", "--tls-client-name", "a, b", "--tls-client-name", "c",
         "--tls-client-name", ""])   # "" is an unset ConfigMap key
    assert config_from(args).tls_client_names == ("a", "b", "c")
