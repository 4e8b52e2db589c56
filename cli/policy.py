"""`membrane policy matrix|trace|get`: thin wiring over agent.policy and the agent API."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from agent.k8s.loader import load_paths
from agent.k8s.objects import ClusterObjects
from agent.k8s.rejection import describe_stand_in
from agent.k8s.validation.fields import ValidationWarning
from agent.policy.matrix import FAMILIES, reachability, to_json, to_table
from agent.policy.trace import trace
from cli.command import Subparsers, add_command, add_group
from cli.connection import add_connection_flags, agent_client
from cli.output import add_output_flag, message_dict, print_json, print_table
from cli.suggest import register as register_suggest
from core.protocols import PORT_PROTOCOLS

MATRIX_EXAMPLES = """\
membrane policy matrix -f demo/tutorial
membrane policy matrix -f app.yaml -f policies/ --port 80 --port 8080 -o json
membrane policy matrix -f demo/tutorial --port 53 --protocol UDP
membrane policy matrix -f dual-stack.yaml --family ipv6 -o json
"""

TRACE_EXAMPLES = """\
membrane policy trace -f demo/tutorial --from default/frontend --to default/backend --port 8080
membrane policy trace --lab demo --from default/frontend --to kube-system/coredns \\
    --port 53 --protocol UDP -o json
membrane policy trace -f dual-stack.yaml --from x/a --to y/b --port 80 --family ipv6
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
    _add_family(matrix)
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
    _add_family(tr)
    add_connection_flags(tr)
    add_output_flag(tr, "text", "json")
    tr.set_defaults(func=run_trace)

    get = add_command(policy, "get", help="the policies the running agent enforces",
                      examples=GET_EXAMPLES)
    add_connection_flags(get)
    add_output_flag(get, "table", "json")
    get.set_defaults(func=run_get)

    register_suggest(policy)   # membrane policy suggest (cli/suggest.py)


def _add_family(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--family", type=str.lower, choices=sorted(FAMILIES), default="ipv4",
                        help="the pods' addresses of this IP family, and the ipBlocks of "
                             "it (default ipv4)")


def _add_files(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument("-f", "--filename", dest="files", action="append", required=required,
                        metavar="PATH", help="manifest file or directory (repeatable)")


def _port(text: str) -> int:
    number = int(text)
    if not 0 < number <= 65535:
        raise argparse.ArgumentTypeError(f"port {number}: must be 1-65535")
    return number


def _load(files: Sequence[str]) -> tuple[ClusterObjects, bool]:
    """Objects from the files, and whether every one was read as written. Each object
    skipped is named on stderr (with the stand-in a rejected policy leaves in its place,
    which the verdicts then include: its pods isolated, nothing allowed by it); the
    others are still used. Warnings are printed too."""
    warnings: list[ValidationWarning] = []
    objects, errors = load_paths(files, warnings)
    for warning in warnings:
        print(f"Warning: {warning}", file=sys.stderr)
    stand_ins = {p.fail_closed: p for p in objects.policies.values() if p.fail_closed}
    for err in errors:
        stand_in = stand_ins.get(str(err))
        print(f"{type(err).__name__}: {err}"
              + (f"; in its place: {describe_stand_in(stand_in)}" if stand_in else "")
              + "; skipped", file=sys.stderr)
    return objects, not errors


def _skipped_exit(complete: bool, what: str) -> int:
    """1 when objects were skipped: a verdict from part of the manifests is not the
    verdict of the manifests."""
    if complete:
        return 0
    print(f"{what}: some objects could not be read (named above); the verdicts shown "
          "treat rejected policies as fail-closed", file=sys.stderr)
    return 1


def run_matrix(args: argparse.Namespace) -> int:
    objects, complete = _load(args.files)
    verdicts = reachability(objects, args.port or [80], args.protocol or ["TCP"],
                            family=FAMILIES[args.family])
    print(to_json(verdicts) if args.output == "json" else to_table(verdicts))
    return _skipped_exit(complete, "policy matrix")


def run_trace(args: argparse.Namespace) -> int:
    if args.files:
        objects, complete = _load(args.files)
        result = trace(objects, args.src, args.dst, args.port, args.protocol,
                       FAMILIES[args.family])
        allowed, explanation = result.allowed, result.explanation
    else:
        with agent_client(args) as client:
            reply = client.trace(args.src, args.dst, args.port, args.protocol,
                                 FAMILIES[args.family])
        allowed, explanation = reply.allowed, reply.explanation
        for skipped in reply.skipped:
            print(f"rejected by the agent: {skipped}", file=sys.stderr)
        complete = not reply.skipped
    if args.output == "json":
        print_json({"allowed": allowed, "explanation": explanation})
    else:
        print(explanation, end="" if explanation.endswith("\n") else "\n")
    return _skipped_exit(complete, "policy trace")


def run_get(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        reply = client.get_policies()
    if args.output == "json":
        print_json(message_dict(reply))
    else:
        print(f"revision {reply.revision}")
        namespaced = [p for p in reply.policies if p.namespace]
        print_table(["NAMESPACE", "NAME", "ENDPOINTS", "STATUS"],
                    [[p.namespace, p.name, str(len(p.selected_endpoints)), _state(p)]
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
    for warning in reply.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def _state(policy: Any) -> str:
    if policy.fail_closed:
        kept = policy.last_good_resource_version
        return "fail-closed (rejected" + (f"; last good {kept})" if kept else ")")
    return "enforced" + (f" ({len(policy.warnings)} warnings)" if policy.warnings else "")
