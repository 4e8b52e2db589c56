"""API serving: the Agent gRPC service (grpcio) on the agent's unix socket, the Observer
and Peer services (observe.h2server) on the Observer's socket beside it
(observe.server.observer_socket: agent.sock -> agent.observer.sock, as Cilium keeps
hubble.sock beside cilium.sock), both mode 0600, root's only; and the Observer alone on
TCP when asked, with mutual TLS only, to the client certificates it names (observe.tls).

The socket's directory also gets `<socket>.pid`, which lets tools find this agent; all
three files are removed at stop. The TCP listener refuses to start without its certificate,
key and client CA: flows are never served in plaintext or to anonymous clients.
"""

from __future__ import annotations

import os
import sys
from concurrent import futures
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from agent.api.gen import agent_pb2_grpc
from agent.api.server import AgentServicer
from agent.config import AgentConfig
from agent.store import Store
from core.addresses import join_host_port
from observe.h2server import SWITCH_INTERVAL_SECONDS, H2GrpcServer
from observe.relay.peers import Peer, peer_methods
from observe.ring import FlowObserver
from observe.server import observer_methods, observer_socket, serve_unix
from observe.tls import serve_tcp_with_tls

MAX_WORKERS = 64   # agent API calls served at once
STOP_GRACE = 0.5   # seconds in-flight RPCs get at stop


@dataclass(frozen=True)
class TlsListener:
    address: str           # "0.0.0.0:4245"
    cert: str | None
    key: str | None
    client_ca: str | None
    client_names: tuple[str, ...] = ()   # certificate CN/SAN that may read flows


class ApiServer:
    def __init__(self, socket_path: str, servicer: AgentServicer, observer: FlowObserver,
                 tls: TlsListener | None = None,
                 peers: Callable[[], list[Peer]] | None = None) -> None:
        self.socket_path = socket_path
        self._servicer = servicer
        self._observer = observer
        self._tls = tls
        self._peers = peers
        self.observer_socket = observer_socket(socket_path)
        self._server: grpc.Server | None = None
        self._observer_server: H2GrpcServer | None = None
        self._tls_server: H2GrpcServer | None = None

    def start(self) -> None:
        # Followers, the event reader and the Observer's loop share the GIL: hand it
        # over often (observe.h2server.SWITCH_INTERVAL_SECONDS says why).
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        if self._tls is not None:
            # First: a refused TLS setup stops the start before the socket appears.
            self._tls_server = serve_tcp_with_tls(self._observer, self._tls.address,
                                                  self._tls.cert, self._tls.key,
                                                  self._tls.client_ca,
                                                  self._tls.client_names,
                                                  peers=self._peers)
        path = self.socket_path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of a previous run
        methods = observer_methods(self._observer, address="unix:" + self.observer_socket)
        if self._peers is not None:
            methods += peer_methods(self._peers)
        self._observer_server = serve_unix(methods, self.observer_socket)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=MAX_WORKERS))
        agent_pb2_grpc.add_AgentServicer_to_server(self._servicer, server)
        old_umask = os.umask(0o177)  # the socket is root's only: 0600
        try:
            server.add_insecure_port("unix:" + path)
            server.start()
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        Path(path + ".pid").write_text(f"{os.getpid()}\n")  # lets tools find this agent
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=STOP_GRACE).wait()
        for observer_server in (self._observer_server, self._tls_server):
            if observer_server is not None:
                observer_server.stop(grace=STOP_GRACE).wait()
        self._server = self._observer_server = self._tls_server = None
        for leftover in (self.socket_path, self.socket_path + ".pid", self.observer_socket):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass


def node_peers(store: Store, config: AgentConfig) -> list[Peer]:
    """Every node's Observer as the Peer service tells relays: its IP and this agent's
    TLS port (every agent of a DaemonSet listens alike). None without a TCP listener:
    a unix socket is no address for another node."""
    if not config.observer_listen:
        return []
    port = config.observer_listen.rpartition(":")[2]
    return [Peer(node.name, join_host_port(node.addresses[0], port), config.tls_server_name)
            for node in sorted(store.snapshot().objects.nodes.values(), key=lambda n: n.name)
            if node.addresses]
