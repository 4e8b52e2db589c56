"""Flows from datapath events: drops, policy verdicts, world and CIDR peers, summaries."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from core.protocols import Direction
from observe.events import DatapathEvent, EventType
from observe.flow import flow_from_event, summary_of, tcp_flags_message
from observe.gen.flow import flow_pb2 as fpb
from observe.metadata import PeerInfo, StaticMetadata
from observe.reasons import DropReason

TS = int(dt.datetime(2024, 1, 26, 9, 7, 3, 396000, tzinfo=dt.timezone.utc).timestamp() * 1e9)
NOT_FRONTEND = PeerInfo(84671, "default", "not-frontend-7db9747986-gktg6",
                        ["k8s:app=not-frontend", "k8s:io.kubernetes.pod.namespace=default"], 0)
BACKEND = PeerInfo(68421, "default", "backend-6f884b6495-69bbh",
                   ["k8s:app=backend", "k8s:io.kubernetes.pod.namespace=default"], 248)
META = StaticMetadata({"10.1.0.2": NOT_FRONTEND, "10.1.0.1": BACKEND},
                      {16777217: ["cidr:8.8.8.0/24"]})


def event(**kw: object) -> DatapathEvent:
    base = DatapathEvent(
        type=EventType.DROP, timestamp_ns=TS, node="node1", endpoint_id=248,
        direction=Direction.INGRESS, allowed=False, drop_reason=133, match_type=0,
        src_identity=84671, dst_identity=68421, src_ip="10.1.0.2", dst_ip="10.1.0.1",
        protocol=6, src_port=45002, dst_port=8080, tcp_flags=0x02, is_reply=False,
        packet_len=60)
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_policy_drop_becomes_a_dropped_flow_with_its_reason_and_both_pods() -> None:
    f = flow_from_event(event(), META)
    assert f.verdict == fpb.DROPPED
    assert f.drop_reason == 133
    assert fpb.DropReason.Name(f.drop_reason_desc) == "POLICY_DENIED"
    assert (f.source.namespace, f.source.pod_name, f.source.identity) == (
        "default", "not-frontend-7db9747986-gktg6", 84671)
    assert (f.destination.pod_name, f.destination.identity) == ("backend-6f884b6495-69bbh",
                                                               68421)
    assert "k8s:app=backend" in f.destination.labels
    assert f.time.ToNanoseconds() == TS
    assert (f.node_name, f.Type) == ("node1", fpb.L3_L4)
    assert f.event_type.type == 1 and f.event_type.sub_type == 133
    assert f.Summary == "TCP Flags: SYN"
    assert f.l4.TCP.destination_port == 8080 and f.l4.TCP.flags.SYN


def test_at_ingress_the_local_endpoint_is_the_destination() -> None:
    f = flow_from_event(event(), META)
    assert f.destination.ID == 248 and f.source.ID == 0
    assert f.traffic_direction == fpb.INGRESS


def test_at_egress_the_local_endpoint_is_the_source() -> None:
    f = flow_from_event(event(direction=Direction.EGRESS, endpoint_id=7), META)
    assert f.source.ID == 7 and f.destination.ID == 248  # peer's own endpoint id, if known
    assert f.traffic_direction == fpb.EGRESS


def test_a_reply_flips_the_traffic_direction_to_the_connections_own() -> None:
    f = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                              direction=Direction.EGRESS, is_reply=True), META)
    assert f.traffic_direction == fpb.INGRESS
    assert f.is_reply.value is True


def test_a_denied_policy_verdict_is_marked_as_a_policy_verdict_and_dropped() -> None:
    f = flow_from_event(event(type=EventType.POLICY_VERDICT, drop_reason=133), META)
    assert f.event_type.type == 9
    assert f.verdict == fpb.DROPPED
    assert f.policy_match_type == 0


def test_an_allowed_policy_verdict_is_forwarded_with_its_match_type() -> None:
    f = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                              match_type=2), META)
    assert f.verdict == fpb.FORWARDED
    assert f.policy_match_type == 2
    assert f.drop_reason == 0 and f.drop_reason_desc == 0


def test_a_denied_packet_leaves_is_reply_unknown_and_a_forwarded_one_sets_it() -> None:
    assert not flow_from_event(event(), META).HasField("is_reply")
    f = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0), META)
    assert f.HasField("is_reply") and f.is_reply.value is False


def test_an_address_outside_the_cluster_is_world() -> None:
    f = flow_from_event(event(src_ip="1.1.1.1", src_identity=2), META)
    assert f.source.identity == 2
    assert list(f.source.labels) == ["reserved:world"]
    assert f.source.pod_name == ""


def test_an_address_nobody_knows_without_an_identity_is_world() -> None:
    f = flow_from_event(event(src_ip="1.1.1.1", src_identity=0), META)
    assert f.source.identity == 2
    assert list(f.source.labels) == ["reserved:world"]


def test_an_address_in_an_ip_block_shows_its_cidr_identity_and_labels() -> None:
    f = flow_from_event(event(direction=Direction.EGRESS, dst_ip="8.8.8.8",
                              dst_identity=16777217, src_ip="10.1.0.1", src_identity=68421),
                        META)
    assert f.destination.identity == 16777217
    assert list(f.destination.labels) == ["cidr:8.8.8.0/24"]


def test_the_datapaths_identity_wins_over_a_stale_agent_view() -> None:
    f = flow_from_event(event(src_identity=99999), META)
    assert f.source.identity == 99999
    assert f.source.pod_name == "not-frontend-7db9747986-gktg6"


@pytest.mark.parametrize("protocol,dst_port,flags,summary", [
    (6, 8080, 0x12, "TCP Flags: SYN, ACK"),
    (6, 8080, 0x11, "TCP Flags: ACK, FIN"),
    (6, 8080, 0x18, "TCP Flags: ACK, PSH"),
    (17, 53, 0, "UDP"),
    (1, 8 << 8, 0, "ICMPv4 EchoRequest"),
    (1, 0, 0, "ICMPv4 EchoReply"),
    (132, 9, 0, "SCTP"),
    (58, 128 << 8, 0, "ICMPv6 EchoRequest"),
    (58, 1 << 8 | 4, 0, "ICMPv6 DestinationUnreachable"),
], ids=["tcp syn-ack", "tcp ack-fin", "tcp ack-psh", "udp", "icmp echo request",
        "icmp echo reply", "sctp", "icmpv6 echo request", "icmpv6 unreachable"])
def test_the_summary_describes_layer_4_as_hubble_does(protocol: int, dst_port: int,
                                                       flags: int, summary: str) -> None:
    f = flow_from_event(event(protocol=protocol, dst_port=dst_port, tcp_flags=flags), META)
    assert f.Summary == summary
    assert summary_of(f.l4) == summary


def test_icmp_type_and_code_come_from_the_packed_destination_port() -> None:
    f = flow_from_event(event(protocol=1, dst_port=(3 << 8) | 1), META)
    assert (f.l4.ICMPv4.type, f.l4.ICMPv4.code) == (3, 1)


def test_an_ipv6_event_is_an_ipv6_flow_with_icmpv6_type_and_code() -> None:
    f = flow_from_event(event(protocol=58, dst_port=(1 << 8) | 4, src_ip="fd00:10:244:1::2",
                              dst_ip="fd00:10:244:2::3"), META)
    assert f.IP.ipVersion == fpb.IPv6
    assert (f.IP.source, f.IP.destination) == ("fd00:10:244:1::2", "fd00:10:244:2::3")
    assert (f.l4.ICMPv6.type, f.l4.ICMPv6.code) == (1, 4)
    assert flow_from_event(event(), META).IP.ipVersion == fpb.IPv4


def test_every_tcp_flag_bit_maps_to_its_field() -> None:
    flags = tcp_flags_message(0xFF)
    assert all(getattr(flags, n) for n in ("FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE",
                                           "CWR"))


def test_an_unknown_drop_code_keeps_its_number() -> None:
    f = flow_from_event(event(drop_reason=7), META)
    assert f.drop_reason == 7 and f.drop_reason_desc == 0


def test_every_reason_the_datapath_emits_is_in_the_proto_by_name_and_number() -> None:
    proto = dict(fpb.DropReason.items())
    assert {r.name: int(r) for r in DropReason}.items() <= proto.items()
