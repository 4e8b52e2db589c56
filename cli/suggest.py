"""`membrane policy suggest`: least-privilege NetworkPolicies from observed flows.

Thin wiring over agent.policy.suggest: the flows come from an Observer (the agent's,
a relay's, a lab's relay with `--lab`; history only, `--since` to narrow it) or from an
export file (`--input-file`, `-` for stdin); the policies are checked with the policy
engine before they are printed, and the check is reported on stderr. `--diff` compares
with the policies in force: the agent's (`policy get`), or manifests given with -f.

Exit codes: 0 every observed connection stays allowed under the suggestion; 1 some
could not be kept (each is named; the policies are still printed), or nothing was read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence

import grpc
import yaml

from agent.api.client import open_channel
from agent.k8s.loader import load_paths, objects_from_sourced_documents, yaml_documents
from agent.k8s.objects import NetworkPolicy
from agent.policy.suggest.build import Options, Suggestion, suggest
from agent.policy.suggest.diff import diff
from agent.policy.suggest.observed import Connection, connections
from agent.policy.suggest.verify import Verification, policies_of, verify
from cli.command import Subparsers, add_command
from cli.connection import add_connection_flags, agent_client
from cli.observe import observer_address, parse_time
from cli.output import add_output_flag, print_json
from core.errors import AgentUnreachable, MembraneError
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.replay import parse_lines, replay

EXAMPLES = """\
membrane policy suggest --lab demo > policies.yaml && kubectl apply -f policies.yaml
membrane policy suggest --lab demo --since 10m --namespace default
membrane policy suggest --input-file /var/run/membrane/hubble/events.log --cidr-prefix 24
membrane observe --lab demo --all -o json | membrane policy suggest --input-file -
membrane policy suggest --lab demo --diff
membrane policy suggest --input-file flows.json --diff -f current-policies/
"""


def register(policy: Subparsers) -> None:
    p = add_command(
        policy, "suggest", help="least-privilege NetworkPolicies from observed flows",
        description="Write one NetworkPolicy per workload and direction that allows exactly "
                    "the connections the flows show (forwarded, or dropped by policy), "
                    "selecting pods by their identity labels and namespaces by name; "
                    "checked with the policy engine before printing.",
        examples=EXAMPLES)
    src = p.add_argument_group("flows")
    src.add_argument("--input-file", metavar="FILE",
                     help="flows as JSON lines (an export, or `observe -o json`); - is stdin")
    src.add_argument("--since", metavar="TIME",
                     help="only flows since then: RFC 3339 or relative (10m, 1h)")
    shape = p.add_argument_group("policies")
    shape.add_argument("--namespace", "-n", action="append", metavar="NS",
                       help="write policies only for workloads in NS (repeatable; peers "
                            "anywhere); default every namespace seen")
    shape.add_argument("--cidr-prefix", type=_prefix, default=32, metavar="N",
                       help="ipBlock prefix length for addresses outside the pods "
                            "(default 32; an IPv6 address keeps as many host bits: 128)")
    shape.add_argument("--diff", action="store_true",
                       help="compare with the policies in force instead of printing policies")
    shape.add_argument("-f", "--filename", dest="files", action="append", metavar="PATH",
                       help="with --diff: the policies in force from manifests, not the agent")
    add_output_flag(p, "yaml", "json")
    add_connection_flags(p)
    p.set_defaults(node=None)   # --lab alone: the lab's relay, every node (as observe)
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run_suggest)


def _prefix(text: str) -> int:
    number = int(text)
    if not 0 <= number <= 32:
        raise argparse.ArgumentTypeError(f"prefix {number}: must be 0-32")
    return number


# -- flows ---------------------------------------------------------------------------

def _request(args: argparse.Namespace) -> opb.GetFlowsRequest:
    request = opb.GetFlowsRequest()
    if args.since:
        request.since.CopyFrom(parse_time(args.since))
    return request


def _flows(args: argparse.Namespace) -> Iterator[opb.GetFlowsResponse]:
    request = _request(args)
    if args.input_file == "-":
        yield from replay(parse_lines(sys.stdin, "stdin"), request)
    elif args.input_file:
        try:
            with open(args.input_file, encoding="utf-8") as lines:
                yield from replay(parse_lines(lines, args.input_file), request)
        except OSError as err:
            raise MembraneError(f"--input-file {args.input_file}: "
                                f"{err.strerror or err}") from None
    else:
        yield from _from_observer(observer_address(args), request, args.timeout)


def _from_observer(address: str, request: opb.GetFlowsRequest, timeout: float
                   ) -> Iterator[opb.GetFlowsResponse]:
    """Every flow the Observer holds (since the request's time): history, no follow."""
    channel = open_channel(address)
    try:
        yield from opb_grpc.ObserverStub(channel).GetFlows(request, timeout=timeout)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.UNAVAILABLE:
            raise AgentUnreachable(f"{address} is unreachable: {err.details()}") from None
        raise MembraneError(f"GetFlows from {address}: {err.details()}") from None
    finally:
        channel.close()


# -- the policies in force -----------------------------------------------------------

def _current(args: argparse.Namespace) -> dict[str, NetworkPolicy]:
    if args.files:
        objects, errors = load_paths(args.files, [])
        for err in errors:
            print(f"{type(err).__name__}: {err}; skipped", file=sys.stderr)
        return dict(objects.policies)
    with agent_client(_agent_args(args)) as client:
        reply = client.get_policies()
    docs = []
    for info in reply.policies:
        found, error = yaml_documents(info.yaml, f"{info.namespace}/{info.name}")
        if error is not None:
            raise MembraneError(f"policy {info.namespace}/{info.name} from the agent: {error}")
        docs += found
    objects, errors = objects_from_sourced_documents(docs, [])
    for err in errors:
        print(f"{type(err).__name__}: {err}; skipped", file=sys.stderr)
    return dict(objects.policies)


def _agent_args(args: argparse.Namespace) -> argparse.Namespace:
    """The agent to ask for policies: --server, else the lab's node (node1 by default)."""
    return argparse.Namespace(server=args.server, lab=args.lab, node=args.node)


# -- the command ---------------------------------------------------------------------

def run_suggest(args: argparse.Namespace) -> int:
    if args.files and not args.diff:
        raise MembraneError("-f names the policies in force, for --diff only")
    conns = connections(_flows(args))
    if not conns:
        raise MembraneError("no connections in the flows read (forwarded, or dropped by "
                            "policy): nothing to suggest")
    options = Options(cidr_prefix=args.cidr_prefix,
                      namespaces=frozenset(args.namespace or ()))
    suggestion = suggest(conns, options)
    suggested = policies_of(suggestion.documents)
    checked = verify(conns, suggested)
    if args.diff:
        result = diff(conns, _current(args), suggested)
        if args.output == "json":
            print_json(result.as_dict())
        else:
            sys.stdout.write(result.text())
    else:
        _print_policies(suggestion, args.output, conns, checked)
    return _report(suggestion, checked, conns)


def _print_policies(suggestion: Suggestion, output: str, conns: Sequence[Connection],
                    checked: Verification) -> None:
    if output == "json":
        print_json({"apiVersion": "v1", "kind": "List", "items": suggestion.documents})
        return
    sys.stdout.write(f"# membrane policy suggest: {len(suggestion.documents)} policies from "
                     f"{len(conns)} observed connections; {len(checked.kept)} checked "
                     "allowed by the policy engine\n")
    sys.stdout.write(yaml.safe_dump_all(suggestion.documents, sort_keys=False,
                                        explicit_start=True))


def _report(suggestion: Suggestion, checked: Verification, conns: Sequence[Connection]
            ) -> int:
    for note in suggestion.notes:
        print(f"note: {note}", file=sys.stderr)
    if checked.ok:
        print(f"policy suggest: checked with the policy engine: all {len(conns)} observed "
              "connections stay allowed", file=sys.stderr)
        return 0
    for conn, why in checked.not_kept:
        print(f"could not keep: {conn.text} ({why})", file=sys.stderr)
    print(f"policy suggest: {len(checked.not_kept)} of {len(conns)} observed connections "
          "would be denied by the suggestion (named above)", file=sys.stderr)
    return 1
