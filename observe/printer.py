"""Printers for `membrane observe`: compact, json, jsonpb, dict, table.

The compact line reads like `hubble observe`'s:

  Jan 26 09:07:03.396: default/not-frontend-7db9747986-gktg6:45002 (ID:84671) <> default/backend-6f884b6495-69bbh:8080 (ID:68421) Policy denied DROPPED (TCP Flags: SYN)

`<>` when the datapath could not tell which way the connection goes (a denied packet),
`->` in the direction of travel, and for a reply the arrow and the ends flip (`<-`), so
the client is always on the left. Lost events print as `EVENTS LOST: <source> <n>`.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TextIO

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from identity.reserved import ReservedIdentity, is_reserved
from observe.events import match_type_name
from observe.flow import MSG_DROP, MSG_POLICY_VERDICT, MSG_TRACE, TRACE_TO_ENDPOINT
from observe.flow import drop_reason_description, l4_ports, traffic_direction_name
from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb

FORMATS = ("compact", "json", "jsonpb", "dict", "table")


def format_time(ts: Timestamp, tz: dt.tzinfo | None = None) -> str:
    """"Jan 26 09:07:03.396" (Go's StampMilli: day padded with a space)."""
    nanos = ts.ToNanoseconds()
    when = dt.datetime.fromtimestamp(nanos / 1e9, tz=tz or _local_tz())
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S}.{(nanos // 1_000_000) % 1000:03d}"


def _local_tz() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo or dt.timezone.utc


def identity_text(identity: int) -> str:
    if is_reserved(identity):
        try:
            return ReservedIdentity(identity).label_name
        except ValueError:
            pass
    return f"ID:{identity}"


def endpoint_text(ep: fpb.Endpoint, ip: str, port: int | None) -> str:
    host = f"{ep.namespace}/{ep.pod_name}" if ep.pod_name else ip
    if port is not None and ":" in host:
        return f"[{host}]:{port}"   # an IPv6 address, as Go's net.JoinHostPort writes it
    return f"{host}:{port}" if port is not None else host


def _ends(flow: fpb.Flow) -> tuple[str, str, str, str, str]:
    """(source, arrow, destination, source host, destination host) in reading order."""
    ports = l4_ports(flow)
    src_host = endpoint_text(flow.source, flow.IP.source, ports[0] if ports else None)
    dst_host = endpoint_text(flow.destination, flow.IP.destination,
                             ports[1] if ports else None)
    src = f"{src_host} ({identity_text(flow.source.identity)})"
    dst = f"{dst_host} ({identity_text(flow.destination.identity)})"
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
        return "to-endpoint" if flow.event_type.sub_type == TRACE_TO_ENDPOINT else "from-endpoint"
    return "unknown"


def verdict_text(flow: fpb.Flow) -> str:
    name = str(fpb.Verdict.Name(flow.verdict))
    if flow.event_type.type == MSG_POLICY_VERDICT:
        # Hubble words a policy decision as an action, not as a packet's fate.
        return {"FORWARDED": "ALLOWED", "DROPPED": "DENIED", "AUDIT": "AUDITED"}.get(name, name)
    return name


def format_compact(flow: fpb.Flow, tz: dt.tzinfo | None = None, node: bool = False) -> str:
    src, arrow, dst, _, _ = _ends(flow)
    prefix = f" [{flow.node_name}]" if node and flow.node_name else ""
    return (f"{format_time(flow.time, tz)}{prefix}: {src} {arrow} {dst} {type_text(flow)} "
            f"{verdict_text(flow)} ({flow.Summary})")


def format_lost(lost: fpb.LostEvent) -> str:
    return f"EVENTS LOST: {fpb.LostEventSource.Name(lost.source)} {lost.num_events_lost}"


def _json(resp: opb.GetFlowsResponse, proto_names: bool) -> str:
    return json.dumps(json_format.MessageToDict(resp, preserving_proto_field_name=proto_names),
                      separators=(",", ":"))


class Printer:
    """Writes GetFlowsResponse messages in one format. Call close() at the end (the
    table aligns its columns over everything it printed)."""

    def __init__(self, output: str, out: TextIO, tz: dt.tzinfo | None = None,
                 node_name: bool = False, follow: bool = False) -> None:
        if output not in FORMATS:
            raise ValueError(f"output {output!r}: use one of {', '.join(FORMATS)}")
        self.output = output
        self.out = out
        self.tz = tz
        self.node_name = node_name
        self.follow = follow
        self._rows: list[list[str]] = []
        self._dict_count = 0

    def write(self, resp: opb.GetFlowsResponse) -> None:
        kind = resp.WhichOneof("response_types")
        if self.output == "json":
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

    def _lost(self, lost: fpb.LostEvent) -> None:
        if self.output == "table":
            self._table_row([format_lost(lost), "", "", "", "", ""])
        else:
            self._line(format_lost(lost))

    def _compact(self, flow: fpb.Flow) -> None:
        self._line(format_compact(flow, self.tz, self.node_name))

    def _dict(self, flow: fpb.Flow) -> None:
        _, _, _, src, dst = _ends(flow)
        if self._dict_count:
            self._line("------------")
        self._dict_count += 1
        rows = [("TIMESTAMP", format_time(flow.time, self.tz)), ("SOURCE", src),
                ("DESTINATION", dst), ("TYPE", type_text(flow)),
                ("VERDICT", verdict_text(flow)), ("SUMMARY", flow.Summary)]
        if self.node_name:
            rows.insert(1, ("NODE", flow.node_name))
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            self._line(f"{key:>{width}}: {value}")

    _HEADER = ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"]

    def _table(self, flow: fpb.Flow) -> None:
        _, _, _, src, dst = _ends(flow)
        self._table_row([format_time(flow.time, self.tz), src, dst, type_text(flow),
                         verdict_text(flow), flow.Summary])

    def _table_row(self, row: list[str]) -> None:
        if not self.follow:
            self._rows.append(row)
            return
        # Following: rows cannot wait for the widest one; align to the header.
        if not self._rows:
            self._rows.append(self._HEADER)
            self._line(_align([self._HEADER], [len(h) for h in self._HEADER])[0])
        widths = [max(len(h), 20) for h in self._HEADER]
        self._line(_align([row], widths)[0])

    def close(self) -> None:
        if self.output == "table" and not self.follow:
            rows = [self._HEADER, *self._rows]
            widths = [max(len(r[i]) for r in rows) for i in range(len(self._HEADER))]
            for line in _align(rows, widths):
                self._line(line)
            self._rows = []
        self.out.flush()


def _align(rows: list[list[str]], widths: list[int]) -> list[str]:
    return ["   ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
