"""`membrane policy matrix|trace|get`: thin wiring over agent.policy and the agent API."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from agent.k8s.loader import load_paths
from agent.k8s.objects import ClusterObjects
from agent.policy.matrix import reachability, to_json, to_table
from agent.policy.trace import trace
from cli.command import Subparsers, add_command, add_group
from cli.connection import add_connection_flags, agent_client
from cli.output import add_output_flag, message_dict, print_json, print_table
from core.protocols import PORT_PROTOCOLS

MATRIX_EXAMPLES = """\
membrane policy matrix -f demo/tutorial
membrane policy matrix -f app.yaml -f policies/ --port 80 --port 8080 -o json
membrane policy matrix -f demo/tutorial --port 53 --protocol UDP
"""

TRACE_EXAMPLES = """\
membrane policy trace -f demo/tutorial --from default/frontend --to default/backend --port 8080
membrane policy trace --lab demo --from default/frontend --to kube-system/coredns \\
    --port 53 --protocol UDP -o json
"""

GET_EXAMPLES = """\
membrane policy get
membrane policy get --lab demo -o json
"""


def register(subparsers: Subparsers) -> None:
    policy = add_group(subparsers, "policy", help="what NetworkPolicy allows, and why",
                       examples=MATRIX_EXAMPLES + TRACE_EXAMPLES + GET_EXAMPLES,
                       metavar="COMMAND")

    matrix = add_command(policy, "matrix",
                         help="reachability between every pair of pods in manifests",
                         examples=MATRIX_EXAMPLES)
    _add_files(matrix, required=True)
    matrix.add_argument("--port", type=_port, action="append", metavar="N",
                        help="destination port (repeatable; default 80)")
    matrix.add_argument("--protocol", type=str.upper, action="append",
                        choices=PORT_PROTOCOLS, help="protocol (repeatable; default TCP)")
    add_output_flag(matrix, "table", "json")
    matrix.set_defaults(func=run_matrix)

    tr = add_command(policy, "trace",
                     help="explain the verdict for one connection, egress and ingress side",
                     examples=TRACE_EXAMPLES,
                     description="Explain the verdict for one connection, egress and "
                                 "ingress side: from manifests with -f, otherwise as the "
                                 "running agent decides it.")
    _add_files(tr, required=False)
    tr.add_argument("--from", dest="src", required=True, metavar="NS/POD")
    tr.add_argument("--to", dest="dst", required=True, metavar="NS/POD")
    tr.add_argument("--port", type=_port, default=80, metavar="N")
    tr.add_argument("--protocol", type=str.upper, choices=PORT_PROTOCOLS, default="TCP")
    add_connection_flags(tr)
    add_output_flag(tr, "text", "json")
    tr.set_defaults(func=run_trace)

    get = add_command(policy, "get", help="the policies the running agent enforces",
                      examples=GET_EXAMPLES)
    add_connection_flags(get)
    add_output_flag(get, "table", "json")
    get.set_defaults(func=run_get)


def _add_files(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="append", required=required,
                        metavar="PATH", help="manifest file or directory (repeatable)")


def _port(text: str) -> int:
    number = int(text)
    if not 0 < number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number}: must be 1-65535")
    return number


def _load(files: Sequence[str]) -> ClusterObjects:
    """Objects from the files; rejected objects are reported and the rest still used."""
    objects, errors = load_paths(files)
    for err in errors:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
    return objects


def run_matrix(args: argparse.Namespace) -> int:
    verdicts = reachability(_load(args.files), args.port or [80], args.protocol or ["TCP"])
    print(to_json(verdicts) if args.output == "json" else to_table(verdicts))
    return 0


def run_trace(args: argparse.Namespace) -> int:
    if args.files:
        result = trace(_load(args.files), args.src, args.dst, args.port, args.protocol)
        allowed, explanation = result.allowed, result.explanation
    else:
        with agent_client(args) as client:
            reply = client.trace(args.src, args.dst, args.port, args.protocol)
        allowed, explanation = reply.allowed, reply.explanation
    if args.output == "json":
        print_json({"allowed": allowed, "explanation": explanation})
    else:
        print(explanation, end="" if explanation.endswith("\n") else "\n")
    return 0


def run_get(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        reply = client.get_policies()
    if args.output == "json":
        print_json(message_dict(reply))
    else:
        print(f"revision {reply.revision}")
        namespaced = [p for p in reply.policies if p.namespace]
        print_table(["NAMESPACE", "NAME", "ENDPOINTS"],
                    [[p.namespace, p.name, str(len(p.selected_endpoints))]
                     for p in sorted(namespaced, key=lambda p: (p.namespace, p.name))])
        tiered = [p for p in reply.policies if not p.namespace]
        if tiered:
            # In evaluation order: Admin tier, then Baseline, each by priority.
            print()
            print_table(["TIER", "PRIORITY", "KIND", "NAME", "ENDPOINTS"],
                        [[p.tier, p.priority, p.kind, p.name, str(len(p.selected_endpoints))]
                         for p in tiered])
        for note in reply.notes:
            print(f"note: {note}")
    for rejected in reply.rejected:
        print(f"rejected: {rejected}", file=sys.stderr)
    return 0
