"""Printers: the compact lines read exactly like the seed's `hubble observe` output."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from google.protobuf.wrappers_pb2 import BoolValue

from core.protocols import Direction
from observe.events import EventType, MatchType
from observe.flow import flow_from_event
from observe.gen import flow_pb2 as fpb
from observe.gen import observer_pb2 as opb
from observe.printer import Printer, format_compact
from tests.unit.test_observe_flow import META, event

UTC = dt.timezone.utc
SEED_VERDICT = ("Jan 26 09:07:03.396: default/not-frontend-7db9747986-gktg6:45002 (ID:84671) "
                "<> default/backend-6f884b6495-69bbh:8080 (ID:68421) policy-verdict:none "
                "INGRESS DENIED (TCP Flags: SYN)")
SEED_DROP = ("Jan 26 09:07:03.396: default/not-frontend-7db9747986-gktg6:45002 (ID:84671) "
             "<> default/backend-6f884b6495-69bbh:8080 (ID:68421) Policy denied DROPPED "
             "(TCP Flags: SYN)")


def denied_verdict() -> fpb.Flow:
    return flow_from_event(event(type=EventType.POLICY_VERDICT, drop_reason=133), META)


def drop() -> fpb.Flow:
    return flow_from_event(event(), META)


def allowed() -> fpb.Flow:
    return flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 match_type=2, src_ip="10.1.0.2", dst_ip="10.1.0.1"), META)


def render(output: str, flows: list[fpb.Flow], follow: bool = False) -> str:
    out = io.StringIO()
    p = Printer(output, out, tz=UTC, follow=follow)
    for f in flows:
        p.write(opb.GetFlowsResponse(flow=f, node_name=f.node_name, time=f.time))
    p.close()
    return out.getvalue()


def test_a_denied_policy_verdict_prints_exactly_as_the_seed() -> None:
    assert format_compact(denied_verdict(), UTC) == SEED_VERDICT


def test_a_policy_drop_prints_exactly_as_the_seed() -> None:
    assert format_compact(drop(), UTC) == SEED_DROP


def test_compact_output_is_one_line_per_flow() -> None:
    assert render("compact", [denied_verdict(), drop()]) == f"{SEED_VERDICT}\n{SEED_DROP}\n"


def test_an_allowed_verdict_points_the_way_the_packet_travels() -> None:
    line = format_compact(allowed(), UTC)
    assert " (ID:84671) -> default/backend-6f884b6495-69bbh:8080 (ID:68421) " in line
    assert line.endswith("policy-verdict:L3-L4 INGRESS ALLOWED (TCP Flags: SYN)")


def test_a_reply_flips_the_arrow_and_the_ends_so_the_client_stays_left() -> None:
    f = flow_from_event(event(type=EventType.TRACE, allowed=True, drop_reason=0, is_reply=True,
                              direction=Direction.EGRESS, endpoint_id=248,
                              src_ip="10.1.0.1", src_identity=68421, src_port=8080,
                              dst_ip="10.1.0.2", dst_identity=84671, dst_port=45002,
                              tcp_flags=0x12), META)
    line = format_compact(f, UTC)
    assert ("default/not-frontend-7db9747986-gktg6:45002 (ID:84671) <- "
            "default/backend-6f884b6495-69bbh:8080 (ID:68421) from-endpoint FORWARDED "
            "(TCP Flags: SYN, ACK)") in line


def test_world_prints_its_address_and_the_reserved_name() -> None:
    f = flow_from_event(event(src_ip="1.1.1.1", src_identity=2, src_port=443), META)
    assert ": 1.1.1.1:443 (world) <> default/backend" in format_compact(f, UTC)


def test_icmp_flows_have_no_ports() -> None:
    f = flow_from_event(event(protocol=1, dst_port=8 << 8), META)
    line = format_compact(f, UTC)
    assert "default/not-frontend-7db9747986-gktg6 (ID:84671) <> " in line
    assert line.endswith("(ICMPv4 EchoRequest)")


def test_a_single_digit_day_is_padded_with_a_space_as_hubble_does() -> None:
    f = drop()
    f.time.FromDatetime(dt.datetime(2024, 2, 3, 4, 5, 6, 7000))
    assert format_compact(f, UTC).startswith("Feb  3 04:05:06.007: ")


def test_json_is_one_object_per_line_with_hubbles_field_names() -> None:
    lines = render("json", [drop(), allowed()]).splitlines()
    assert len(lines) == 2
    obj = json.loads(lines[0])
    flow = obj["flow"]
    assert flow["verdict"] == "DROPPED"
    assert flow["drop_reason_desc"] == "POLICY"
    assert flow["source"]["pod_name"] == "not-frontend-7db9747986-gktg6"
    assert flow["IP"]["source"] == "10.1.0.2"
    assert flow["l4"]["TCP"]["destination_port"] == 8080
    assert flow["traffic_direction"] == "INGRESS"
    assert obj["node_name"] == "node1"


def test_jsonpb_uses_the_canonical_protobuf_json_names() -> None:
    obj = json.loads(render("jsonpb", [drop()]).splitlines()[0])
    assert obj["flow"]["source"]["podName"] == "not-frontend-7db9747986-gktg6"
    assert obj["nodeName"] == "node1"


def test_dict_prints_key_value_blocks_separated_by_a_rule() -> None:
    text = render("dict", [drop(), drop()])
    assert text.count("------------") == 1
    assert "  TIMESTAMP: Jan 26 09:07:03.396\n" in text
    assert "     SOURCE: default/not-frontend-7db9747986-gktg6:45002\n" in text
    assert "       TYPE: Policy denied\n    VERDICT: DROPPED\n    SUMMARY: TCP Flags: SYN\n" \
        in text


def test_table_has_a_header_and_aligned_columns() -> None:
    lines = render("table", [drop(), allowed()]).splitlines()
    assert lines[0].split() == ["TIMESTAMP", "SOURCE", "DESTINATION", "TYPE", "VERDICT",
                                "SUMMARY"]
    assert len(lines) == 3
    assert lines[0].index("SOURCE") == lines[1].index("default/not-frontend")
    assert "Policy denied" in lines[1] and "DROPPED" in lines[1]


def test_table_while_following_prints_each_row_at_once() -> None:
    out = io.StringIO()
    p = Printer("table", out, tz=UTC, follow=True)
    p.write(opb.GetFlowsResponse(flow=drop()))
    assert len(out.getvalue().splitlines()) == 2


def test_lost_events_print_as_a_line_of_their_own() -> None:
    out = io.StringIO()
    p = Printer("compact", out)
    p.write(opb.GetFlowsResponse(lost_events=fpb.LostEvent(
        source=fpb.HUBBLE_RING_BUFFER, num_events_lost=12)))
    assert out.getvalue() == "EVENTS LOST: HUBBLE_RING_BUFFER 12\n"


def test_a_forwarded_flow_without_reply_information_prints_both_ways() -> None:
    f = allowed()
    f.ClearField("is_reply")
    assert " <> " in format_compact(f, UTC)
    f.is_reply.CopyFrom(BoolValue(value=False))
    assert " -> " in format_compact(f, UTC)


@pytest.mark.parametrize("match_type, text", [
    (MatchType.NONE, "none"), (MatchType.L3_ONLY, "L3-Only"), (MatchType.L3_L4, "L3-L4"),
    (MatchType.L4_ONLY, "L4-Only"), (MatchType.ALL, "all"), (9, "9"),
], ids=["none", "l3 only", "l3 and l4", "l4 only", "all", "an unknown one by number"])
def test_a_verdict_names_its_match_type_as_hubble_does(match_type: int, text: str) -> None:
    flow = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                                 match_type=match_type), META)
    assert f"policy-verdict:{text} INGRESS ALLOWED" in format_compact(flow)
