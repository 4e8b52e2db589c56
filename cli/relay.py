"""`membrane relay`: Hubble's Observer API over every node (observe.relay).

Where the nodes come from, one of:

    --lab NAME              the lab's nodes (their agents' unix sockets); serves on the
                            lab's relay socket unless told otherwise
    --peer NAME=ADDRESS     a fixed list (repeat it)
    --peers-file FILE       a JSON list of {"name", "address", "tls_server_name"}
    --peer-service ADDRESS  the agents' Peer service (in a cluster: a Service in front
                            of the DaemonSet's TLS listeners)

Where it serves: `--unix-socket PATH` and/or `--listen-address HOST:PORT` (TLS with
--tls-cert/--tls-key; mutual with --tls-client-ca, to the certificate names
--tls-client-name allows, as the agents' listener does). To the agents over TCP it
speaks mutual TLS with --peer-tls-ca/--peer-tls-cert/--peer-tls-key.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from agent.api.client import LAB_ROOT
from cli.command import Subparsers, add_command
from core.errors import MembraneError
from lab.relay import relay_socket
from observe.h2server import H2GrpcServer
from observe.relay.peers import FilePeers, PeerService, PeerSource, SocketPeers, StaticPeers
from observe.relay.peers import parse_peer
from observe.relay.pool import ClientTLS, NodePool, channel_factory
from observe.relay.server import RelayServicer, relay_methods
from observe.tls import tls_context

log = logging.getLogger(__name__)

RELAY_PORT = 4245    # Hubble Relay's

EXAMPLES = """\
# a lab's relay (a lab starts one itself; this runs one by hand)
membrane relay --lab demo
membrane observe --server unix:///run/membrane/labs/demo/relay.sock --print-node-name
# in a cluster: find the agents through their Peer service, serve TLS on 4245
membrane relay --peer-service membrane-peer.kube-system.svc:443 --listen-address :4245 \\
    --tls-cert /tls/tls.crt --tls-key /tls/tls.key --tls-client-ca /tls/ca.crt \\
    --tls-client-name membrane-client --peer-tls-ca /tls/ca.crt \\
    --peer-tls-cert /tls/tls.crt --peer-tls-key /tls/tls.key
"""


def peer_source(args: argparse.Namespace) -> PeerSource:
    chosen = [name for name in ("lab", "peer", "peers_file", "peer_service")
              if getattr(args, name)]
    if len(chosen) != 1:
        raise MembraneError("relay: say where the nodes are with exactly one of --lab, "
                            "--peer, --peers-file, --peer-service")
    if args.lab:
        return SocketPeers(LAB_ROOT / args.lab / "nodes")
    if args.peer:
        try:
            return StaticPeers([parse_peer(p) for p in args.peer])
        except ValueError as err:
            raise MembraneError(str(err)) from None
    if args.peers_file:
        return FilePeers(args.peers_file)
    return PeerService(args.peer_service, channel_factory(_client_tls(args)),
                       args.peer_tls_server_name)


def _client_tls(args: argparse.Namespace) -> ClientTLS | None:
    if not args.peer_tls_ca:
        if args.peer_tls_cert or args.peer_tls_key:
            raise MembraneError("relay: --peer-tls-cert/--peer-tls-key need --peer-tls-ca")
        return None
    return ClientTLS(args.peer_tls_ca, args.peer_tls_cert, args.peer_tls_key)


def run_relay(args: argparse.Namespace) -> int:
    socket = args.unix_socket or (str(relay_socket(args.lab)) if args.lab else None)
    if not socket and not args.listen_address:
        raise MembraneError("relay: serve somewhere: --unix-socket PATH or "
                            f"--listen-address :{RELAY_PORT}")
    source = peer_source(args)
    client_tls = _client_tls(args)
    pool = NodePool(channel_factory(client_tls), client_tls)
    if args.tls_client_ca and not args.tls_client_name:
        raise MembraneError("relay: --tls-client-ca needs --tls-client-name: the client "
                            "certificate names (CN or SAN) that may read flows ('*': "
                            "every certificate the CA signed)")
    names = ([n.strip() for names in args.tls_client_name for n in names.split(",")
              if n.strip()] if args.tls_client_ca else None)
    server = H2GrpcServer(relay_methods(RelayServicer(pool, args.name, args.timeout)),
                          allowed_names=names, name="relay")
    server.start()
    try:
        if args.listen_address:
            context = tls_context(args.tls_cert, args.tls_key, args.tls_client_ca,
                                  require_client=False)
            try:
                server.add_tls(args.listen_address, context)
            except (OSError, ValueError) as err:
                raise MembraneError(f"relay: cannot listen on {args.listen_address}: "
                                    f"{err}") from None
        if socket:
            Path(socket).parent.mkdir(parents=True, exist_ok=True)
            if os.path.exists(socket):
                os.unlink(socket)    # a previous relay's
            server.add_unix(socket)  # 0600: flows name every pod
    except BaseException:
        server.stop()
        raise
    stop = threading.Event()
    threading.Thread(target=source.watch, args=(pool.update, stop), daemon=True,
                     name="relay-peers").start()
    log.info("relay serving on %s", ", ".join(filter(None, (socket, args.listen_address))))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop(grace=0.5)
        pool.close()
        if socket and os.path.exists(socket):
            os.unlink(socket)
    return 0


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "relay",
                    help="serve every node's flows through one Observer API (Hubble Relay)",
                    examples=EXAMPLES)
    nodes = p.add_argument_group("nodes (exactly one)")
    nodes.add_argument("--lab", metavar="NAME", help="a lab's nodes")
    nodes.add_argument("--peer", metavar="NAME=ADDRESS", action="append",
                       help="a node's Observer address (repeat)")
    nodes.add_argument("--peers-file", metavar="FILE", help="a JSON list of peers")
    nodes.add_argument("--peer-service", metavar="ADDRESS",
                       help="the agents' Peer service, host:port over TLS")
    serve = p.add_argument_group("serving")
    serve.add_argument("--unix-socket", metavar="PATH",
                       help="serve on this unix socket (--lab: the lab's relay.sock)")
    serve.add_argument("--listen-address", metavar="HOST:PORT",
                       help=f"serve on TCP with TLS (Hubble Relay's port: {RELAY_PORT})")
    serve.add_argument("--tls-cert", metavar="FILE", help="the relay's certificate")
    serve.add_argument("--tls-key", metavar="FILE", help="the relay's key")
    serve.add_argument("--tls-client-ca", metavar="FILE",
                       help="require client certificates signed by this CA")
    serve.add_argument("--tls-client-name", metavar="NAME[,NAME]", action="append",
                       default=[], help="a client certificate CN or SAN that may read "
                                        "flows (with --tls-client-ca; '*': any)")
    peers = p.add_argument_group("TLS to the agents")
    peers.add_argument("--peer-tls-ca", metavar="FILE", help="CA of the agents' certificates")
    peers.add_argument("--peer-tls-cert", metavar="FILE", help="the relay's client certificate")
    peers.add_argument("--peer-tls-key", metavar="FILE", help="its key")
    peers.add_argument("--peer-tls-server-name", metavar="NAME", default="",
                       help="the name in the Peer service's certificate, when not its host")
    p.add_argument("--name", default="relay", help="the node name in the relay's own events")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                   help="how long a node may take to answer (default 5)")
    p.set_defaults(func=run_relay)
