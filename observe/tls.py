"""The Observer on TCP: only with mutual TLS.

Flows name every pod and who talks to whom, so the TCP listener is never plaintext and
never anonymous: it needs the server's certificate and key and a CA that signs the
clients' certificates, and it requires a client certificate on every connection.
Without all three it refuses to start and names what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent import futures
from pathlib import Path

import grpc

from core.errors import MembraneError
from observe.relay.peers import Peer, add_peer_to_server
from observe.ring import FlowObserver
from observe.server import add_observer_to_server


def _read(kind: str, path: str | Path | None, flag: str) -> bytes:
    if not path:
        raise MembraneError(
            f"observer TCP listener: no {kind} given ({flag}). A TCP listener needs TLS "
            "with client certificates (--tls-cert, --tls-key, --tls-client-ca); without "
            "them use the unix socket only.")
    p = Path(path)
    try:
        return p.read_bytes()
    except OSError as err:
        raise MembraneError(f"observer TCP listener: cannot read the {kind} {p}: "
                            f"{err.strerror or err}") from None


def server_credentials(cert: str | Path | None, key: str | Path | None,
                       client_ca: str | Path | None) -> grpc.ServerCredentials:
    cert_pem = _read("server certificate", cert, "--tls-cert")
    key_pem = _read("server key", key, "--tls-key")
    ca_pem = _read("client CA", client_ca, "--tls-client-ca")
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem,
                                       require_client_auth=True)


def tls_server_credentials(cert: str | Path | None, key: str | Path | None,
                           client_ca: str | Path | None) -> grpc.ServerCredentials:
    """TLS with the server's certificate and key; with a client CA, clients must show a
    certificate it signed (mutual TLS), without one any client may connect (the relay's
    listener in front of a port-forward)."""
    cert_pem = _read("server certificate", cert, "--tls-cert")
    key_pem = _read("server key", key, "--tls-key")
    if client_ca is None:
        return grpc.ssl_server_credentials([(key_pem, cert_pem)])
    ca_pem = _read("client CA", client_ca, "--tls-client-ca")
    return grpc.ssl_server_credentials([(key_pem, cert_pem)], root_certificates=ca_pem,
                                       require_client_auth=True)


def serve_tcp_with_tls(observer: FlowObserver, address: str, cert: str | Path | None,
                       key: str | Path | None, client_ca: str | Path | None,
                       max_workers: int = 16,
                       peers: Callable[[], list[Peer]] | None = None) -> grpc.Server:
    """Starts a gRPC server serving the Observer on `address` ("0.0.0.0:4245") with
    mutual TLS, and returns it (call .stop(grace) to end it). Raises MembraneError naming
    the missing or unreadable file before anything listens."""
    creds = server_credentials(cert, key, client_ca)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix="observer-tls"))
    add_observer_to_server(server, observer, address=address)
    if peers is not None:
        add_peer_to_server(server, peers)
    try:
        port = server.add_secure_port(address, creds)
    except RuntimeError as err:
        raise MembraneError(f"observer TCP listener: cannot listen on {address}: {err}") from None
    if port == 0:  # some grpc versions report a failed bind this way instead
        raise MembraneError(f"observer TCP listener: cannot listen on {address}")
    server.start()
    return server
