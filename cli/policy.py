"""`membrane policy matrix|trace|get`: thin wiring over agent.policy and the agent API."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from agent.api.client import DEFAULT_SOCKET, AgentClient
from agent.k8s.loader import load_paths
from agent.k8s.objects import ClusterObjects
from agent.policy.matrix import reachability, to_json, to_table
from agent.policy.trace import trace

PROTOCOLS = ("TCP", "UDP", "SCTP")

MATRIX_EXAMPLES = """\
examples:
  membrane policy matrix -f demo/tutorial
  membrane policy matrix -f app.yaml -f policies/ --port 80 --port 8080 -o json
  membrane policy matrix -f demo/tutorial --port 53 --protocol UDP
"""

TRACE_EXAMPLES = """\
examples:
  membrane policy trace -f demo/tutorial --from default/frontend --to default/backend --port 8080
  membrane policy trace --lab demo --from default/frontend --to kube-system/coredns \\
      --port 53 --protocol UDP
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = subparsers.add_parser("policy", help="what NetworkPolicy allows, and why")
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND")
    policy.set_defaults(func=lambda args: _help(policy))

    matrix = sub.add_parser(
        "matrix", help="reachability between every pair of pods in manifests",
        epilog=MATRIX_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_files(matrix, required=True)
    matrix.add_argument("--port", type=_port, action="append", metavar="N",
                        help="destination port (repeatable; default 80)")
    matrix.add_argument("--protocol", type=_protocol, action="append", choices=PROTOCOLS,
                        help="protocol (repeatable; default TCP)")
    matrix.add_argument("-o", "--output", choices=("table", "json"), default="table")
    matrix.set_defaults(func=run_matrix)

    tr = sub.add_parser(
        "trace", help="explain the verdict for one connection, egress and ingress side",
        epilog=TRACE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_files(tr, required=False)
    tr.add_argument("--from", dest="src", required=True, metavar="NS/POD")
    tr.add_argument("--to", dest="dst", required=True, metavar="NS/POD")
    tr.add_argument("--port", type=_port, default=80, metavar="N")
    tr.add_argument("--protocol", type=_protocol, choices=PROTOCOLS, default="TCP")
    _add_server(tr)
    tr.set_defaults(func=run_trace)

    get = sub.add_parser("get", help="the policies the running agent enforces")
    _add_server(get)
    get.set_defaults(func=run_get)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _add_files(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="append", required=required,
                        metavar="PATH", help="manifest file or directory (repeatable)")


def _add_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=DEFAULT_SOCKET, metavar="ADDRESS",
                        help=f"agent API socket (default {DEFAULT_SOCKET})")
    parser.add_argument("--lab", metavar="NAME", help="talk to the agent of this lab")
    parser.add_argument("--node", default="node1", metavar="N", help="lab node (default node1)")


def _port(text: str) -> int:
    number = int(text)
    if not 0 < number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number}: must be 1-65535")
    return number


def _protocol(text: str) -> str:
    return text.upper()


def _load(files: Sequence[str]) -> ClusterObjects:
    """Objects from the files; rejected objects are reported and the rest still used."""
    objects, errors = load_paths(files)
    for err in errors:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
    return objects


def _client(args: argparse.Namespace) -> AgentClient:
    if args.lab:
        return AgentClient.for_lab(args.lab, args.node)
    return AgentClient(args.server)


def run_matrix(args: argparse.Namespace) -> int:
    verdicts = reachability(_load(args.files), args.port or [80], args.protocol or ["TCP"])
    print(to_json(verdicts) if args.output == "json" else to_table(verdicts))
    return 0


def run_trace(args: argparse.Namespace) -> int:
    if args.files:
        result = trace(_load(args.files), args.src, args.dst, args.port, args.protocol)
        print(result.explanation, end="")
        return 0
    with _client(args) as client:
        reply = client.trace(args.src, args.dst, args.port, args.protocol)
    print(reply.explanation, end="" if reply.explanation.endswith("\n") else "\n")
    return 0


def run_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = client.get_policies()
    print(f"revision {reply.revision}")
    rows = [("NAMESPACE", "NAME", "ENDPOINTS")] + [
        (p.namespace, p.name, str(len(p.selected_endpoints)))
        for p in sorted(reply.policies, key=lambda p: (p.namespace, p.name))]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    for ns, name, count in rows:
        print(f"{ns.ljust(width[0])}  {name.ljust(width[1])}  {count}")
    for rejected in reply.rejected:
        print(f"rejected: {rejected}", file=sys.stderr)
    return 0
