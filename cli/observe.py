"""`membrane observe`: flows from the agent's Observer, with Hubble's flags.

Filter flags build FlowFilters the way `hubble observe` does: --from-X sets the source
field, --to-X the destination field, and an either-side flag (--pod, -l, --ip, ...)
splits the filter in two, one matching the source and one the destination. --not puts
the next filter flag into the deny list. Everything else is wiring.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from agent.api.client import DEFAULT_SOCKET, lab_socket, open_channel
from core.errors import AgentUnreachable, MembraneError
from identity.reserved import ReservedIdentity
from observe.filters.tcp_flags import parse_flags
from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb
from observe.gen import observer_pb2_grpc as opb_grpc
from observe.printer import FORMATS, Printer

DEFAULT_LAST = 20   # what `hubble observe` shows without --last/--first/--follow

EXAMPLES = """\
examples:
  # why can't not-frontend reach backend? (the tutorial's denied step)
  membrane observe --from-label app=not-frontend --to-label app=backend
  # every drop in namespace default, as it happens
  membrane observe -n default --verdict DROPPED -f
  # the last 100 flows to port 8080, except from pods of app=frontend
  membrane observe --last 100 --to-port 8080 --not --from-label app=frontend
  # policy verdicts of the last five minutes, one JSON object per line
  membrane observe --type policy-verdict --since 5m -o json
  # a lab node's agent, and its flow ring's status
  membrane observe --lab demo --node node2 --pod default/backend
  membrane observe status --lab demo
"""


# -- building FlowFilters from ordered flags ----------------------------------------

Setter = Callable[[fpb.FlowFilter], None]


@dataclass
class _Half:
    ff: fpb.FlowFilter = field(default_factory=fpb.FlowFilter)
    # namespaces wait until the end: they combine with pod names ("ns/pod").
    ns: dict[str, list[str]] = field(default_factory=lambda: {"source": [], "destination": []})
    touched: bool = False


@dataclass
class _Tracker:
    """One list (allow or deny): a filter, split into a source and a destination half
    by the first either-side flag."""

    left: _Half = field(default_factory=_Half)
    right: _Half | None = None

    def both(self, setter: Callable[[_Half], None]) -> None:
        for half in (self.left, self.right):
            if half is not None:
                setter(half)
                half.touched = True

    def either(self, src: Callable[[_Half], None], dst: Callable[[_Half], None]) -> None:
        if self.right is None:
            self.right = copy.deepcopy(self.left)
        src(self.left)
        dst(self.right)
        self.left.touched = self.right.touched = True

    def filters(self) -> list[fpb.FlowFilter]:
        return [_finish(h) for h in (self.left, self.right) if h is not None and h.touched]


def _finish(half: _Half) -> fpb.FlowFilter:
    ff = half.ff
    for side in ("source", "destination"):
        namespaces = half.ns[side]
        if not namespaces:
            continue
        pods = getattr(ff, f"{side}_pod")
        qualified = [p for p in pods if "/" in p]
        bare = [p for p in pods if "/" not in p]
        combined = ([f"{ns}/{p}" for ns in namespaces for p in bare] if bare
                    else [] if qualified else [f"{ns}/" for ns in namespaces])
        del pods[:]
        pods.extend(qualified + combined)
    return ff


def _field(name: str, value: Any) -> Callable[[_Half], None]:
    def set_(half: _Half) -> None:
        target = getattr(half.ff, name)
        if isinstance(value, fpb.TCPFlags) or isinstance(value, fpb.EventTypeFilter):
            target.add().CopyFrom(value)
        else:
            target.append(value)
    return set_


def _ns(side: str, value: str) -> Callable[[_Half], None]:
    return lambda half: half.ns[side].append(value)


def _identity(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(ReservedIdentity[text.upper().replace("-", "_")])
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"identity {text!r}: a number or a reserved name (world, host, ...)") from None


def _enum(enum: Any, text: str, what: str) -> int:
    try:
        return int(enum.Value(text.upper()))
    except ValueError:
        names = [n for n in enum.keys() if not n.endswith("UNKNOWN") and "UNKNOWN" not in n]
        raise argparse.ArgumentTypeError(f"{what} {text!r}: use one of {', '.join(names)}") \
            from None


_EVENT_TYPES = {"drop": 1, "trace": 4, "policy-verdict": 9}

# flag -> (kind, field suffix, value converter). kind: from/to/either/both/ns-*.
_FILTER_FLAGS: dict[str, tuple[str, str, Callable[[str], Any]]] = {
    "from_label": ("from", "label", str), "to_label": ("to", "label", str),
    "label": ("either", "label", str),
    "from_pod": ("from", "pod", str), "to_pod": ("to", "pod", str),
    "pod": ("either", "pod", str),
    "from_namespace": ("ns-from", "", str), "to_namespace": ("ns-to", "", str),
    "namespace": ("ns-either", "", str),
    "from_ip": ("from", "ip", str), "to_ip": ("to", "ip", str), "ip": ("either", "ip", str),
    "from_identity": ("from", "identity", _identity),
    "to_identity": ("to", "identity", _identity),
    "identity": ("either", "identity", _identity),
    "from_port": ("from", "port", str), "to_port": ("to", "port", str),
    "port": ("either", "port", str),
    "verdict": ("both", "verdict", lambda v: _enum(fpb.Verdict, v, "verdict")),
    "traffic_direction": ("both", "traffic_direction",
                          lambda v: _enum(fpb.TrafficDirection, v, "traffic direction")),
    "protocol": ("both", "protocol", str),
    "is_reply": ("both", "reply", lambda v: v.lower() in ("true", "1", "yes")),
    "tcp_flags": ("both", "tcp_flags", parse_flags),
    "type": ("both", "event_type", lambda v: fpb.EventTypeFilter(type=_EVENT_TYPES[v])),
    "node_name": ("both", "node_name", str),
}


def build_filters(items: list[tuple[bool, str, str]]
                  ) -> tuple[list[fpb.FlowFilter], list[fpb.FlowFilter]]:
    """Ordered (negated, flag, value) -> (whitelist, blacklist)."""
    allow, deny = _Tracker(), _Tracker()
    for negated, flag, raw in items:
        kind, suffix, convert = _FILTER_FLAGS[flag]
        try:
            value = convert(raw)
        except (ValueError, KeyError) as err:
            raise MembraneError(f"--{flag.replace('_', '-')} {raw}: {err}") from None
        except argparse.ArgumentTypeError as err:
            raise MembraneError(str(err)) from None
        t = deny if negated else allow
        if kind == "from":
            t.both(_field(f"source_{suffix}", value))
        elif kind == "to":
            t.both(_field(f"destination_{suffix}", value))
        elif kind == "either":
            t.either(_field(f"source_{suffix}", value), _field(f"destination_{suffix}", value))
        elif kind == "ns-from":
            t.both(_ns("source", value))
        elif kind == "ns-to":
            t.both(_ns("destination", value))
        elif kind == "ns-either":
            t.either(_ns("source", value), _ns("destination", value))
        else:
            t.both(_field(suffix, value))
    return allow.filters(), deny.filters()


class _FilterAction(argparse.Action):
    """Records filter flags in order, with whether a --not came right before."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = list(getattr(ns, "filter_items", None) or [])
        value = "true" if values is None else str(values)
        items.append((bool(getattr(ns, "negate_next", False)), self.dest, value))
        ns.filter_items = items
        ns.negate_next = False


class _NotAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        ns.negate_next = True


# -- time ----------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: dt.datetime | None = None) -> Timestamp:
    """RFC 3339 ("2024-01-26T09:07:03Z") or relative to now ("5m", "1h30m", "90s")."""
    now = now or dt.datetime.now(dt.timezone.utc)
    text = text.strip()
    if _DURATION.fullmatch(text) or re.fullmatch(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+", text):
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


# -- the command ---------------------------------------------------------------------

def _address(args: argparse.Namespace) -> str:
    if getattr(args, "lab", None):
        return lab_socket(args.lab, args.node or "node1")
    return str(args.server or DEFAULT_SOCKET)


def build_request(args: argparse.Namespace) -> opb.GetFlowsRequest:
    allow, deny = build_filters(list(getattr(args, "filter_items", None) or []))
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


def _rpc_error(err: grpc.RpcError, address: str) -> MembraneError:
    code = err.code()
    detail = err.details()
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgentUnreachable(f"agent at {address} is unreachable: {detail}")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return MembraneError(f"agent at {address} serves no Observer: is it an older agent?")
    return MembraneError(f"GetFlows: {detail}")


def run_observe(args: argparse.Namespace) -> int:
    if getattr(args, "observe_command", None) == "status":
        return run_status(args)
    request = build_request(args)
    printer = Printer(args.output, sys.stdout, node_name=args.print_node_name,
                      follow=args.follow)
    address = _address(args)
    channel = open_channel(address)
    stream: Iterator[opb.GetFlowsResponse] | None = None
    try:
        stub = opb_grpc.ObserverStub(channel)  # type: ignore[no-untyped-call]
        stream = stub.GetFlows(request, timeout=None if args.follow else args.timeout)
        for resp in stream:
            printer.write(resp)
        return 0
    except KeyboardInterrupt:
        # Ctrl-C is how a follow ends: stop quietly, exit 0.
        return 0
    except BrokenPipeError:
        return 0   # piped into `head`
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.CANCELLED:
            return 0
        raise _rpc_error(err, address) from None
    finally:
        if stream is not None:
            stream.cancel()  # type: ignore[attr-defined]
        try:
            printer.close()
        except BrokenPipeError:
            pass
        channel.close()


def run_status(args: argparse.Namespace) -> int:
    address = _address(args)
    channel = open_channel(address)
    try:
        stub = opb_grpc.ObserverStub(channel)  # type: ignore[no-untyped-call]
        st = stub.ServerStatus(opb.ServerStatusRequest(), timeout=args.timeout)
    except grpc.RpcError as err:
        raise _rpc_error(err, address) from None
    finally:
        channel.close()
    lost = {fpb.LostEventSource.Name(c.source): c.count for c in st.lost_events}
    if args.output in ("json", "jsonpb"):
        print(json.dumps({"node_name": st.node_name, "version": st.version,
                          "num_flows": st.num_flows, "max_flows": st.max_flows,
                          "seen_flows": st.seen_flows, "uptime_ns": st.uptime_ns,
                          "lost_events": lost}))
        return 0
    fill = 100.0 * st.num_flows / st.max_flows if st.max_flows else 0.0
    print(f"Healthcheck (via {address}): Ok")
    print(f"Node: {st.node_name}  Version: {st.version}  Uptime: {st.uptime_ns / 1e9:.0f}s")
    print(f"Current/Max Flows: {st.num_flows:,}/{st.max_flows:,} ({fill:.2f}%)")
    print(f"Seen Flows: {st.seen_flows:,}")
    print("Lost Events: " + (", ".join(f"{k} {v:,}" for k, v in sorted(lost.items()))
                             or "none"))
    return 0


def _add_connection_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("connection")
    g.add_argument("--server", metavar="ADDRESS", default=None,
                   help=f"agent socket (default {DEFAULT_SOCKET})")
    g.add_argument("--lab", metavar="NAME", help="reach a lab node's agent")
    g.add_argument("--node", metavar="N", default=None, help="lab node (default node1)")
    g.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "observe", help="show flows: verdicts and drops with pods, identities and reasons",
        description="Observe flows from the agent's flow ring, like `hubble observe`. "
                    "Without --last/--first/--follow, shows the last 20.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_observe_flags(p)
    sub = p.add_subparsers(dest="observe_command", metavar="{status}")
    sub.required = False
    st = sub.add_parser("status", help="the flow ring: flows held, seen, lost",
                        epilog="examples:\n  membrane observe status\n"
                               "  membrane observe status --lab demo --node node2 -o json",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    st.add_argument("-o", "--output", choices=("table", "json", "jsonpb"), default="table")
    _add_connection_flags(st)
    st.set_defaults(func=run_status)
    p.set_defaults(func=run_observe, filter_items=[], negate_next=False)


def _add_observe_flags(p: argparse.ArgumentParser) -> None:
    sel = p.add_argument_group("selectors")
    sel.add_argument("-f", "--follow", action="store_true", help="follow flows as they happen")
    sel.add_argument("--last", type=int, metavar="N", help="the last N flows held")
    sel.add_argument("--first", type=int, metavar="N", help="the oldest N flows held")
    sel.add_argument("--all", action="store_true", help="every flow held")
    sel.add_argument("--since", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")
    sel.add_argument("--until", metavar="TIME", help="RFC 3339 or relative (5m, 1h)")

    flt = p.add_argument_group("filters (repeat a flag to OR its values; --not negates the "
                               "next filter)")

    def add(*names: str, metavar: str, help: str, **kw: Any) -> None:
        flt.add_argument(*names, action=_FilterAction, metavar=metavar, help=help, **kw)

    flt.add_argument("--not", action=_NotAction, nargs=0,
                     help="the next filter flag excludes instead of selects")
    add("--from-label", metavar="SELECTOR", help="source labels (app=x, 'k8s:app in (a,b)')")
    add("--to-label", metavar="SELECTOR", help="destination labels")
    add("-l", "--label", metavar="SELECTOR", help="source or destination labels")
    add("--from-pod", metavar="[NS/]POD", help="source pod name prefix")
    add("--to-pod", metavar="[NS/]POD", help="destination pod name prefix")
    add("--pod", metavar="[NS/]POD", help="source or destination pod")
    add("--from-namespace", metavar="NS", help="source namespace")
    add("--to-namespace", metavar="NS", help="destination namespace")
    add("-n", "--namespace", metavar="NS", help="source or destination namespace")
    add("--from-ip", metavar="IP|CIDR", help="source address")
    add("--to-ip", metavar="IP|CIDR", help="destination address")
    add("--ip", metavar="IP|CIDR", help="source or destination address")
    add("--from-identity", metavar="ID", help="source identity (number or world, host, ...)")
    add("--to-identity", metavar="ID", help="destination identity")
    add("--identity", metavar="ID", help="source or destination identity")
    add("--from-port", metavar="PORT", help="source port")
    add("--to-port", metavar="PORT", help="destination port")
    add("--port", metavar="PORT", help="source or destination port")
    add("--verdict", metavar="VERDICT", help="FORWARDED, DROPPED, ERROR, AUDIT")
    add("--protocol", metavar="PROTO", help="tcp, udp, icmp, sctp")
    add("--traffic-direction", metavar="DIR", help="ingress or egress")
    add("--is-reply", metavar="BOOL", nargs="?", const="true",
        help="replies only (--is-reply false: requests only)")
    add("--tcp-flags", metavar="FLAGS", help="TCP flags all present, e.g. SYN or SYN,ACK")
    add("-t", "--type", metavar="TYPE", choices=sorted(_EVENT_TYPES),
        help="event type: drop, trace, policy-verdict")
    add("--node-name", metavar="PATTERN", help="flows of nodes matching (node1, node*)")

    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", choices=FORMATS, default="compact",
                     help="compact (default), json, jsonpb, dict, table")
    out.add_argument("--print-node-name", action="store_true",
                     help="show each flow's node in compact and dict output")
    _add_connection_flags(p)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m cli.observe ...`: the observe command alone (tests, and a membrane
    build without the other commands)."""
    parser = argparse.ArgumentParser(prog="membrane")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["observe", *(argv or [])])
    try:
        return int(args.func(args) or 0)
    except MembraneError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
