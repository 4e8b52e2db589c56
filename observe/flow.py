"""DatapathEvent -> Flow: the one place that decides what a flow says.

The event says what the datapath saw (addresses, identities, verdict, reason); the
`EndpointMetadata` the agent provides adds pods, namespaces, labels and workloads, and
the optional `PolicyNamer` the policies behind a verdict. `build_flow` makes everything
but the timestamp: observe.encoder serializes that once per kind of flow and reuses it
for every packet of the kind. Nothing here blocks or does I/O.
"""

from __future__ import annotations

import ipaddress

from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import BoolValue

from core.protocols import Direction, IPProtocol
from identity.reserved import ReservedIdentity, is_cidr
from observe.events import DatapathEvent, EventType
from observe.gen.flow import flow_pb2 as fpb
from observe.metadata import EndpointMetadata, PeerInfo, PolicyNamer, PolicyRef
from observe.reasons import DropReason, describe

# Cilium monitor message types (event_type.type) and trace observation points
# (event_type.sub_type of a trace), so numbers mean the same as in Hubble's output.
MSG_DROP = 1
MSG_TRACE = 4
MSG_POLICY_VERDICT = 9
TRACE_TO_ENDPOINT = 0     # to-container hook: into the local pod (Cilium's TraceToLxc)
TRACE_FROM_ENDPOINT = 5   # from-container hook: out of the local pod (TraceFromLxc)
# Cilium's names of the observation points (`--type trace:to-endpoint`), by sub_type.
TRACE_POINT_NAMES = {0: "to-endpoint", 1: "to-proxy", 2: "to-host", 3: "to-stack",
                     4: "to-overlay", 5: "from-endpoint", 6: "from-proxy", 7: "from-host",
                     8: "from-stack", 9: "from-overlay", 10: "from-network",
                     11: "to-network", 12: "from-crypto", 13: "to-crypto"}

# A flow's Layer4 oneof, by the IP protocol it carries (flow.proto names ICMP "ICMPv4").
L4_KINDS: dict[int, str] = {IPProtocol.TCP: "TCP", IPProtocol.UDP: "UDP",
                            IPProtocol.SCTP: "SCTP", IPProtocol.ICMP: "ICMPv4",
                            IPProtocol.ICMPV6: "ICMPv6"}

# Hubble's traffic_direction enum by the datapath's direction; same names.
_TRAFFIC_DIRECTIONS: dict[Direction, fpb.TrafficDirection.ValueType] = {
    d: fpb.TrafficDirection.Value(d.name) for d in Direction}
_DIRECTION_NAMES = {value: d.label for d, value in _TRAFFIC_DIRECTIONS.items()}

# The order Hubble prints TCP flags in ("SYN, ACK", "ACK, FIN", "ACK, PSH").
_TCP_FLAG_BITS = (("SYN", 0x02), ("ACK", 0x10), ("RST", 0x04), ("FIN", 0x01),
                  ("PSH", 0x08), ("URG", 0x20), ("ECE", 0x40), ("CWR", 0x80))

ICMPV4_TYPE_NAMES = {
    0: "EchoReply", 3: "DestinationUnreachable", 4: "SourceQuench", 5: "Redirect",
    8: "EchoRequest", 11: "TimeExceeded", 12: "ParameterProblem", 13: "TimestampRequest",
    14: "TimestampReply",
}
# gopacket's ICMPv6 type names, as Hubble's summaries print them.
ICMPV6_TYPE_NAMES = {
    1: "DestinationUnreachable", 2: "PacketTooBig", 3: "TimeExceeded", 4: "ParameterProblem",
    128: "EchoRequest", 129: "EchoReply", 133: "RouterSolicitation",
    134: "RouterAdvertisement", 135: "NeighborSolicitation", 136: "NeighborAdvertisement",
    137: "Redirect",
}

WORLD_LABELS = ["reserved:world"]
_DROP_REASON_NAMES = frozenset(fpb.DropReason.keys())
# Cilium's labels of a rule derived from a Kubernetes NetworkPolicy.
POLICY_LABEL_PREFIX = "k8s:io.cilium.k8s.policy."
# Membrane's label naming the rule of a cluster-wide tier policy that decided.
RULE_LABEL_PREFIX = "k8s:io.membrane.policy.rule="


def l4_ports(flow: fpb.Flow) -> tuple[int, int] | None:
    """(source port, destination port), or None for a flow without ports (ICMP)."""
    kind = flow.l4.WhichOneof("protocol")
    if kind == "TCP":
        return flow.l4.TCP.source_port, flow.l4.TCP.destination_port
    if kind == "UDP":
        return flow.l4.UDP.source_port, flow.l4.UDP.destination_port
    if kind == "SCTP":
        return flow.l4.SCTP.source_port, flow.l4.SCTP.destination_port
    return None


def traffic_direction_name(value: int) -> str:
    """"INGRESS" or "EGRESS" (core.protocols.Direction's names); "UNKNOWN" when unset."""
    return _DIRECTION_NAMES.get(fpb.TrafficDirection.ValueType(value), "UNKNOWN")


def drop_reason_name(code: int) -> str:
    """Hubble's name of a drop reason code ("POLICY_DENIED"), or "" if unknown."""
    try:
        return DropReason(code).name
    except ValueError:
        pass
    if code in fpb.DropReason.values():
        return fpb.DropReason.Name(fpb.DropReason.ValueType(code))
    return ""


def drop_reason_description(code: int) -> str:
    """The text Hubble prints for a drop ("Policy denied"); unknown codes by number."""
    return describe(code)


def tcp_flags_message(raw: int) -> fpb.TCPFlags:
    return fpb.TCPFlags(FIN=bool(raw & 0x01), SYN=bool(raw & 0x02), RST=bool(raw & 0x04),
                        PSH=bool(raw & 0x08), ACK=bool(raw & 0x10), URG=bool(raw & 0x20),
                        ECE=bool(raw & 0x40), CWR=bool(raw & 0x80))


def tcp_flags_text(flags: fpb.TCPFlags) -> str:
    names = [name for name, _ in _TCP_FLAG_BITS if getattr(flags, name)]
    if flags.NS:
        names.append("NS")
    return ", ".join(names)


def summary_of(l4: fpb.Layer4) -> str:
    kind = l4.WhichOneof("protocol")
    if kind == "TCP":
        return f"TCP Flags: {tcp_flags_text(l4.TCP.flags)}"
    if kind in ("UDP", "SCTP"):
        return str(kind)
    if kind == "ICMPv4":
        name = ICMPV4_TYPE_NAMES.get(l4.ICMPv4.type, f"Type{l4.ICMPv4.type}")
        return f"ICMPv4 {name}"
    if kind == "ICMPv6":
        name = ICMPV6_TYPE_NAMES.get(l4.ICMPv6.type, f"Type{l4.ICMPv6.type}")
        return f"ICMPv6 {name}"
    return ""


def policy_message(ref: PolicyRef) -> fpb.Policy:
    labels = [f"{POLICY_LABEL_PREFIX}derived-from={ref.kind}",
              f"{POLICY_LABEL_PREFIX}name={ref.name}"]
    if ref.namespace or ref.kind == "NetworkPolicy":
        labels.append(f"{POLICY_LABEL_PREFIX}namespace={ref.namespace}")
    if ref.rule:   # a cluster-wide tier policy's deciding rule
        labels.append(f"{RULE_LABEL_PREFIX}{ref.rule}")
    return fpb.Policy(name=ref.name, namespace=ref.namespace, kind=ref.kind,
                      revision=ref.revision, labels=labels)


def policy_text(policy: fpb.Policy) -> str:
    """"namespace/name" ("Kind/name" cluster-wide): how printers (and `policy trace`)
    name a policy."""
    return PolicyRef(policy.name, policy.namespace, policy.kind or "NetworkPolicy").text


def _layer4(event: DatapathEvent) -> fpb.Layer4:
    if event.protocol == IPProtocol.TCP:
        return fpb.Layer4(TCP=fpb.TCP(source_port=event.src_port,
                                      destination_port=event.dst_port,
                                      flags=tcp_flags_message(event.tcp_flags)))
    if event.protocol == IPProtocol.UDP:
        return fpb.Layer4(UDP=fpb.UDP(source_port=event.src_port,
                                      destination_port=event.dst_port))
    if event.protocol == IPProtocol.SCTP:
        return fpb.Layer4(SCTP=fpb.SCTP(source_port=event.src_port,
                                        destination_port=event.dst_port))
    if event.protocol == IPProtocol.ICMP:
        # The datapath packs ICMP as dst_port = type << 8 | code.
        return fpb.Layer4(ICMPv4=fpb.ICMPv4(type=(event.dst_port >> 8) & 0xFF,
                                            code=event.dst_port & 0xFF))
    if event.protocol == IPProtocol.ICMPV6:      # packed the same way
        return fpb.Layer4(ICMPv6=fpb.ICMPv6(type=(event.dst_port >> 8) & 0xFF,
                                            code=event.dst_port & 0xFF))
    return fpb.Layer4()


def _endpoint(peer: PeerInfo | None, event_identity: int, meta: EndpointMetadata,
              local_endpoint_id: int) -> fpb.Endpoint:
    # The datapath's identity is what the verdict was made with; prefer it, and fall
    # back to the agent's view only when the datapath had none.
    identity = event_identity or (peer.identity if peer else 0)
    if peer is not None and peer.identity == identity:
        labels = list(peer.labels)
    else:
        labels = meta.identity_labels(identity) if identity else []
    if not labels and identity and not is_cidr(identity):
        try:
            labels = ReservedIdentity(identity).labels.lines()
        except ValueError:
            pass
    if not identity and peer is None:
        # Nothing knows this address: outside the cluster.
        identity, labels = int(ReservedIdentity.WORLD), list(WORLD_LABELS)
    ep = fpb.Endpoint(
        ID=local_endpoint_id or (peer.endpoint_id if peer else 0),
        identity=identity,
        namespace=peer.namespace if peer else "",
        labels=sorted(labels),
        pod_name=peer.pod_name if peer else "",
    )
    if peer is not None:
        ep.workloads.extend(fpb.Workload(name=w.name, kind=w.kind) for w in peer.workloads)
    return ep


def _verdict(event: DatapathEvent) -> fpb.Verdict.ValueType:
    if event.type is EventType.DROP or not event.allowed:
        return fpb.DROPPED
    # Audit mode: policy denied it, the packet went through (Cilium's AUDIT verdict).
    return fpb.AUDIT if event.audit else fpb.FORWARDED


def _event_type(event: DatapathEvent) -> fpb.CiliumEventType:
    if event.type is EventType.DROP:
        return fpb.CiliumEventType(type=MSG_DROP, sub_type=event.drop_reason)
    if event.type is EventType.POLICY_VERDICT:
        return fpb.CiliumEventType(type=MSG_POLICY_VERDICT)
    point = (TRACE_TO_ENDPOINT if event.direction is Direction.INGRESS
             else TRACE_FROM_ENDPOINT)
    return fpb.CiliumEventType(type=MSG_TRACE, sub_type=point)


def _traffic_direction(event: DatapathEvent) -> fpb.TrafficDirection.ValueType:
    # The event's direction is the hook (into or out of the pod). Hubble's
    # traffic_direction is the connection's: a reply leaving a pod belongs to an
    # ingress connection, so replies flip.
    direction = event.direction
    if event.is_reply:
        direction = Direction.EGRESS if direction is Direction.INGRESS else Direction.INGRESS
    return _TRAFFIC_DIRECTIONS[direction]


def _add_policy_names(flow: fpb.Flow, event: DatapathEvent, namer: PolicyNamer) -> None:
    """Allowed policy verdicts name the allowing policies, policy drops the isolating
    ones, in the field of the policy's direction (the hook's)."""
    denied = event.drop_reason == DropReason.POLICY_DENIED
    if event.is_reply or not event.endpoint_id or not (
            event.type is EventType.POLICY_VERDICT or denied):
        return
    ingress = event.direction is Direction.INGRESS
    peer = event.src_identity if ingress else event.dst_identity
    port = event.dst_port if event.protocol in (IPProtocol.TCP, IPProtocol.UDP,
                                                IPProtocol.SCTP) else 0
    names = namer.policy_names(event.endpoint_id, event.direction, peer, event.protocol,
                               port)
    if flow.verdict == fpb.FORWARDED:
        target = flow.ingress_allowed_by if ingress else flow.egress_allowed_by
        refs = names.allowed_by
    else:
        target = flow.ingress_denied_by if ingress else flow.egress_denied_by
        refs = names.isolated_by
    target.extend(policy_message(r) for r in refs)


def build_flow(event: DatapathEvent, meta: EndpointMetadata,
               namer: PolicyNamer | None = None) -> fpb.Flow:
    """The Flow for one event, without its time (observe.encoder adds that per packet).
    Source and destination are the packet's own: at the ingress hook the local endpoint
    is the destination, at egress the source."""
    local_is_dst = event.direction is Direction.INGRESS
    src_peer = meta.lookup_ip(event.src_ip)
    dst_peer = meta.lookup_ip(event.dst_ip)
    source = _endpoint(src_peer, event.src_identity, meta,
                       0 if local_is_dst else event.endpoint_id)
    destination = _endpoint(dst_peer, event.dst_identity, meta,
                            event.endpoint_id if local_is_dst else 0)
    l4 = _layer4(event)
    version = ipaddress.ip_address(event.src_ip).version if event.src_ip else 0
    flow = fpb.Flow(
        verdict=_verdict(event),
        IP=fpb.IP(source=event.src_ip, destination=event.dst_ip,
                  ipVersion=fpb.IPv4 if version == 4 else fpb.IPv6 if version == 6
                  else fpb.IP_NOT_USED),
        l4=l4,
        source=source,
        destination=destination,
        Type=fpb.L3_L4,
        node_name=event.node,
        reply=event.is_reply,
        event_type=_event_type(event),
        traffic_direction=_traffic_direction(event),
        Summary=summary_of(l4),
    )
    if src_peer is not None and src_peer.names:
        flow.source_names.extend(src_peer.names)
    if dst_peer is not None and dst_peer.names:
        flow.destination_names.extend(dst_peer.names)
    local = dst_peer if local_is_dst else src_peer
    if local is not None and local.interface is not None:
        flow.interface.CopyFrom(fpb.NetworkInterface(index=local.interface[0],
                                                     name=local.interface[1]))
    if event.type is EventType.POLICY_VERDICT:
        flow.policy_match_type = event.match_type
    elif event.type is EventType.TRACE:
        flow.trace_observation_point = (fpb.TO_ENDPOINT if local_is_dst
                                        else fpb.FROM_ENDPOINT)
        if event.is_reply:
            flow.trace_reason = fpb.REPLY
    if flow.verdict in (fpb.DROPPED, fpb.AUDIT) and event.drop_reason:
        flow.drop_reason = event.drop_reason
        name = drop_reason_name(event.drop_reason)
        if name in _DROP_REASON_NAMES:
            flow.drop_reason_desc = fpb.DropReason.Value(name)
    # A denied packet never reached conntrack, so whether it was a reply is not known
    # (Cilium's drop notifications carry no CT state): leave is_reply unset and let
    # printers show `<>`, as the seed's `hubble observe` does. Forwarded packets passed
    # the conntrack lookup, which decided it.
    if flow.verdict in (fpb.FORWARDED, fpb.AUDIT):
        flow.is_reply.CopyFrom(BoolValue(value=event.is_reply))
    if namer is not None:
        _add_policy_names(flow, event, namer)
    return flow


def flow_from_event(event: DatapathEvent, meta: EndpointMetadata,
                    namer: PolicyNamer | None = None) -> fpb.Flow:
    """The whole Flow of one event, time included."""
    flow = build_flow(event, meta, namer)
    ts = Timestamp()
    ts.FromNanoseconds(event.timestamp_ns)
    flow.time.CopyFrom(ts)
    return flow
