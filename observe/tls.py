"""The Observer on TCP: only with mutual TLS, only for the clients it names.

Flows name every pod and who talks to whom, so the TCP listener is never plaintext and
never anonymous: it needs the server's certificate and key and a CA that signs the
clients' certificates, and it requires a client certificate on every connection.
Without all three it refuses to start and names what is missing.

A client CA often signs more than the flow readers (every component of a cluster), so
a certificate must also carry an allowed name: its subject CN or one of its subject
alternative names equal to one of `client_names` (`--tls-client-name`). Any other
certificate gets PERMISSION_DENIED on every call. The listener refuses to start with no
name; "*" explicitly allows every certificate the client CA signed.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path
from typing import Any, Callable, Sequence

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


ANY_CLIENT = "*"
# Where gRPC's auth context carries the peer certificate's names.
_NAME_PROPERTIES = ("x509_common_name", "x509_subject_alternative_name")


class ClientNameCheck(grpc.ServerInterceptor):
    """Lets a call through only when the peer's certificate carries an allowed name."""

    def __init__(self, allowed: Sequence[str]) -> None:
        self.allowed = frozenset(allowed)

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Any],
                          handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or ANY_CLIENT in self.allowed:
            return handler
        # One wrapper for every kind of call: the check runs before the method does.
        kinds = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(**{kind: self._guard(getattr(handler, kind))
                                   for kind in kinds if getattr(handler, kind) is not None})

    def _guard(self, behavior: Callable[[Any, grpc.ServicerContext], Any]
               ) -> Callable[[Any, grpc.ServicerContext], Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            names = peer_names(context)
            if not names & self.allowed:
                shown = ", ".join(sorted(names)) or "no name"
                context.abort(grpc.StatusCode.PERMISSION_DENIED,
                              f"client certificate ({shown}) may not read flows: the "
                              "agent's --tls-client-name does not list it")
            return behavior(request, context)
        return guarded


def peer_names(context: grpc.ServicerContext) -> set[str]:
    """The subject CN and subject alternative names of the peer's certificate."""
    auth = context.auth_context()
    names: set[str] = set()
    for prop in _NAME_PROPERTIES:
        # grpcio gives a list of bytes per property (its stubs say bytes).
        raw: object = auth.get(prop)
        values = raw if isinstance(raw, (list, tuple)) else [raw]
        names |= {v.decode(errors="replace") for v in values if isinstance(v, bytes)}
    return names


def serve_tcp_with_tls(observer: FlowObserver, address: str, cert: str | Path | None,
                       key: str | Path | None, client_ca: str | Path | None,
                       client_names: Sequence[str] = (), max_workers: int = 16,
                       peers: Callable[[], list[Peer]] | None = None) -> grpc.Server:
    """Starts a gRPC server serving the Observer on `address` ("0.0.0.0:4245") with
    mutual TLS to the clients `client_names` allows, and returns it (call .stop(grace)
    to end it). Raises MembraneError naming the missing or unreadable file, or the
    missing allow-list, before anything listens."""
    creds = server_credentials(cert, key, client_ca)
    if not client_names:
        raise MembraneError(
            "observer TCP listener: no --tls-client-name given. Name the client "
            "certificates (subject CN or SAN) that may read flows; "
            f"--tls-client-name '{ANY_CLIENT}' allows every certificate the client CA "
            "signed.")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers,
                                                    thread_name_prefix="observer-tls"),
                         interceptors=[ClientNameCheck(client_names)])
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
