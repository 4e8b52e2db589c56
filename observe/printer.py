"""Printers for `membrane observe`: compact, json, jsonpb, dict, table.

The compact line reads like `hubble observe`'s:

  Jan 26 09:07:03.396: default/not-frontend-7db9747986-gktg6:45002 (ID:84671) <> default/backend-6f884b6495-69bbh:8080 (ID:68421) Policy denied DROPPED (TCP Flags: SYN)

`<>` when the datapath could not tell which way the connection goes (a denied packet),
`->` in the direction of travel, and for a reply the arrow and the ends flip (`<-`), so
the client is always on the left. Lost events print as `EVENTS LOST: <source> <n>`; a
relay's node status events go to the error stream, as Hubble's do.

Options as `hubble observe`'s: the node name, the policy names behind a verdict
(`ALLOWED BY default/allow-frontend`; for a policy drop, the policies that isolated the
pod), numeric (addresses and identity numbers instead of names), a time format
(observe.timeformat) and color (verdicts, hosts, identities; compact and dict only).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass
from typing import TextIO

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from core.addresses import join_host_port
from identity.reserved import ReservedIdentity, is_reserved
from observe.events import match_type_name
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE, TRACE_POINT_NAMES
from observe.flow import drop_reason_description, l4_ports, policy_text, traffic_direction_name
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.relay import relay_pb2 as rpb
from observe.timeformat import DEFAULT, format_ns

FORMATS = ("compact", "json", "jsonpb", "dict", "table")
_RESET = "\033[0m"
_COLORS = {"green": "\033[32m", "red": "\033[31m", "yellow": "\033[33m",
           "cyan": "\033[36m", "magenta": "\033[35m"}


@dataclass(frozen=True)
class PrintOptions:
    tz: dt.tzinfo | None = None          # None: the local zone
    node_name: bool = False
    policy_names: bool = False
    numeric: bool = False
    time_format: str = DEFAULT
    color: bool = False

    def paint(self, text: str, color: str) -> str:
        return f"{_COLORS[color]}{text}{_RESET}" if self.color and text else text


def format_time(ts: Timestamp, tz: dt.tzinfo | None = None, layout: str = DEFAULT) -> str:
    """"Jan 26 09:07:03.396" (Go's StampMilli: day padded with a space) by default."""
    return format_ns(ts.ToNanoseconds(), layout, tz)


def identity_text(identity: int, numeric: bool = False) -> str:
    if is_reserved(identity) and not numeric:
        try:
            return ReservedIdentity(identity).label_name
        except ValueError:
            pass
    return f"ID:{identity}"


def endpoint_text(ep: fpb.Endpoint, ip: str, port: int | None, numeric: bool = False) -> str:
    host = f"{ep.namespace}/{ep.pod_name}" if ep.pod_name and not numeric else ip
    return join_host_port(host, port) if port is not None else host


def _ends(flow: fpb.Flow, opts: PrintOptions) -> tuple[str, str, str, str, str]:
    """(source, arrow, destination, source host, destination host) in reading order."""
    ports = l4_ports(flow)
    src_host = endpoint_text(flow.source, flow.IP.source, ports[0] if ports else None,
                             opts.numeric)
    dst_host = endpoint_text(flow.destination, flow.IP.destination,
                             ports[1] if ports else None, opts.numeric)
    src_id = opts.paint(f"({identity_text(flow.source.identity, opts.numeric)})", "magenta")
    dst_id = opts.paint(f"({identity_text(flow.destination.identity, opts.numeric)})",
                        "magenta")
    src = f"{opts.paint(src_host, 'cyan')} {src_id}"
    dst = f"{opts.paint(dst_host, 'cyan')} {dst_id}"
    if not flow.HasField("is_reply"):
        return src, "<>", dst, src_host, dst_host
    if flow.is_reply.value:
        return dst, "<-", src, dst_host, src_host
    return src, "->", dst, src_host, dst_host


def type_text(flow: fpb.Flow) -> str:
    """What happened: "Policy denied", "policy-verdict:none INGRESS", "to-endpoint"."""
    et = flow.event_type.type
    if et == MSG_POLICY_VERDICT:
        return (f"policy-verdict:{match_type_name(flow.policy_match_type)} "
                f"{traffic_direction_name(flow.traffic_direction)}")
    if et == MSG_DROP or flow.verdict == fpb.DROPPED:
        return drop_reason_description(flow.drop_reason or flow.event_type.sub_type)
    if et == MSG_TRACE:
        return TRACE_POINT_NAMES.get(flow.event_type.sub_type, "unknown")
    return "unknown"


def verdict_text(flow: fpb.Flow) -> str:
    name = str(fpb.Verdict.Name(flow.verdict))
    if flow.event_type.type == MSG_POLICY_VERDICT:
        # Hubble words a policy decision as an action, not as a packet's fate.
        return {"FORWARDED": "ALLOWED", "DROPPED": "DENIED", "AUDIT": "AUDITED"}.get(name, name)
    return name


def policy_names_text(flow: fpb.Flow) -> str:
    """The policies the flow names for its verdict in its direction ("ns/a,ns/b")."""
    ingress = flow.traffic_direction == fpb.INGRESS
    if flow.verdict == fpb.FORWARDED:
        policies = flow.ingress_allowed_by if ingress else flow.egress_allowed_by
    else:
        policies = flow.ingress_denied_by if ingress else flow.egress_denied_by
    return ",".join(policy_text(p) for p in policies)


def _verdict(flow: fpb.Flow, opts: PrintOptions) -> str:
    text = verdict_text(flow)
    color = ("green" if flow.verdict == fpb.FORWARDED else
             "yellow" if flow.verdict == fpb.AUDIT else "red")
    painted = opts.paint(text, color)
    names = policy_names_text(flow) if opts.policy_names else ""
    return f"{painted} BY {names}" if names else painted


def format_compact(flow: fpb.Flow, tz: dt.tzinfo | None = None, node: bool = False,
                   opts: PrintOptions | None = None) -> str:
    opts = opts or PrintOptions(tz=tz, node_name=node)
    src, arrow, dst, _, _ = _ends(flow, opts)
    prefix = f" [{flow.node_name}]" if opts.node_name and flow.node_name else ""
    return (f"{format_time(flow.time, opts.tz, opts.time_format)}{prefix}: {src} {arrow} "
            f"{dst} {type_text(flow)} {_verdict(flow, opts)} ({flow.Summary})")


def format_lost(lost: fpb.LostEvent) -> str:
    return f"EVENTS LOST: {fpb.LostEventSource.Name(lost.source)} {lost.num_events_lost}"


def format_node_status(resp: opb.GetFlowsResponse, opts: PrintOptions) -> str:
    """A relay's node status event, worded as Hubble's."""
    st = resp.node_status
    names = ", ".join(st.node_names)
    n = len(st.node_names)
    prefix = f"{format_time(resp.time, opts.tz, opts.time_format)} [{resp.node_name}]"
    state = st.state_change
    if state == rpb.NODE_CONNECTED:
        return f"{prefix}: Receiving flows from {n} nodes: {names}"
    if state == rpb.NODE_UNAVAILABLE:
        why = f" ({st.message})" if st.message else ""
        return f"{prefix}: {n} nodes are unavailable: {names}{why}"
    if state == rpb.NODE_GONE:
        return f"{prefix}: {n} nodes removed from cluster: {names}"
    if state == rpb.NODE_ERROR:
        return f"{prefix}: Error {json.dumps(st.message)} on {n} nodes: {names}"
    return f"{prefix}: unknown node status event on {names}"


def _json(resp: opb.GetFlowsResponse, proto_names: bool) -> str:
    return json.dumps(json_format.MessageToDict(resp, preserving_proto_field_name=proto_names),
                      separators=(",", ":"))


class Printer:
    """Writes GetFlowsResponse messages in one format. Call close() at the end (the
    table aligns its columns over everything it printed)."""

    def __init__(self, output: str, out: TextIO, tz: dt.tzinfo | None = None,
                 node_name: bool = False, follow: bool = False,
                 opts: PrintOptions | None = None, err: TextIO | None = None) -> None:
        if output not in FORMATS:
            raise ValueError(f"output {output!r}: use one of {', '.join(FORMATS)}")
        self.output = output
        self.out = out
        self.err = err if err is not None else sys.stderr
        self.opts = opts or PrintOptions(tz=tz, node_name=node_name)
        if output in ("json", "jsonpb", "table") and self.opts.color:
            # Colors are for people reading compact or dict output, never in data.
            self.opts = PrintOptions(**{**self.opts.__dict__, "color": False})
        self.follow = follow
        self._rows: list[list[str]] = []
        self._dict_count = 0

    def write(self, resp: opb.GetFlowsResponse) -> None:
        kind = resp.WhichOneof("response_types")
        if kind == "node_status":
            self._node_status(resp)
        elif self.output == "json":
            # Hubble's JSON: the response with proto field names ("node_name", "IP").
            self._line(_json(resp, proto_names=True))
        elif self.output == "jsonpb":
            # The canonical protobuf JSON mapping (lowerCamelCase), for generic tools.
            self._line(_json(resp, proto_names=False))
        elif kind == "lost_events":
            self._lost(resp.lost_events)
        elif kind == "flow":
            {"compact": self._compact, "dict": self._dict,
             "table": self._table}[self.output](resp.flow)

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        if self.follow:
            self.out.flush()

    def _node_status(self, resp: opb.GetFlowsResponse) -> None:
        if self.output in ("json", "jsonpb"):
            text = _json(resp, proto_names=self.output == "json")
        else:
            text = format_node_status(resp, self.opts)
        self.err.write(text + "\n")
        self.err.flush()

    def _lost(self, lost: fpb.LostEvent) -> None:
        if self.output == "table":
            self._table_row([format_lost(lost)] + [""] * (len(self._header()) - 1))
        else:
            self._line(format_lost(lost))

    def _compact(self, flow: fpb.Flow) -> None:
        self._line(format_compact(flow, opts=self.opts))

    def _dict(self, flow: fpb.Flow) -> None:
        _, _, _, src, dst = _ends(flow, self.opts)
        if self._dict_count:
            self._line("------------")
        self._dict_count += 1
        rows = [("TIMESTAMP", format_time(flow.time, self.opts.tz, self.opts.time_format)),
                ("SOURCE", src), ("DESTINATION", dst), ("TYPE", type_text(flow)),
                ("VERDICT", _verdict(flow, PrintOptions(color=self.opts.color))),
                ("SUMMARY", flow.Summary)]
        if self.opts.node_name:
            rows.insert(1, ("NODE", flow.node_name))
        if self.opts.policy_names:
            rows.append(("POLICIES", policy_names_text(flow)))
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            self._line(f"{key:>{width}}: {value}")

    def _header(self) -> list[str]:
        header = ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]
        if self.opts.node_name:
            header.insert(1, "NODE")
        if self.opts.policy_names:
            header.append("POLICIES")
        return header

    def _table(self, flow: fpb.Flow) -> None:
        _, _, _, src, dst = _ends(flow, self.opts)
        row = [format_time(flow.time, self.opts.tz, self.opts.time_format), src, dst,
               type_text(flow), verdict_text(flow), flow.Summary]
        if self.opts.node_name:
            row.insert(1, flow.node_name)
        if self.opts.policy_names:
            row.append(policy_names_text(flow))
        self._table_row(row)

    def _table_row(self, row: list[str]) -> None:
        if not self.follow:
            self._rows.append(row)
            return
        # Following: rows cannot wait for the widest one; align to the header.
        header = self._header()
        if not self._rows:
            self._rows.append(header)
            self._line(_align([header], [len(h) for h in header])[0])
        widths = [max(len(h), 20) for h in header]
        self._line(_align([row], widths)[0])

    def close(self) -> None:
        if self.output == "table" and not self.follow:
            header = self._header()
            rows = [header, *self._rows]
            widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
            for line in _align(rows, widths):
                self._line(line)
            self._rows = []
        self.out.flush()


def _align(rows: list[list[str]], widths: list[int]) -> list[str]:
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
