"""Who the relay's nodes are, and when that changes.

A `PeerSource` runs `watch(changed, stop)`: it calls `changed(peers)` with the whole
current list whenever it differs from the last one (first call: the initial list), until
`stop` is set. Three sources:

    StaticPeers   a fixed list (`--peer NAME=ADDRESS`)
    SocketPeers   a directory with one subdirectory per node holding its agent's
                  Observer socket (a lab's nodes/<node>/agent.observer.sock, beside
                  agent.sock: observe.server.observer_socket), re-listed every second
    FilePeers     a JSON file re-read when it changes
    PeerService   an agent's Peer service (Hubble's peer.Peer/Notify): every agent knows
                  the cluster's nodes, so one address (a Service in front of the
                  DaemonSet) is enough; the stream is re-opened with backoff when it ends

Also here: the agent side of the Peer service (`PeerServicer`, `peer_methods` for
observe.h2server), over a function that lists the peers the agent knows.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc

from observe.gen.peer import peer_pb2 as ppb
from observe.gen.peer import peer_pb2_grpc as ppb_grpc
from observe.rpc import Call, Method, one_by_one
from observe.server import observer_socket

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
# A lab node's Observer socket, beside its agent.sock.
LAB_OBSERVER_SOCKET = Path(observer_socket("agent.sock")).name
RETRY_MAX_SECONDS = 10.0


@dataclass(frozen=True, order=True)
class Peer:
    name: str
    address: str              # "unix:///run/...sock" or "host:port" (TLS)
    tls_server_name: str = ""  # the name the peer's certificate carries, for TLS


Changed = Callable[[list[Peer]], None]


class PeerSource(Protocol):
    def watch(self, changed: Changed, stop: threading.Event) -> None: ...


def parse_peer(text: str) -> Peer:
    """"NAME=ADDRESS" (the --peer flag)."""
    name, sep, address = text.partition("=")
    if not sep or not name or not address:
        raise ValueError(f"peer {text!r}: use NAME=ADDRESS (node1=unix:///run/a.sock, "
                         "node2=10.0.0.2:4244)")
    return Peer(name.strip(), address.strip())


class StaticPeers:
    def __init__(self, peers: list[Peer]) -> None:
        self.peers = sorted(peers)

    def watch(self, changed: Changed, stop: threading.Event) -> None:
        changed(list(self.peers))


class SocketPeers:
    """Nodes as `root/<node>/<socket>`: a node is there while its socket is."""

    def __init__(self, root: str | Path, socket: str = LAB_OBSERVER_SOCKET,
                 poll_s: float = POLL_SECONDS) -> None:
        self.root = Path(root)
        self.socket = socket
        self.poll_s = poll_s

    def read(self) -> list[Peer]:
        try:
            dirs = sorted(p for p in self.root.iterdir() if (p / self.socket).exists())
        except OSError:
            return []
        return [Peer(d.name, f"unix://{(d / self.socket).resolve()}") for d in dirs]

    def watch(self, changed: Changed, stop: threading.Event) -> None:
        last: list[Peer] | None = None
        while not stop.is_set():
            peers = self.read()
            if peers != last:
                last = peers
                changed(list(peers))
            stop.wait(self.poll_s)


class FilePeers:
    """A JSON file: [{"name": ..., "address": ..., "tls_server_name": ...}, ...]. A
    missing or unreadable file is "no peers yet" (said once), never a crash."""

    def __init__(self, path: str | Path, poll_s: float = POLL_SECONDS) -> None:
        self.path = Path(path)
        self.poll_s = poll_s

    def read(self) -> list[Peer] | None:
        try:
            items = json.loads(self.path.read_text())
            return sorted(Peer(str(i["name"]), str(i["address"]),
                               str(i.get("tls_server_name", ""))) for i in items)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.debug("peers file %s: %s", self.path, err)
            return None

    def watch(self, changed: Changed, stop: threading.Event) -> None:
        last: list[Peer] | None = None
        warned = False
        while not stop.is_set():
            peers = self.read()
            if peers is None and not warned:
                log.warning("peers file %s cannot be read yet; waiting for it", self.path)
                warned = True
            if peers is not None and peers != last:
                last = peers
                changed(list(peers))
            stop.wait(self.poll_s)


class PeerService:
    """The agents' Peer service at `address`, through `channel_for(address, name)`;
    `server_name` is the name its certificate must carry when it is not the address's
    host (empty: the host)."""

    def __init__(self, address: str, channel_for: Callable[[str, str], grpc.Channel],
                 server_name: str = "") -> None:
        self.address = address
        self.channel_for = channel_for
        self.server_name = server_name

    def watch(self, changed: Changed, stop: threading.Event) -> None:
        delay = 0.5
        while not stop.is_set():
            known: dict[str, Peer] = {}
            channel = self.channel_for(self.address, self.server_name)
            call = ppb_grpc.PeerStub(channel).Notify(ppb.NotifyRequest())
            cancel = threading.Thread(target=lambda: (stop.wait(), call.cancel()),
                                      daemon=True)
            cancel.start()
            try:
                for note in call:
                    delay = 0.5
                    peer = Peer(note.name, note.address, note.tls.server_name)
                    if note.type == ppb.PEER_DELETED:
                        known.pop(note.name, None)
                    else:
                        known[note.name] = peer
                    changed(sorted(known.values()))
            except grpc.RpcError as err:
                if not stop.is_set():
                    log.warning("peer service %s: %s; retrying in %.1fs", self.address,
                                err.details(), delay)
            finally:
                channel.close()
            stop.wait(delay)
            delay = min(delay * 2, RETRY_MAX_SECONDS)


class PeerServicer:
    """The agent's side: every peer it knows first (PEER_ADDED), then each change
    (checked every `poll_s`), until the client leaves."""

    def __init__(self, peers: Callable[[], list[Peer]], poll_s: float = POLL_SECONDS) -> None:
        self.peers = peers
        self.poll_s = poll_s

    def Notify(self, request: ppb.NotifyRequest,
               call: Call) -> Iterator[ppb.ChangeNotification]:
        known: dict[str, Peer] = {}
        woke = threading.Event()
        call.on_done(woke.set)
        while call.active():
            now = {p.name: p for p in self.peers()}
            for name in sorted(known.keys() - now.keys()):
                yield _note(known.pop(name), ppb.PEER_DELETED)
            for name, peer in sorted(now.items()):
                if name not in known:
                    yield _note(peer, ppb.PEER_ADDED)
                elif known[name] != peer:
                    yield _note(peer, ppb.PEER_UPDATED)
                known[name] = peer
            woke.wait(self.poll_s)


def _note(peer: Peer, kind: ppb.ChangeNotificationType.ValueType) -> ppb.ChangeNotification:
    note = ppb.ChangeNotification(name=peer.name, address=peer.address, type=kind)
    if peer.tls_server_name:
        note.tls.server_name = peer.tls_server_name
    return note


def peer_methods(peers: Callable[[], list[Peer]], poll_s: float = POLL_SECONDS) -> list[Method]:
    """The Peer service (peer.Peer/Notify) for observe.h2server."""
    servicer = PeerServicer(peers, poll_s)
    return [Method("/peer.Peer/Notify", ppb.NotifyRequest.FromString,
                   stream=lambda request, call: one_by_one(servicer.Notify(request, call)))]
