"""A flow as the page shows it: plain JSON-ready data, made once per flow received.

The page's table, its detail panel and the service map all read this shape (ui/static/
app.js); the protobuf Flow stays on the server, where the observe filters run on it.
Map node ids are decided here too, so the table and the map agree on what a side is:

    pod:<ns>/<pod>         a pod (the map folds pods into their workload)
    ip:<address>           anything else: the world, a node, an unmanaged address
"""

from __future__ import annotations

from typing import Any

from core.protocols import protocol_name
from identity.reserved import ReservedIdentity, is_cidr
from observe.flow import (drop_reason_name, l4_ports, policy_text, summary_of,
                          traffic_direction_name)
from observe.gen.flow import flow_pb2 as fpb

FlowView = dict[str, Any]

_L4_PROTOCOL = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMPv4": 1}


def side_id(endpoint: fpb.Endpoint, ip: str) -> str:
    if endpoint.namespace and endpoint.pod_name:
        return f"pod:{endpoint.namespace}/{endpoint.pod_name}"
    return f"ip:{ip or '?'}"


def peer_kind(endpoint: fpb.Endpoint) -> str:
    """pod, or the reserved identity's name (world, host, remote-node, ...), or cidr."""
    if endpoint.namespace and endpoint.pod_name:
        return "pod"
    if is_cidr(endpoint.identity):
        return "world"
    try:
        return ReservedIdentity(endpoint.identity).label_name
    except ValueError:
        return "world"


def _side(endpoint: fpb.Endpoint, ip: str, port: int | None) -> dict[str, Any]:
    workload = endpoint.workloads[0] if endpoint.workloads else None
    return {
        "id": side_id(endpoint, ip),
        "kind": peer_kind(endpoint),
        "namespace": endpoint.namespace,
        "pod": endpoint.pod_name,
        "workload": workload.name if workload else "",
        "workload_kind": workload.kind if workload else "",
        "identity": endpoint.identity,
        "labels": list(endpoint.labels),
        "ip": ip,
        "port": port,
    }


def flow_view(flow: fpb.Flow, seq: int, node: str = "") -> FlowView:
    ports = l4_ports(flow)
    kind = flow.l4.WhichOneof("protocol") or ""
    dropped = flow.verdict == fpb.DROPPED
    return {
        "seq": seq,
        "time": flow.time.ToJsonString() if flow.HasField("time") else "",
        "node": node or flow.node_name,
        "verdict": fpb.Verdict.Name(flow.verdict),
        "drop_reason": drop_reason_name(int(flow.drop_reason_desc)) if dropped else "",
        "protocol": protocol_name(_L4_PROTOCOL[kind]) if kind else "",
        "port": ports[1] if ports else None,
        "summary": summary_of(flow.l4),
        "direction": traffic_direction_name(flow.traffic_direction),
        "is_reply": flow.is_reply.value,
        "event_type": flow.event_type.type,
        "source": _side(flow.source, flow.IP.source, ports[0] if ports else None),
        "destination": _side(flow.destination, flow.IP.destination,
                             ports[1] if ports else None),
        "policies": {
            "ingress_allowed_by": [policy_text(p) for p in flow.ingress_allowed_by],
            "egress_allowed_by": [policy_text(p) for p in flow.egress_allowed_by],
            "ingress_denied_by": [policy_text(p) for p in flow.ingress_denied_by],
            "egress_denied_by": [policy_text(p) for p in flow.egress_denied_by],
        },
    }
