"""The Observer on TCP: only with mutual TLS, only for the clients it names.

Flows name every pod and who talks to whom, so the TCP listener is never plaintext and
never anonymous: it needs the server's certificate and key and a CA that signs the
clients' certificates, and it requires a client certificate on every connection.
Without all three it refuses to start and names what is missing.

A client CA often signs more than the flow readers (every component of a cluster), so
a certificate must also carry an allowed name: its subject CN or one of its subject
alternative names equal to one of `client_names` (`--tls-client-name`). Any other
certificate gets PERMISSION_DENIED on every call (observe.h2server checks each call). The
listener refuses to start with no name; "*" explicitly allows every certificate the
client CA signed.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from core.errors import MembraneError
from observe.h2server import H2GrpcServer
from observe.relay.peers import Peer, peer_methods
from observe.ring import FlowObserver
from observe.server import observer_methods


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


def tls_context(cert: str | Path | None, key: str | Path | None,
                client_ca: str | Path | None, require_client: bool = True) -> ssl.SSLContext:
    """A server's TLS: its certificate and key, ALPN h2 (gRPC), and with a client CA,
    clients must show a certificate it signed (mutual TLS). Without a client CA any
    client may connect (only `require_client=False` allows that: the relay's listener
    in front of a port-forward). MembraneError names a missing or unreadable file."""
    # Every file present and readable first, or said by name, before anything loads.
    _read("server certificate", cert, "--tls-cert")
    _read("server key", key, "--tls-key")
    mutual = client_ca is not None or require_client
    ca_pem = _read("client CA", client_ca, "--tls-client-ca") if mutual else b""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    try:
        context.load_cert_chain(str(cert), str(key))
        if mutual:
            context.load_verify_locations(cadata=ca_pem.decode(errors="replace"))
    except (ssl.SSLError, ValueError) as err:
        raise MembraneError(f"TLS: the certificate {cert}, key {key} or client CA "
                            f"{client_ca} do not load: {err}") from None
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


ANY_CLIENT = "*"


def client_name_list(client_names: Sequence[str]) -> list[str]:
    """The allow-list, or MembraneError when there is none (a TCP listener needs one)."""
    if not client_names:
        raise MembraneError(
            "observer TCP listener: no --tls-client-name given. Name the client "
            "certificates (subject CN or SAN) that may read flows; "
            f"--tls-client-name '{ANY_CLIENT}' allows every certificate the client CA "
            "signed.")
    return list(client_names)


def serve_tcp_with_tls(observer: FlowObserver, address: str, cert: str | Path | None,
                       key: str | Path | None, client_ca: str | Path | None,
                       client_names: Sequence[str] = (),
                       peers: Callable[[], list[Peer]] | None = None) -> H2GrpcServer:
    """Starts a server of the Observer (and the Peer service, given `peers`) on
    `address` ("0.0.0.0:4245") with mutual TLS to the clients `client_names` allows,
    and returns it (call .stop(grace) to end it). Raises MembraneError naming the
    missing or unreadable file, or the missing allow-list, before anything listens."""
    context = tls_context(cert, key, client_ca)
    names = client_name_list(client_names)
    methods = observer_methods(observer, address=address)
    if peers is not None:
        methods += peer_methods(peers)
    server = H2GrpcServer(methods, allowed_names=names, name="observer-tls")
    server.start()
    try:
        server.add_tls(address, context)
    except (OSError, ValueError) as err:
        server.stop()
        raise MembraneError(f"observer TCP listener: cannot listen on {address}: {err}"
                            ) from None
    return server
