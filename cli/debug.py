"""Agent debugging: `membrane endpoint ...`, `membrane bpf ...`, `membrane status`."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from agent.api.client import AgentClient
from agent.api.gen import agent_pb2 as pb
from cli.command import Subparsers, add_command, add_group
from cli.connection import add_connection_flags, agent_client
from cli.output import add_output_flag, message_dict, print_json, print_messages, print_table

EXAMPLES = """\
membrane endpoint list
membrane endpoint get 12 -o json
membrane bpf policy get 12
membrane bpf ct list --lab membrane
membrane status --lab membrane --node node2
"""


def register(subparsers: Subparsers) -> None:
    def command(parent: Subparsers, name: str, help: str) -> argparse.ArgumentParser:
        p = add_command(parent, name, help=help, examples=EXAMPLES)
        add_connection_flags(p)
        add_output_flag(p, "table", "json")
        return p

    ep = add_group(subparsers, "endpoint", help="local endpoints", examples=EXAMPLES)
    command(ep, "list", "endpoints, identities, enforcement and status").set_defaults(
        func=endpoint_list)
    get = command(ep, "get", "one endpoint")
    get.add_argument("id", help="endpoint id, or ns/pod")
    get.set_defaults(func=endpoint_get)

    bpf = add_group(subparsers, "bpf", help="the BPF maps as they are in the kernel",
                    examples=EXAMPLES, metavar="MAP")
    pol = add_group(bpf, "policy", help="policy map", examples=EXAMPLES)
    pget = command(pol, "get", "an endpoint's policy map entries")
    pget.add_argument("id", help="endpoint id, or ns/pod")
    pget.set_defaults(func=bpf_policy_get)
    ct = add_group(bpf, "ct", help="conntrack", examples=EXAMPLES)
    command(ct, "list", "conntrack entries").set_defaults(func=bpf_ct_list)
    ipc = add_group(bpf, "ipcache", help="address -> identity", examples=EXAMPLES)
    command(ipc, "list", "ipcache and cidr entries").set_defaults(func=bpf_ipcache_list)

    command(subparsers, "status", "agent health, endpoints, maps, flows").set_defaults(
        func=status)


def _endpoint_id(client: AgentClient, text: str) -> int:
    if "/" in text:
        ns, pod = text.split("/", 1)
        return int(client.get_endpoint(namespace=ns, pod=pod).id)
    return int(text)


def _enforcement(enabled: bool, audit: bool = False) -> str:
    """Cilium's words: policy in force, or audited ("Disabled (Audit)": it would be
    enforced, and denials pass instead)."""
    if enabled and audit:
        return "Disabled (Audit)"
    return "Enabled" if enabled else "Disabled"


def endpoint_list(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        endpoints = client.list_endpoints()
    # The seed's layout: a two-line header, one label per line under LABELS.
    print_messages(
        args.output, endpoints,
        ["ENDPOINT", "POLICY (ingress)\nENFORCEMENT", "POLICY (egress)\nENFORCEMENT",
         "IDENTITY", "LABELS (source:key[=value])", "IPv6", "IPv4", "STATUS"],
        lambda e: [str(e.id or "-"), _enforcement(e.ingress_enforced, e.policy_audit),
                   _enforcement(e.egress_enforced, e.policy_audit), str(e.identity or "-"),
                   "\n".join(e.labels) or _pod_of(e), e.ipv6, e.ipv4, _state(e)])
    unmanaged = [e for e in endpoints if e.state == "unmanaged"]
    if unmanaged and args.output != "json":
        print(f"\n{len(unmanaged)} unmanaged: {unmanaged[0].error}", file=sys.stderr)
    return 0


def _pod_of(ep: Any) -> str:
    """An unmanaged pod's row names the pod (it has no identity, so no labels)."""
    return f"pod {ep.namespace}/{ep.pod}" if ep.state == "unmanaged" else "-"


def _state(ep: pb.Endpoint) -> str:
    """The state, and under it why when the endpoint is not ready (wrapped to the
    column; unmanaged pods' reason is said once, below the table)."""
    if not ep.error or ep.state in ("ready", "unmanaged"):
        return ep.state
    return "\n".join([ep.state, *textwrap.wrap(ep.error, 40)])


def endpoint_get(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        ep = client.get_endpoint(endpoint_id=_endpoint_id(client, args.id))
    data = message_dict(ep, with_defaults=True)
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
    with agent_client(args) as client:
        reply = client.bpf_policy(_endpoint_id(client, args.id))
    if args.output == "json":
        print_json(message_dict(reply))
        return 0
    print(f"endpoint {reply.endpoint}: ingress {_enforcement(reply.ingress_enforced).lower()}, "
          f"egress {_enforcement(reply.egress_enforced).lower()}")
    rows = [[e.direction, str(e.identity) if e.identity else "ANY", "\n".join(e.labels),
             e.protocol, _ports(e.port_low, e.port_high, e.protocol), e.match_type,
             e.tiers or "-", str(e.packets), str(e.bytes)] for e in reply.entries]
    print_table(["DIRECTION", "IDENTITY", "LABELS", "PROTO", "PORT", "MATCH", "TIERS",
                 "PACKETS", "BYTES"], rows)
    return 0


def bpf_ct_list(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        entries = client.bpf_conntrack()
    # (no packet counts: the datapath counts per connection only with its ct_accounting
    # option, off by default to keep packets cheap)
    print_messages(args.output, entries,
                   ["PROTO", "SOURCE", "DESTINATION", "EP", "DIR", "STATE", "EXPIRES"],
                   lambda e: [e.protocol, e.src, e.dst, str(e.endpoint), e.direction,
                              e.state, f"{e.expires_in_seconds:.0f}s"])
    return 0


def bpf_ipcache_list(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        entries = client.bpf_ipcache()
    print_messages(args.output, entries, ["PREFIX", "IDENTITY", "LABELS", "TABLE"],
                   lambda e: [e.prefix, str(e.identity), "\n".join(e.labels), e.table])
    return 0


def status(args: argparse.Namespace) -> int:
    with agent_client(args) as client:
        st = client.status()
    if args.output == "json":
        print_json(message_dict(st, with_defaults=True))
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
    _print_section("Unmanaged pods (running on this node without an endpoint):", st.unmanaged)
    _print_section("Rejected objects (what is in force instead):", st.rejected)
    _print_section("Object warnings:", st.object_warnings)
    # The errors field also carries these (older clients read them there).
    _print_section("Errors:", [e for e in st.errors
                               if e not in set(st.rejected) | set(st.unmanaged)])
    return 0 if st.healthy else 1


def _print_section(title: str, lines: Sequence[str]) -> None:
    """A titled, indented list; nothing at all when it is empty."""
    if lines:
        print(title)
        for line in lines:
            print(f"  {line}")
