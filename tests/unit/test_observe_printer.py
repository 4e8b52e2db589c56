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
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.gen.relay import relay_pb2 as rpb
from observe.metadata import PolicyRef, PolicyVerdictNames, StaticMetadata
from observe.printer import Printer, PrintOptions, format_compact
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
    assert flow["drop_reason_desc"] == "POLICY_DENIED"
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


# -- hubble observe's formatting flags ---------------------------------------------------

@pytest.mark.parametrize("layout, text", [
    ("StampMilli", "Jan 26 09:07:03.396"),
    ("YearMonthDay", "2024-01-26"),
    ("YearMonthDayHour", "2024-01-26T09Z"),
    ("YearMonthDayHourMinute", "2024-01-26T09:07Z"),
    ("RFC3339", "2024-01-26T09:07:03Z"),
    ("RFC3339Milli", "2024-01-26T09:07:03.396Z"),
    ("RFC3339Micro", "2024-01-26T09:07:03.396000Z"),
    ("RFC3339Nano", "2024-01-26T09:07:03.396Z"),
    ("RFC1123Z", "Fri, 26 Jan 2024 09:07:03 +0000"),
])
def test_time_formats_are_hubbles(layout: str, text: str) -> None:
    line = format_compact(drop(), opts=PrintOptions(tz=UTC, time_format=layout))
    assert line.startswith(text + ": ")


def test_a_zone_other_than_utc_prints_its_offset() -> None:
    tz = dt.timezone(dt.timedelta(hours=1))
    line = format_compact(drop(), opts=PrintOptions(tz=tz, time_format="RFC3339"))
    assert line.startswith("2024-01-26T10:07:03+01:00: ")


def test_numeric_prints_addresses_and_identity_numbers() -> None:
    f = flow_from_event(event(dst_ip="1.1.1.1", dst_identity=2, direction=Direction.EGRESS),
                        META)
    line = format_compact(f, opts=PrintOptions(tz=UTC, numeric=True))
    assert "10.1.0.2:45002 (ID:84671) <> 1.1.1.1:8080 (ID:2)" in line


def test_policy_names_follow_the_verdict_when_asked() -> None:
    names = PolicyVerdictNames(allowed_by=(PolicyRef("allow-fe", "default"),
                                           PolicyRef("allow-all", "default")),
                               isolated_by=(PolicyRef("backend-ingress", "default"),))
    meta = StaticMetadata(META.peers, policies={(248, Direction.INGRESS, 84671, 6, 8080):
                                                names})
    ok = flow_from_event(event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
                               match_type=2), meta, meta)
    denied = flow_from_event(event(), meta, meta)
    opts = PrintOptions(tz=UTC, policy_names=True)
    assert format_compact(ok, opts=opts).endswith(
        "ALLOWED BY default/allow-fe,default/allow-all (TCP Flags: SYN)")
    assert format_compact(denied, opts=opts).endswith(
        "Policy denied DROPPED BY default/backend-ingress (TCP Flags: SYN)")
    assert " BY " not in format_compact(ok, opts=PrintOptions(tz=UTC))


def test_color_paints_verdicts_only_when_asked() -> None:
    plain = format_compact(drop(), opts=PrintOptions(tz=UTC))
    colored = format_compact(drop(), opts=PrintOptions(tz=UTC, color=True))
    assert "\033[" not in plain
    assert "\033[31mDROPPED\033[0m" in colored


def test_a_relays_node_status_goes_to_the_error_stream_in_hubbles_words() -> None:
    out, err = io.StringIO(), io.StringIO()
    p = Printer("compact", out, opts=PrintOptions(tz=UTC), err=err)
    resp = opb.GetFlowsResponse(node_status=rpb.NodeStatusEvent(
        state_change=rpb.NODE_UNAVAILABLE, node_names=["node2"], message="timeout"),
        node_name="relay", time=drop().time)
    p.write(resp)
    assert out.getvalue() == ""
    assert err.getvalue() == ("Jan 26 09:07:03.396 [relay]: 1 nodes are unavailable: node2 "
                              "(timeout)\n")
