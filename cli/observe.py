"""`membrane observe [status]`: flows from the agent's Observer, with Hubble's flags.

The filter flags are cli.flowfilter's; this module turns the selectors (--last, --first,
--follow, --since, --until) into a GetFlowsRequest, streams the answer into an
observe.printer.Printer, and reads the flow ring's status. Connection flags and exit
codes are every command's (cli.connection, cli.main): Ctrl-C ends a follow with 130.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from cli.command import Subparsers, add_command
from cli.connection import Connection, add_connection_flags
from cli.flowfilter import add_filter_flags, build_filters
from cli.output import add_output_flag, print_json
from core.errors import AgentUnreachable, MembraneError
from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb
from observe.gen import observer_pb2_grpc as opb_grpc
from observe.printer import FORMATS, Printer

DEFAULT_LAST = 20   # what `hubble observe` shows without --last/--first/--follow

EXAMPLES = """\
# why can't not-frontend reach backend? (the tutorial's denied step)
membrane observe --from-label app=not-frontend --to-label app=backend
# every drop in namespace default, as it happens (Ctrl-C ends it)
membrane observe -n default --verdict DROPPED -f
# the last 100 flows to port 8080, except from pods of app=frontend
membrane observe --last 100 --to-port 8080 --not --from-label app=frontend
# policy verdicts of the last five minutes, one JSON object per line
membrane observe --type policy-verdict --since 5m -o json
# a lab node's agent, and its flow ring's status
membrane observe --lab demo --node node2 --pod default/backend
membrane observe status --lab demo
"""

STATUS_EXAMPLES = """\
membrane observe status
membrane observe status --lab demo --node node2 -o json
"""


# -- time ----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATIONS = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: dt.datetime | None = None) -> Timestamp:
    """RFC 3339 ("2024-01-26T09:07:03Z") or relative to now ("5m", "1h30m", "90s")."""
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

def build_request(args: argparse.Namespace) -> opb.GetFlowsRequest:
    allow, deny = build_filters(args.filter_items)
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
        req.number = DEFAULT_LAST
    if args.since:
        req.since.CopyFrom(parse_time(args.since))
    if args.until:
        req.until.CopyFrom(parse_time(args.until))
    return req


def _rpc_error(err: grpc.RpcError, address: str, method: str) -> MembraneError:
    code = err.code()
    detail = err.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgentUnreachable(f"agent at {address} is unreachable: {detail}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return MembraneError(f"agent at {address} serves no Observer: is it an older agent?")
    return MembraneError(f"{method}: {detail}")


# -- the commands --------------------------------------------------------------------

def run_observe(args: argparse.Namespace) -> int:
    request = build_request(args)
    printer = Printer(args.output, sys.stdout, node_name=args.print_node_name,
                      follow=args.follow)
    connection = Connection.from_args(args)
    channel = connection.channel()
    try:
        stub = opb_grpc.ObserverStub(channel)
        stream = stub.GetFlows(request, timeout=None if args.follow else args.timeout)
        try:
            for resp in stream:
                printer.write(resp)
        finally:
            stream.cancel()   # also on Ctrl-C: the agent's handler ends at once
        return 0
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.CANCELLED:
            return 0
        raise _rpc_error(err, connection.address, "GetFlows") from None
    finally:
        try:
            printer.close()
        except BrokenPipeError:
            pass   # the reader left (`| head`); cli.main ends quietly
        channel.close()


def run_status(args: argparse.Namespace) -> int:
    connection = Connection.from_args(args)
    channel = connection.channel()
    try:
        stub = opb_grpc.ObserverStub(channel)
        st = stub.ServerStatus(opb.ServerStatusRequest(), timeout=args.timeout)
    except grpc.RpcError as err:
        raise _rpc_error(err, connection.address, "ServerStatus") from None
    finally:
        channel.close()
    lost = {fpb.LostEventSource.Name(c.source): c.count for c in st.lost_events}
    if args.output in ("json", "jsonpb"):
        print_json({"node_name": st.node_name, "version": st.version,
                    "num_flows": st.num_flows, "max_flows": st.max_flows,
                    "seen_flows": st.seen_flows, "uptime_ns": st.uptime_ns,
                    "lost_events": lost})
        return 0
    fill = 100.0 * st.num_flows / st.max_flows if st.max_flows else 0.0
    print(f"Healthcheck (via {connection.address}): Ok")
    print(f"Node: {st.node_name}  Version: {st.version}  Uptime: {st.uptime_ns / 1e9:.0f}s")
    print(f"Current/Max Flows: {st.num_flows:,}/{st.max_flows:,} ({fill:.2f}%)")
    print(f"Seen Flows: {st.seen_flows:,}")
    print("Lost Events: " + (", ".join(f"{k} {v:,}" for k, v in sorted(lost.items()))
                             or "none"))
    return 0


def _add_client_flags(p: argparse.ArgumentParser) -> None:
    add_connection_flags(p)
    p.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def register(subparsers: Subparsers) -> None:
    p = add_command(
        subparsers, "observe",
        help="show flows: verdicts and drops with pods, identities and reasons",
        description="Observe flows from the agent's flow ring, like `hubble observe`. "
                    f"Without --last/--first/--follow/--all/--since, shows the last "
                    f"{DEFAULT_LAST}.",
        examples=EXAMPLES)
    _add_selector_flags(p)
    add_filter_flags(p)
    out = p.add_argument_group("output")
    add_output_flag(out, *FORMATS)
    out.add_argument("--print-node-name", action="store_true",
                     help="show each flow's node in compact and dict output")
    _add_client_flags(p)
    p.set_defaults(func=run_observe)

    verbs = p.add_subparsers(dest="observe_verb", metavar="{status}")
    st = add_command(verbs, "status", help="the flow ring: flows held, seen, lost",
                     examples=STATUS_EXAMPLES)
    add_output_flag(st, "table", "json", "jsonpb")
    _add_client_flags(st)
    st.set_defaults(func=run_status)


def _add_selector_flags(p: argparse.ArgumentParser) -> None:
    sel = p.add_argument_group("selectors")
    sel.add_argument("-f", "--follow", action="store_true", help="follow flows as they happen")
    sel.add_argument("--last", type=int, metavar="N", help="the last N flows held")
    sel.add_argument("--first", type=int, metavar="N", help="the oldest N flows held")
    sel.add_argument("--all", action="store_true", help="every flow held")
    sel.add_argument("--since", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")
    sel.add_argument("--until", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")
