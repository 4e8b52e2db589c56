"""The relay's nodes: one gRPC channel each, and what the relay last learned of each.

`NodePool.update(peers)` is the discovery callback (observe.relay.peers): new peers get
a channel, peers that left are marked NODE_GONE (and remembered for a while, so GetNodes
and followers can say so), a changed address gets a new channel. Requests mark nodes
NODE_CONNECTED, NODE_UNAVAILABLE or NODE_ERROR with a message; followers watch
`version` to notice nodes coming and going.

Channels: a unix socket is dialled as is (a lab's agents); host:port with TLS, and with
a client certificate when the relay has one (the agents' TCP listeners require mutual
TLS, observe.tls). The channels carry the unary calls; followed GetFlows streams are
read with observe.relay.h2client, over the same addresses and TLS.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import grpc

from core.errors import MembraneError
from observe.gen.relay import relay_pb2 as rpb
from observe.relay.peers import Peer

GONE_KEPT_SECONDS = 300.0
State: TypeAlias = rpb.NodeState.ValueType


@dataclass(frozen=True)
class ClientTLS:
    """The relay's side of TLS to the agents: the CA that signed their certificates,
    and its own certificate and key (their listeners require one)."""

    ca: str
    cert: str | None = None
    key: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None, what: str) -> bytes | None:
            if path is None:
                return None
            try:
                return Path(path).read_bytes()
            except OSError as err:
                raise MembraneError(f"relay: cannot read the {what} {path}: "
                                    f"{err.strerror or err}") from None
        return grpc.ssl_channel_credentials(root_certificates=read(self.ca, "peer CA"),
                                            private_key=read(self.key, "client key"),
                                            certificate_chain=read(self.cert,
                                                                   "client certificate"))

    def context(self) -> ssl.SSLContext:
        """The same for the relay's own GetFlows reader (observe.relay.h2client)."""
        try:
            context = ssl.create_default_context(cafile=self.ca)
            if self.cert is not None:
                context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as err:
            raise MembraneError(f"relay: cannot load the peer TLS files ({self.ca}, "
                                f"{self.cert}, {self.key}): {err}") from None
        context.set_alpn_protocols(["h2"])
        return context


def channel_factory(tls: ClientTLS | None) -> Callable[[str, str], grpc.Channel]:
    """(address, TLS server name) -> channel: unix sockets plain, host:port over TLS."""
    creds = tls.credentials() if tls is not None else None

    def channel_for(address: str, server_name: str) -> grpc.Channel:
        if address.startswith("unix:") or address.startswith("/"):
            target = address if address.startswith("unix:") else "unix:" + address
            return grpc.insecure_channel(target)
        if creds is None:
            raise MembraneError(f"relay: {address} needs TLS, and the relay has no peer CA "
                                "(--peer-tls-ca)")
        options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
        return grpc.secure_channel(address, creds, options=options)
    return channel_for


@dataclass
class Node:
    peer: Peer
    channel: grpc.Channel
    state: State = rpb.UNKNOWN_NODE_STATE
    message: str = ""
    since: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return self.peer.name


class NodePool:
    """`tls`: what the relay's GetFlows readers dial agents' TCP listeners with (the
    channels' credentials come with `channel_for`)."""

    def __init__(self, channel_for: Callable[[str, str], grpc.Channel],
                 tls: ClientTLS | None = None) -> None:
        self._channel_for = channel_for
        self.tls_context = tls.context() if tls is not None else None
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self._gone: dict[str, Node] = {}
        self.version = 0          # bumped whenever nodes come or go

    def update(self, peers: list[Peer]) -> None:
        wanted = {p.name: p for p in peers}
        with self._lock:
            for name in list(self._nodes):
                node = self._nodes[name]
                if name not in wanted or wanted[name] != node.peer:
                    del self._nodes[name]
                    node.channel.close()
                    node.state, node.message = rpb.NODE_GONE, "left the cluster"
                    node.since = time.monotonic()
                    if name not in wanted:
                        self._gone[name] = node
            for name, peer in wanted.items():
                if name not in self._nodes:
                    self._gone.pop(name, None)
                    self._nodes[name] = Node(peer, self._channel_for(peer.address,
                                                                     peer.tls_server_name))
            self.version += 1

    def nodes(self) -> list[Node]:
        with self._lock:
            return [self._nodes[n] for n in sorted(self._nodes)]

    def gone(self) -> list[Node]:
        """Nodes that left in the last GONE_KEPT_SECONDS."""
        now = time.monotonic()
        with self._lock:
            for name in [n for n, node in self._gone.items()
                         if now - node.since > GONE_KEPT_SECONDS]:
                del self._gone[name]
            return [self._gone[n] for n in sorted(self._gone)]

    def mark(self, node: Node, state: State, message: str = "") -> None:
        with self._lock:
            if node.state != state:
                node.since = time.monotonic()
            node.state, node.message = state, message

    def close(self) -> None:
        with self._lock:
            for node in self._nodes.values():
                node.channel.close()
            self._nodes.clear()
