"""`membrane observe`'s filter flags -> FlowFilters, the way `hubble observe` builds them.

--from-X sets the source field, --to-X the destination field, and an either-side flag
(--pod, -l, --ip, --workload, ...) splits the filter in two, one matching the source and
one the destination. Flags that name no side (--verdict, --protocol, ...) go into every
half. --not puts the next filter flag into the deny list. Namespaces wait until the
end: they qualify the pod names of their side ("ns/pod"), or alone select every pod in
them; -A/--all-namespaces is "any namespace" (flows with a pod on that side).
--allowlist/--denylist add FlowFilters written as JSON, as Hubble's flags of that name.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf import json_format

from core.errors import MembraneError
from identity.reserved import ReservedIdentity
from observe.filters.event_type import NAMES as EVENT_TYPES
from observe.filters.event_type import SUBTYPES, parse_type
from observe.filters.tcp_flags import parse_flags
from observe.gen.flow import flow_pb2 as fpb

# What a flag's text converts to: a FlowFilter field's element.
FilterValue = (str | int | bool | fpb.TCPFlags | fpb.EventTypeFilter | fpb.Workload
               | fpb.NetworkInterface)
_MESSAGES = (fpb.TCPFlags, fpb.EventTypeFilter, fpb.Workload, fpb.NetworkInterface)
# (negated by a --not before it, flag dest, text) in command-line order.
FilterItem = tuple[bool, str, str]
_Setter = Callable[["_Half"], None]


@dataclass
class _Half:
    ff: fpb.FlowFilter = field(default_factory=fpb.FlowFilter)
    ns: dict[str, list[str]] = field(default_factory=lambda: {"source": [], "destination": []})
    touched: bool = False


@dataclass
class _Tracker:
    """One list (allow or deny): a filter, split into a source and a destination half
    by the first either-side flag."""

    left: _Half = field(default_factory=_Half)
    right: _Half | None = None

    def both(self, setter: _Setter) -> None:
        for half in (self.left, self.right):
            if half is not None:
                setter(half)
                half.touched = True

    def either(self, src: _Setter, dst: _Setter) -> None:
        if self.right is None:
            self.right = copy.deepcopy(self.left)
        src(self.left)
        dst(self.right)
        self.left.touched = self.right.touched = True

    def filters(self) -> list[fpb.FlowFilter]:
        return [_finish(h) for h in (self.left, self.right) if h is not None and h.touched]


def _finish(half: _Half) -> fpb.FlowFilter:
    ff = half.ff
    for side, pods in (("source", ff.source_pod), ("destination", ff.destination_pod)):
        namespaces = half.ns[side]
        if not namespaces:
            continue
        qualified = [p for p in pods if "/" in p]
        bare = [p for p in pods if "/" not in p]
        combined = ([f"{ns}/{p}" for ns in namespaces for p in bare] if bare
                    else [] if qualified else [f"{ns}/" for ns in namespaces])
        del pods[:]
        pods.extend(qualified + combined)
    return ff


def _field(name: str, value: FilterValue) -> _Setter:
    def set_(half: _Half) -> None:
        target = getattr(half.ff, name)   # a repeated field, named by the flag table
        if isinstance(value, _MESSAGES):
            target.add().CopyFrom(value)
        else:
            target.append(value)
    return set_


def _ns(side: str, value: str) -> _Setter:
    return lambda half: half.ns[side].append(value)


def _identity(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return int(ReservedIdentity[text.upper().replace("-", "_")])
    except KeyError:
        raise argparse.ArgumentTypeError(f"identity {text!r}: a number or a reserved name "
                                         "(world, host, ...)") from None


def _enum(value_of: Callable[[str], int], names: Sequence[str], what: str
          ) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            return value_of(text.upper())
        except ValueError:
            known = [n for n in names if "UNKNOWN" not in n]
            raise argparse.ArgumentTypeError(f"{what} {text!r}: use one of "
                                             f"{', '.join(known)}") from None
    return convert


def _workload(text: str) -> fpb.Workload:
    """"[kind/]name", as `hubble observe --workload` reads it ("Deployment/" is a kind)."""
    kind, sep, name = text.partition("/")
    return fpb.Workload(kind=kind, name=name) if sep else fpb.Workload(name=text)


def _ip_version(text: str) -> int:
    versions = {"4": fpb.IPv4, "v4": fpb.IPv4, "ipv4": fpb.IPv4, "6": fpb.IPv6,
                "v6": fpb.IPv6, "ipv6": fpb.IPv6, "none": fpb.IP_NOT_USED}
    try:
        return versions[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"ip version {text!r}: use v4, v6 or none") from None


def _checked_type(text: str) -> str:
    """--type is checked as the command line is parsed: a bad one is a usage error."""
    try:
        parse_type(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def type_help() -> str:
    subtypes = {t: ", ".join(names) for t, names in SUBTYPES.items()}
    return "event type TYPE[:SUBTYPE]: " + "; ".join(
        f"{name}" + (f" ({subtypes[n]})" if n in subtypes else "")
        for name, n in EVENT_TYPES.items())


# flag dest -> (kind, field suffix, converter). kind: from/to/either/both/ns-*.
_FILTER_FLAGS: dict[str, tuple[str, str, Callable[[str], FilterValue]]] = {
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
    "verdict": ("both", "verdict", _enum(fpb.Verdict.Value, fpb.Verdict.keys(), "verdict")),
    "traffic_direction": ("both", "traffic_direction",
                          _enum(fpb.TrafficDirection.Value, fpb.TrafficDirection.keys(),
                                "traffic direction")),
    "protocol": ("both", "protocol", str),
    "is_reply": ("both", "reply", lambda v: v.lower() in ("true", "1", "yes")),
    "tcp_flags": ("both", "tcp_flags", parse_flags),
    "type": ("both", "event_type", parse_type),
    "node_name": ("both", "node_name", str),
    "node_label": ("both", "node_labels", str),
    "drop_reason_desc": ("both", "drop_reason_desc",
                         _enum(fpb.DropReason.Value, fpb.DropReason.keys(), "drop reason")),
    "from_workload": ("from", "workload", _workload),
    "to_workload": ("to", "workload", _workload),
    "workload": ("either", "workload", _workload),
    "all_namespaces": ("ns-either", "", str), "from_all_namespaces": ("ns-from", "", str),
    "to_all_namespaces": ("ns-to", "", str),
    "from_fqdn": ("from", "fqdn", str), "to_fqdn": ("to", "fqdn", str),
    "fqdn": ("either", "fqdn", str),
    "uuid": ("both", "uuid", str),
    "interface": ("both", "interface", lambda v: fpb.NetworkInterface(name=v)),
    "ip_version": ("both", "ip_version", _ip_version),
}
# Flags that take no value on the command line, and what they mean.
_IMPLIED = {"all_namespaces": "", "from_all_namespaces": "", "to_all_namespaces": ""}


def raw_filter(text: str) -> fpb.FlowFilter:
    """A FlowFilter written as JSON ('{"source_pod":["kube-system/"]}'), as Hubble's
    --allowlist/--denylist and its export filters take them."""
    try:
        return json_format.Parse(text, fpb.FlowFilter())
    except json_format.ParseError as err:
        raise MembraneError(f"filter {text!r}: not a FlowFilter in JSON: {err}") from None


def build_filters(items: Sequence[FilterItem], allowlist: Sequence[str] = (),
                  denylist: Sequence[str] = ()
                  ) -> tuple[list[fpb.FlowFilter], list[fpb.FlowFilter]]:
    """Ordered (negated, flag, value) -> (whitelist, blacklist), with the raw JSON
    filters after. A value that cannot be converted is a MembraneError naming it."""
    allow, deny = _Tracker(), _Tracker()
    for negated, flag, raw in items:
        kind, suffix, convert = _FILTER_FLAGS[flag]
        try:
            value = convert(raw)
        except (ValueError, KeyError) as err:
            raise MembraneError(f"--{flag.replace('_', '-')} {raw}: {err}") from None
        except argparse.ArgumentTypeError as err:   # its message says what was wrong
            raise MembraneError(str(err)) from None
        t = deny if negated else allow
        if kind == "from":
            t.both(_field(f"source_{suffix}", value))
        elif kind == "to":
            t.both(_field(f"destination_{suffix}", value))
        elif kind == "either":
            t.either(_field(f"source_{suffix}", value), _field(f"destination_{suffix}", value))
        elif kind == "ns-from":
            t.both(_ns("source", _IMPLIED.get(flag, raw)))
        elif kind == "ns-to":
            t.both(_ns("destination", _IMPLIED.get(flag, raw)))
        elif kind == "ns-either":
            t.either(_ns("source", _IMPLIED.get(flag, raw)),
                     _ns("destination", _IMPLIED.get(flag, raw)))
        else:
            t.both(_field(suffix, value))
    return ([*allow.filters(), *map(raw_filter, allowlist)],
            [*deny.filters(), *map(raw_filter, denylist)])


class _FilterAction(argparse.Action):
    """Records filter flags in order, with whether a --not came right before."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        items: list[FilterItem] = list(getattr(ns, "filter_items", None) or [])
        if values is None or values == []:     # a flag without a value (-4, --is-reply)
            value = self.const if isinstance(self.const, str) else "true"
        else:
            value = str(values)
        items.append((bool(getattr(ns, "negate_next", False)), self.dest, value))
        ns.filter_items = items
        ns.negate_next = False


class _NotAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        ns.negate_next = True


def add_filter_flags(parser: argparse.ArgumentParser) -> None:
    """The filter flags; the parsed items land in `args.filter_items`."""
    flt = parser.add_argument_group("filters (repeat a flag to OR its values; --not negates "
                                    "the next filter)")
    parser.set_defaults(filter_items=[], negate_next=False)

    def add(*names: str, metavar: str, help: str, nargs: int | str | None = None,
            const: str | None = None, choices: Sequence[str] | None = None,
            check: Callable[[str], str] | None = None) -> None:
        flt.add_argument(*names, action=_FilterAction, metavar=metavar, help=help,
                         nargs=nargs, const=const, choices=choices, type=check or str)

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
    add("-t", "--type", metavar="TYPE[:SUBTYPE]", help=type_help(), check=_checked_type)
    add("--drop-reason-desc", metavar="REASON",
        help="drop reason by Hubble's name: POLICY_DENIED, INVALID_SOURCE_IP, ...")
    add("--from-workload", metavar="[KIND/]NAME", help="source workload (Deployment/web)")
    add("--to-workload", metavar="[KIND/]NAME", help="destination workload")
    add("--workload", metavar="[KIND/]NAME", help="source or destination workload")
    add("-A", "--all-namespaces", metavar="", nargs=0,
        help="flows with a pod in any namespace on either side")
    add("--from-all-namespaces", metavar="", nargs=0, help="a pod in any namespace as source")
    add("--to-all-namespaces", metavar="", nargs=0,
        help="a pod in any namespace as destination")
    add("--from-fqdn", metavar="PATTERN", help="source DNS name (*.example.com)")
    add("--to-fqdn", metavar="PATTERN", help="destination DNS name")
    add("--fqdn", metavar="PATTERN", help="source or destination DNS name")
    add("--ip-version", metavar="V", help="v4, v6 or none")
    add("--interface", metavar="NAME", help="the local endpoint's host-side interface")
    add("--uuid", metavar="UUID", help="one flow by its uuid (Membrane's flows carry none)")
    add("--node-name", metavar="PATTERN", help="flows of nodes matching (node1, node*)")
    add("--node-label", metavar="SELECTOR", help="flows of nodes whose labels match")
    for short, long, version in (("-4", "--ipv4", "4"), ("-6", "--ipv6", "6")):
        flt.add_argument(short, long, dest="ip_version", action=_FilterAction, nargs=0,
                         const=version, help=f"IPv{version} flows only (--ip-version {version})")
    raw = parser.add_argument_group("raw filters")
    raw.add_argument("--allowlist", metavar="JSON", action="append", default=[],
                     help='a FlowFilter as JSON, e.g. \'{"source_pod":["default/"]}\'')
    raw.add_argument("--denylist", metavar="JSON", action="append", default=[],
                     help="a FlowFilter as JSON that excludes")
