"""`membrane observe [status]`: flows over Hubble's Observer API, with Hubble's flags.

The filter flags are cli.flowfilter's; this module turns the selectors (--last, --first,
--follow, --since, --until) into a GetFlowsRequest, streams the answer (or reads an
export file with --input-file) into an observe.printer.Printer, and reads the server's
status. Where it connects: `--server`, or `--lab NAME` (the lab's relay: every node) or
`--lab NAME --node N` (that node's agent); an agent's API socket stands for the Observer
socket beside it (agent.sock -> agent.observer.sock). Connection flags and exit codes are every
command's (cli.connection, cli.main): Ctrl-C ends a follow with 130.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import TextIO

import grpc
import yaml
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from agent.api.client import open_channel
from cli.command import Subparsers, add_command
from cli.connection import Connection, add_connection_flags
from cli.flowfilter import add_filter_flags, build_filters
from cli.output import add_output_flag, print_json
from core.errors import AgentUnreachable, MembraneError
from lab.relay import relay_target
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.observer import observer_pb2_grpc as opb_grpc
from observe.printer import FORMATS, Printer, PrintOptions
from observe.replay import parse_lines, replay
from observe.server import observer_socket
from observe.timeformat import DEFAULT as DEFAULT_TIME_FORMAT
from observe.timeformat import FORMATS as TIME_FORMATS

DEFAULT_LAST = 20   # what `hubble observe` shows without --last/--first/--follow

EXAMPLES = """\
# why can't not-frontend reach backend? (the tutorial's denied step)
membrane observe --from-label app=not-frontend --to-label app=backend
# every node of a lab through its relay, with the policies behind each verdict
membrane observe --lab demo --print-node-name --print-policy-names
# every drop in namespace default, as it happens (Ctrl-C ends it)
membrane observe -n default --verdict DROPPED -f
# drops by policy of one workload, and the filters that request sends
membrane observe --to-workload Deployment/backend --drop-reason-desc POLICY_DENIED
membrane observe --to-workload backend --print-raw-filters
# policy verdicts of the last five minutes, one JSON object per line
membrane observe --type policy-verdict --since 5m -o json
# flows from an export file (or stdin with -), filtered as the server would
membrane observe --input-file /var/run/membrane/hubble/events.log --verdict DROPPED
# one node of a lab, and the status of its flow ring
membrane observe --lab demo --node node2 --pod default/backend
membrane observe status --lab demo
"""

STATUS_EXAMPLES = """\
membrane observe status
membrane observe status --lab demo
membrane observe status --lab demo --node node2 -o json
"""


# -- time ----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: dt.datetime | None = None) -> Timestamp:
    """RFC 3339 ("2024-01-26T09:07:03Z"), a date ("2024-01-26"), or relative to now
    ("5m", "1h30m", "90s")."""
    now = now or dt.datetime.now(dt.timezone.utc)
    text = text.strip()
    if _DURATIONS.fullmatch(text):
        seconds = sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(text))
        when = now - dt.timedelta(seconds=seconds)
    else:
        try:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise MembraneError(f"time {text!r}: use RFC 3339 (2024-01-26T09:07:03Z) or a "
                                "duration before now (30s, 5m, 1h30m)") from None
        if when.tzinfo is None:
            when = when.astimezone()
    ts = Timestamp()
    ts.FromNanoseconds(int(when.timestamp() * 1e9))
    return ts


# -- the request ---------------------------------------------------------------------

def build_request(args: argparse.Namespace, default_last: int = DEFAULT_LAST
                  ) -> opb.GetFlowsRequest:
    allow, deny = build_filters(args.filter_items, args.allowlist, args.denylist)
    if args.first is not None and args.follow:
        raise MembraneError("--first and --follow cannot be combined: --first reads the "
                            "oldest flows held, --follow waits for new ones")
    if args.first is not None and args.last is not None:
        raise MembraneError("--first and --last cannot be combined")
    req = opb.GetFlowsRequest(follow=args.follow, whitelist=allow, blacklist=deny)
    if args.first is not None:
        req.first, req.number = True, args.first
    elif args.last is not None:
        req.number = args.last
    elif not (args.follow or args.all or args.since or args.until):
        req.number = default_last
    if args.since:
        req.since.CopyFrom(parse_time(args.since))
    if args.until:
        req.until.CopyFrom(parse_time(args.until))
    return req


def raw_filters_yaml(req: opb.GetFlowsRequest) -> str:
    """The request's filters as `hubble observe --print-raw-filters` prints them: YAML
    lists of JSON FlowFilters (what --allowlist/--denylist take back)."""
    def dump(filters: list[fpb.FlowFilter]) -> list[str]:
        return [json.dumps(json_format.MessageToDict(f, preserving_proto_field_name=True),
                           separators=(",", ":")) for f in filters]
    data = {"allowlist": dump(list(req.whitelist)), "denylist": dump(list(req.blacklist))}
    return str(yaml.safe_dump({k: v for k, v in data.items() if v}, default_flow_style=False,
                              width=1 << 16))


def _rpc_error(err: grpc.RpcError, address: str, method: str) -> MembraneError:
    code = err.code()
    detail = err.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgentUnreachable(f"{address} is unreachable: {detail}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return MembraneError(f"{address} serves no Observer: give an agent's Observer "
                             "socket (agent.observer.sock), a relay, or a TLS host:port")
    return MembraneError(f"{method}: {detail}")


def observer_address(args: argparse.Namespace) -> str:
    """--server; else --lab with --node (that agent's Observer) or without (the lab's
    relay); else the default agent's Observer."""
    connection = Connection.from_args(args)
    if args.lab and not args.server and getattr(args, "node", None) is None:
        return relay_target(args.lab)
    return observer_target(connection.address)


def observer_target(address: str) -> str:
    """An agent's API socket stands for its Observer socket beside it
    (observe.server.observer_socket), so `--server /run/membrane/agent.sock` and `--lab`
    work as for every other command; an Observer or relay socket, or a host:port (the
    agent's TLS listener), is dialled as it is."""
    path = address.removeprefix("unix://").removeprefix("unix:")
    if "/" not in path:
        return address                  # host:port
    beside = observer_socket(path)
    return beside if os.path.exists(beside) else address


def _printer(args: argparse.Namespace, out: TextIO) -> Printer:
    opts = PrintOptions(node_name=args.print_node_name, policy_names=args.print_policy_names,
                        numeric=args.numeric, time_format=args.time_format,
                        color=_color(args.color, out))
    return Printer(args.output, out, follow=args.follow, opts=opts)


def _color(mode: str, out: TextIO) -> bool:
    if mode == "always":
        return True
    if mode == "never":
        return False
    return out.isatty() and os.environ.get("NO_COLOR", "") == "" and \
        os.environ.get("TERM", "") != "dumb"


# -- the commands --------------------------------------------------------------------

def run_observe(args: argparse.Namespace) -> int:
    if args.input_file:
        request = build_request(args, default_last=0)
    else:
        request = build_request(args)
    if args.print_raw_filters:
        sys.stdout.write(raw_filters_yaml(request))
        return 0
    printer = _printer(args, sys.stdout)
    try:
        responses = (_from_file(args.input_file, request) if args.input_file
                     else _from_server(args, request))
        for resp in responses:
            printer.write(resp)
        return 0
    finally:
        try:
            printer.close()
        except BrokenPipeError:
            pass   # the reader left (`| head`); cli.main ends quietly


def _from_file(path: str, request: opb.GetFlowsRequest) -> Iterator[opb.GetFlowsResponse]:
    if path == "-":
        yield from replay(parse_lines(sys.stdin, "stdin"), request)
        return
    try:
        with open(path, encoding="utf-8") as lines:
            yield from replay(parse_lines(lines, path), request)
    except OSError as err:
        raise MembraneError(f"--input-file {path}: {err.strerror or err}") from None


def _from_server(args: argparse.Namespace, request: opb.GetFlowsRequest
                 ) -> Iterator[opb.GetFlowsResponse]:
    address = observer_address(args)
    channel = open_channel(address)
    try:
        stub = opb_grpc.ObserverStub(channel)
        stream = stub.GetFlows(request, timeout=None if args.follow else args.timeout)
        try:
            yield from stream
        finally:
            stream.cancel()   # also on Ctrl-C: the server's handler ends at once
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.CANCELLED:
            raise _rpc_error(err, address, "GetFlows") from None
    finally:
        channel.close()


def run_status(args: argparse.Namespace) -> int:
    address = observer_address(args)
    channel = open_channel(address)
    try:
        stub = opb_grpc.ObserverStub(channel)
        st = stub.ServerStatus(opb.ServerStatusRequest(), timeout=args.timeout)
        nodes = stub.GetNodes(opb.GetNodesRequest(), timeout=args.timeout).nodes
    except grpc.RpcError as err:
        raise _rpc_error(err, address, "ServerStatus") from None
    finally:
        channel.close()
    connected, unavailable = st.num_connected_nodes.value, st.num_unavailable_nodes.value
    if args.output in ("json", "jsonpb"):
        print_json({"address": address, "version": st.version, "num_flows": st.num_flows,
                    "max_flows": st.max_flows, "seen_flows": st.seen_flows,
                    "uptime_ns": st.uptime_ns, "num_connected_nodes": connected,
                    "num_unavailable_nodes": unavailable,
                    "unavailable_nodes": list(st.unavailable_nodes),
                    "nodes": [n.name for n in nodes]})
        return 0
    fill = 100.0 * st.num_flows / st.max_flows if st.max_flows else 0.0
    print(f"Healthcheck (via {address}): Ok")
    print(f"Version: {st.version}  Uptime: {st.uptime_ns / 1e9:.0f}s  "
          f"Nodes: {', '.join(n.name for n in nodes)}")
    print(f"Current/Max Flows: {st.num_flows:,}/{st.max_flows:,} ({fill:.2f}%)")
    print(f"Seen Flows: {st.seen_flows:,}")
    print(f"Connected Nodes: {connected}/{connected + unavailable}")
    if st.unavailable_nodes:
        print(f"Unavailable Nodes: {', '.join(st.unavailable_nodes)}")
    return 0


def _add_client_flags(p: argparse.ArgumentParser) -> None:
    add_connection_flags(p)
    # `--lab NAME` alone is the lab's relay (every node); `--node N` one agent.
    p.set_defaults(node=None)
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def register(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers, "observe",
        help="show flows: verdicts and drops with pods, identities, reasons and policies",
        description="Observe flows over Hubble's Observer API, like `hubble observe`: an "
                    "agent, a relay (--lab without --node: every node) or an export file. "
                    f"Without --last/--first/--follow/--all/--since, shows the last "
                    f"{DEFAULT_LAST}.",
        examples=EXAMPLES)
    _add_selector_flags(p)
    add_filter_flags(p)
    _add_format_flags(p)
    other = p.add_argument_group("other")
    other.add_argument("--input-file", metavar="FILE",
                       help="read flows from a JSON-lines file (an export, or -o json "
                            "output) instead of a server; - reads stdin")
    other.add_argument("--print-raw-filters", action="store_true",
                       help="print the allowlist/denylist filters as Hubble does and exit")
    _add_client_flags(p)
    p.set_defaults(func=run_observe)

    verbs = p.add_subparsers(dest="observe_verb", metavar="{status}")
    st = add_command(verbs, "status", help="the flow ring(s): flows held, seen, nodes",
                     examples=STATUS_EXAMPLES)
    add_output_flag(st, "table", "json", "jsonpb")
    _add_client_flags(st)
    st.set_defaults(func=run_status)


def _add_format_flags(p: argparse.ArgumentParser) -> None:
    out = p.add_argument_group("output")
    add_output_flag(out, *FORMATS)
    out.add_argument("--print-node-name", action="store_true",
                     help="show each flow's node (compact, dict and table)")
    out.add_argument("--print-policy-names", action="store_true",
                     help="show the policies that allowed each verdict, or isolated the "
                          "pod for a policy drop")
    out.add_argument("--numeric", action="store_true",
                     help="addresses and identity numbers instead of names")
    out.add_argument("--time-format", choices=list(TIME_FORMATS), default=DEFAULT_TIME_FORMAT,
                     metavar="FORMAT", help=f"{', '.join(TIME_FORMATS)} "
                                            f"(default {DEFAULT_TIME_FORMAT})")
    out.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                     help="color compact and dict output (default auto: on a terminal)")


def _add_selector_flags(p: argparse.ArgumentParser) -> None:
    sel = p.add_argument_group("selectors")
    sel.add_argument("-f", "--follow", action="store_true", help="follow flows as they happen")
    sel.add_argument("--last", type=int, metavar="N", help="the last N flows held (per node "
                                                           "through a relay)")
    sel.add_argument("--first", type=int, metavar="N", help="the oldest N flows held")
    sel.add_argument("--all", action="store_true", help="every flow held")
    sel.add_argument("--since", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")
    sel.add_argument("--until", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")
