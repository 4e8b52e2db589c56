"""`membrane ui`: serve the web page of the service map, the flows and the policy matrix.

Where the flows come from is `membrane observe`'s rule (cli.observe.observer_address):
`--server` (an agent or a relay), else `--lab NAME` (the lab's relay; with `--node`, that
node's agent). The policy matrix and the idle pods come from agents' API: `--agent`
(repeatable), else every node of `--lab`, else the `--server` address itself (a relay
has no agent API: the page then says to pass --agent). The page has no login: it
listens on 127.0.0.1 unless told otherwise, and says so when it is not loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from agent.api.client import lab_socket
from cli.command import Subparsers, add_command
from cli.connection import add_connection_flags
from cli.observe import observer_address
from core.errors import LabError, MembraneError
from lab.state import LabState
from ui.feed import DEFAULT_HISTORY, FlowFeed
from ui.policies import AgentsView
from ui.server import serve

DEFAULT_LISTEN = "127.0.0.1:12000"   # Hubble UI's port

EXAMPLES = """\
membrane ui --lab demo                  # then open http://127.0.0.1:12000
membrane ui --lab demo --listen 127.0.0.1:8080
membrane ui --server unix:///run/membrane/labs/demo/relay.sock --agent \\
    /run/membrane/labs/demo/nodes/node1/agent.sock
membrane ui --server /run/membrane/agent.sock
"""


def register(subparsers: Subparsers) -> None:
    p = add_command(subparsers, "ui",
                    help="a web page: service map, live flows, flow detail, policy matrix",
                    description="Serve a web page of the service map (workloads by "
                                "namespace, flows per verdict, drops marked), the flows "
                                "with observe's filters, each flow's detail and the policy "
                                "matrix of the policies in force; it updates live.",
                    examples=EXAMPLES)
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"where to serve the page (default {DEFAULT_LISTEN}; port 0 picks "
                        "a free one)")
    p.add_argument("--agent", action="append", metavar="ADDRESS",
                   help="an agent to read policies and pods from (repeatable; default: "
                        "every node of --lab, else --server)")
    p.add_argument("--history", type=int, default=DEFAULT_HISTORY, metavar="N",
                   help=f"flows to read back at start and keep (default {DEFAULT_HISTORY})")
    add_connection_flags(p)
    p.set_defaults(node=None, func=run_ui)   # --lab alone: the lab's relay (every node)


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise MembraneError(f"--listen {text!r}: write HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return host.strip("[]") or "127.0.0.1", int(port)


def agent_addresses(args: argparse.Namespace) -> list[str]:
    if args.agent:
        return list(args.agent)
    if args.lab and not args.server:
        if args.node:
            return [lab_socket(args.lab, args.node)]
        state = LabState.load(args.lab)
        if state is None:
            raise LabError(f"lab {args.lab} is not up (membrane lab up --name {args.lab})")
        return [lab_socket(args.lab, name) for name in sorted(state.nodes)]
    return [args.server] if args.server else []


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_ui(args: argparse.Namespace) -> int:
    host, port = parse_listen(args.listen)
    address = observer_address(args)
    agents = agent_addresses(args)
    if not _is_loopback(host):
        print(f"membrane ui: listening on {host}, beyond this machine: the page has no "
              "login, anyone who reaches it sees every flow", file=sys.stderr)

    def ready(bound_host: str, bound_port: int) -> None:
        print(f"membrane ui: serving http://{bound_host}:{bound_port}/ (flows from "
              f"{address}; policies from {', '.join(agents) or 'no agent'})", flush=True)

    serve(FlowFeed(address, history=args.history), AgentsView(agents), host, port, [ready])
    return 0
