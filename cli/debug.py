"""Agent debugging: `membrane endpoint ...`, `membrane bpf ...`, `membrane status`."""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf.json_format import MessageToDict

from cli.common import add_client_args, client_from, print_json, print_table

EXAMPLES = """\
examples:
  membrane endpoint list
  membrane endpoint get 12 -o json
  membrane bpf policy get 12
  membrane bpf ct list --lab membrane
  membrane status --lab membrane --node node2
"""


def register(sub: Any) -> None:
    def parser(parent: Any, name: str, help_text: str) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help_text, epilog=EXAMPLES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        add_client_args(p)
        return p

    ep = sub.add_parser("endpoint", help="local endpoints").add_subparsers(dest="sub", metavar="VERB")
    parser(ep, "list", "endpoints, identities, enforcement and status").set_defaults(func=endpoint_list)
    get = parser(ep, "get", "one endpoint")
    get.add_argument("id", help="endpoint id, or ns/pod")
    get.set_defaults(func=endpoint_get)

    bpf = sub.add_parser("bpf", help="the BPF maps as they are in the kernel").add_subparsers(
        dest="map", metavar="MAP")
    pol = bpf.add_parser("policy", help="policy map").add_subparsers(dest="verb", metavar="VERB")
    pget = parser(pol, "get", "an endpoint's policy map entries")
    pget.add_argument("id", help="endpoint id, or ns/pod")
    pget.set_defaults(func=bpf_policy_get)
    ct = bpf.add_parser("ct", help="conntrack").add_subparsers(dest="verb", metavar="VERB")
    parser(ct, "list", "conntrack entries").set_defaults(func=bpf_ct_list)
    ipc = bpf.add_parser("ipcache", help="address -> identity").add_subparsers(dest="verb", metavar="VERB")
    parser(ipc, "list", "ipcache and cidr entries").set_defaults(func=bpf_ipcache_list)

    parser(sub, "status", "agent health, endpoints, maps, flows").set_defaults(func=status)


def _endpoint_id(client: Any, text: str) -> int:
    if "/" in text:
        ns, pod = text.split("/", 1)
        return int(client.get_endpoint(namespace=ns, pod=pod).id)
    return int(text)


def _enforcement(enabled: bool) -> str:
    return "Enabled" if enabled else "Disabled"


def endpoint_list(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        endpoints = client.list_endpoints()
    if args.output == "json":
        print_json([MessageToDict(e, preserving_proto_field_name=True) for e in endpoints])
        return 0
    # The seed's layout: a two-line header, one label per line under LABELS.
    headers = [["ENDPOINT", ""], ["POLICY (ingress)", "ENFORCEMENT"],
               ["POLICY (egress)", "ENFORCEMENT"], ["IDENTITY", ""],
               ["LABELS (source:key[=value])", ""], ["IPv6", ""], ["IPv4", ""], ["STATUS", ""]]
    rows = [[str(e.id), _enforcement(e.ingress_enforced), _enforcement(e.egress_enforced),
             str(e.identity), "\n".join(e.labels) or "-", e.ipv6, e.ipv4, e.state]
            for e in endpoints]
    widths = [max(len(h[0]), len(h[1])) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *(len(x) for x in cell.split("\n")))

    def emit(cells: list[str]) -> None:
        print("   ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())

    emit([h[0] for h in headers])
    emit([h[1] for h in headers])
    for row in rows:
        lines = [cell.split("\n") for cell in row]
        for n in range(max(len(x) for x in lines)):
            emit([cell[n] if n < len(cell) else "" for cell in lines])
    return 0


def endpoint_get(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        ep = client.get_endpoint(endpoint_id=_endpoint_id(client, args.id))
    data = MessageToDict(ep, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    if args.output == "json":
        print_json(data)
    else:
        for key, value in data.items():
            if isinstance(value, list):
                value = "\n  ".join([""] + [str(v) for v in value])
            print(f"{key}: {value}")
    return 0


def _ports(low: int, high: int, protocol: str) -> str:
    if protocol == "ANY" or (low, high) == (0, 65535):
        return "ANY"
    return str(low) if low == high else f"{low}-{high}"


def bpf_policy_get(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        reply = client.bpf_policy(_endpoint_id(client, args.id))
    if args.output == "json":
        print_json(MessageToDict(reply, preserving_proto_field_name=True))
        return 0
    print(f"endpoint {reply.endpoint}: ingress {_enforcement(reply.ingress_enforced).lower()}, "
          f"egress {_enforcement(reply.egress_enforced).lower()}")
    rows = [[e.direction, str(e.identity) if e.identity else "ANY", "\n".join(e.labels),
             e.protocol, _ports(e.port_low, e.port_high, e.protocol), e.match_type,
             str(e.packets), str(e.bytes)] for e in reply.entries]
    print_table(["DIRECTION", "IDENTITY", "LABELS", "PROTO", "PORT", "MATCH", "PACKETS", "BYTES"], rows)
    return 0


def _print_rows(args: argparse.Namespace, entries: list[Any], headers: list[str],
                row: Any) -> int:
    """`-o json`: the messages as dicts; otherwise a table of row(entry) per entry."""
    if args.output == "json":
        print_json([MessageToDict(e, preserving_proto_field_name=True) for e in entries])
    else:
        print_table(headers, [row(e) for e in entries])
    return 0


def bpf_ct_list(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        entries = client.bpf_conntrack()
    return _print_rows(args, entries,
                       # (no packet counts: the datapath counts per connection only with
                       # its ct_accounting option, off by default to keep packets cheap)
                       ["PROTO", "SOURCE", "DESTINATION", "EP", "DIR", "STATE", "EXPIRES"],
                       lambda e: [e.protocol, e.src, e.dst, str(e.endpoint), e.direction, e.state,
                                  f"{e.expires_in_seconds:.0f}s"])


def bpf_ipcache_list(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        entries = client.bpf_ipcache()
    return _print_rows(args, entries, ["PREFIX", "IDENTITY", "LABELS", "TABLE"],
                       lambda e: [e.prefix, str(e.identity), "\n".join(e.labels), e.table])


def status(args: argparse.Namespace) -> int:
    with client_from(args) as client:
        st = client.status()
    data = MessageToDict(st, preserving_proto_field_name=True,
                         always_print_fields_with_no_presence=True)
    if args.output == "json":
        print_json(data)
        return 0 if st.healthy else 1
    print(f"Node:            {st.node}   (membrane {st.version}, up {st.uptime_seconds:.0f}s)")
    print(f"Health:          {'OK' if st.healthy else 'DEGRADED: ' + st.message}")
    print(f"Source:          {st.source}, revision {st.store_revision}, applied {st.applied_revision}")
    states = ", ".join(f"{n} {s}" for s, n in sorted(st.endpoints_by_state.items())) or "none"
    print(f"Endpoints:       {states}")
    print(f"Identities:      {st.identities}")
    print(f"Regeneration:    last {st.last_regeneration_ms:.1f} ms")
    print(f"Flows:           {st.flows_seen} seen, lost: "
          + (", ".join(f"{c.name} {c.value}" for c in st.lost) or "none"))
    print("Maps:")
    for m in st.maps:
        pct = 100.0 * m.entries / m.max_entries if m.max_entries else 0.0
        warn = "  <- nearly full" if pct >= 90 else ""
        print(f"  {m.name:<14} {m.entries:>8} / {m.max_entries:<8} ({pct:.0f}%){warn}")
    if st.drops:
        print("Drops:")
        for c in st.drops:
            print(f"  {c.name:<30} {c.value}")
    if st.errors:
        print("Errors:")
        for e in st.errors:
            print(f"  {e}")
    return 0 if st.healthy else 1
