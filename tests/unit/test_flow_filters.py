"""Each filter narrows flows as Hubble's does; allow and deny lists compose."""

from __future__ import annotations

import pytest
from google.protobuf.wrappers_pb2 import BoolValue

from core.protocols import Direction
from observe.events import EventType
from observe.filters.base import FilterFunc, match_all, match_none, match_one
from observe.filters.build import BUILDERS, FlowFilterSet, apply, build_filter
from observe.filters.labels import parse_selector
from observe.flow import flow_from_event
from observe.gen.flow import flow_pb2 as fpb
from observe.metadata import PeerInfo, StaticMetadata, Workload
from tests.unit.test_observe_flow import event

META = StaticMetadata({
    "10.1.0.1": PeerInfo(1001, "default", "backend-6f8-abc", ["k8s:app=backend"], 11,
                         workloads=(Workload("backend", "Deployment"),),
                         interface=(41, "lxcbackend")),
    "10.1.0.2": PeerInfo(1002, "default", "frontend-7c9-def", ["k8s:app=frontend"], 12),
    "10.1.0.3": PeerInfo(1003, "default", "not-frontend-7db-ghi", ["k8s:app=not-frontend"], 13),
    "10.2.0.4": PeerInfo(1004, "kube-system", "coredns-5d7-jkl",
                         ["k8s:k8s-app=kube-dns", "k8s:tier=infra"], 14),
})

# name -> flow; the table below names which of these each filter keeps.
FLOWS = {
    "fe->be allowed": flow_from_event(event(
        type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0, match_type=1,
        src_ip="10.1.0.2", src_identity=1002, dst_ip="10.1.0.1", dst_identity=1001,
        src_port=40000, dst_port=8080, tcp_flags=0x02), META),
    "nfe->be denied": flow_from_event(event(
        src_ip="10.1.0.3", src_identity=1003, dst_ip="10.1.0.1", dst_identity=1001,
        src_port=45002, dst_port=8080, tcp_flags=0x02), META),
    "be->dns udp": flow_from_event(event(
        type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
        direction=Direction.EGRESS, protocol=17, src_ip="10.1.0.1", src_identity=1001,
        dst_ip="10.2.0.4", dst_identity=1004, src_port=5353, dst_port=53, tcp_flags=0), META),
    "be->world icmp": flow_from_event(event(
        type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0,
        direction=Direction.EGRESS, protocol=1, src_ip="10.1.0.1", src_identity=1001,
        dst_ip="1.1.1.1", dst_identity=2, src_port=7, dst_port=8 << 8, tcp_flags=0), META),
    "be->fe reply": flow_from_event(event(
        type=EventType.TRACE, allowed=True, drop_reason=0, is_reply=True,
        direction=Direction.EGRESS, src_ip="10.1.0.1", src_identity=1001,
        dst_ip="10.1.0.2", dst_identity=1002, src_port=8080, dst_port=40000,
        tcp_flags=0x12, node="node2"), META),
}


def names(whitelist: list[fpb.FlowFilter], blacklist: list[fpb.FlowFilter] = []) -> set[str]:
    keep = FlowFilterSet(whitelist, blacklist)
    return {name for name, flow in FLOWS.items() if keep(flow)}


F = fpb.FlowFilter
CASES = [
    ("source pod with namespace prefix", F(source_pod=["default/frontend"]), {"fe->be allowed"}),
    ("source pod prefix without namespace matches any namespace",
     F(source_pod=["coredns"]), set()),
    ("namespace alone selects every pod in it", F(destination_pod=["kube-system/"]),
     {"be->dns udp"}),
    ("destination pod is a prefix of the pod name", F(destination_pod=["default/back"]),
     {"fe->be allowed", "nfe->be denied"}),
    ("values within a field are alternatives",
     F(source_pod=["default/frontend", "default/not-frontend"]),
     {"fe->be allowed", "nfe->be denied"}),
    ("source label equality", F(source_label=["app=not-frontend"]), {"nfe->be denied"}),
    ("label with its source prefix", F(destination_label=["k8s:app=backend"]),
     {"fe->be allowed", "nfe->be denied"}),
    ("label with another source prefix does not match",
     F(destination_label=["reserved:app=backend"]), set()),
    ("label set-based in", F(source_label=["app in (frontend, not-frontend)"]),
     {"fe->be allowed", "nfe->be denied"}),
    ("label notin", F(source_label=["app notin (backend)"]),
     {"fe->be allowed", "nfe->be denied"}),
    ("label inequality", F(destination_label=["app!=backend"]),
     {"be->dns udp", "be->world icmp", "be->fe reply"}),
    ("label existence", F(destination_label=["k8s-app"]), {"be->dns udp"}),
    ("label non-existence", F(source_label=["!app"]), set()),
    ("comma-separated requirements must all hold",
     F(destination_label=["k8s-app=kube-dns,tier=infra"]), {"be->dns udp"}),
    ("world has the reserved:world label", F(destination_label=["reserved:world"]),
     {"be->world icmp"}),
    ("source ip", F(source_ip=["10.1.0.3"]), {"nfe->be denied"}),
    ("destination ip CIDR", F(destination_ip=["1.0.0.0/8"]), {"be->world icmp"}),
    ("source identity", F(source_identity=[1002]), {"fe->be allowed"}),
    ("destination identity world", F(destination_identity=[2]), {"be->world icmp"}),
    ("verdict dropped", F(verdict=[fpb.DROPPED]), {"nfe->be denied"}),
    ("traffic direction egress", F(traffic_direction=[fpb.EGRESS]),
     {"be->dns udp", "be->world icmp"}),
    ("a reply's traffic direction is its connection's",
     F(traffic_direction=[fpb.INGRESS]), {"fe->be allowed", "nfe->be denied", "be->fe reply"}),
    ("protocol udp", F(protocol=["UDP"]), {"be->dns udp"}),
    ("protocol icmp", F(protocol=["icmp"]), {"be->world icmp"}),
    ("protocol icmpv4, as flows spell it", F(protocol=["ICMPv4"]), {"be->world icmp"}),
    ("destination port", F(destination_port=["8080"]), {"fe->be allowed", "nfe->be denied"}),
    ("source port", F(source_port=["8080"]), {"be->fe reply"}),
    ("ports never match a flow without ports", F(destination_port=["2048"]), set()),
    ("reply true", F(reply=[True]), {"be->fe reply"}),
    ("a pod prefix after a bare slash is in any namespace", F(source_pod=["/coredns"]),
     set()),
    ("destination workload by name and kind",
     F(destination_workload=[fpb.Workload(name="backend", kind="deployment")]),
     {"fe->be allowed", "nfe->be denied"}),
    ("workload kind alone", F(source_workload=[fpb.Workload(kind="Deployment")]),
     {"be->dns udp", "be->world icmp", "be->fe reply"}),
    ("a workload of another kind does not match",
     F(source_workload=[fpb.Workload(name="backend", kind="StatefulSet")]), set()),
    ("interface by name", F(interface=[fpb.NetworkInterface(name="lxcbackend")]),
     {"fe->be allowed", "nfe->be denied", "be->dns udp", "be->world icmp", "be->fe reply"}),
    ("protocol icmpv6: none of these flows", F(protocol=["icmpv6"]), set()),
    ("an L7 protocol matches no L3/L4 flow", F(protocol=["http"]), set()),
    ("http filters match no L3/L4 flow", F(http_status_code=["4+"]), set()),
    ("a service filter matches flows without services: none", F(source_service=["default/"]),
     set()),
    ("a uuid filter matches nothing: flows carry none", F(uuid=["x"]), set()),
    ("reply false excludes flows whose reply is unknown", F(reply=[False]),
     {"fe->be allowed", "be->dns udp", "be->world icmp"}),
    ("tcp flags SYN matches SYN and SYN-ACK", F(tcp_flags=[fpb.TCPFlags(SYN=True)]),
     {"fe->be allowed", "nfe->be denied", "be->fe reply"}),
    ("tcp flags SYN,ACK needs both", F(tcp_flags=[fpb.TCPFlags(SYN=True, ACK=True)]),
     {"be->fe reply"}),
    ("event type policy verdict", F(event_type=[fpb.EventTypeFilter(type=9)]),
     {"fe->be allowed", "be->dns udp", "be->world icmp"}),
    ("event type drop with sub type", F(event_type=[fpb.EventTypeFilter(
        type=1, match_sub_type=True, sub_type=133)]), {"nfe->be denied"}),
    ("node name pattern", F(node_name=["node2*"]), {"be->fe reply"}),
    ("drop reason", F(drop_reason_desc=[fpb.DropReason.Value("POLICY_DENIED")]), {"nfe->be denied"}),
    ("fields of one filter must all match",
     F(destination_pod=["default/backend"], verdict=[fpb.FORWARDED]), {"fe->be allowed"}),
    ("an empty filter matches everything", F(), set(FLOWS)),
]


@pytest.mark.parametrize("filt,expected", [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_filter_narrows_to_exactly_the_flows_it_names(filt: fpb.FlowFilter,
                                                           expected: set[str]) -> None:
    assert names([filt]) == expected


def test_no_filters_keep_everything() -> None:
    assert names([]) == set(FLOWS)


def test_any_allow_list_filter_may_match() -> None:
    assert names([F(protocol=["udp"]), F(protocol=["icmp"])]) == {"be->dns udp",
                                                                  "be->world icmp"}


def test_a_deny_list_filter_removes_what_the_allow_list_kept() -> None:
    assert names([F(destination_pod=["default/"])], [F(verdict=[fpb.DROPPED])]) == {
        "fe->be allowed", "be->fe reply"}


def test_a_deny_list_alone_keeps_everything_else() -> None:
    assert names([], [F(source_pod=["default/backend"])]) == {"fe->be allowed",
                                                              "nfe->be denied"}


def test_any_deny_list_filter_removes() -> None:
    assert names([], [F(protocol=["tcp"]), F(protocol=["udp"])]) == {"be->world icmp"}


def test_apply_filters_a_list_in_order() -> None:
    flows = list(FLOWS.values())
    assert apply(flows, [F(verdict=[fpb.DROPPED])]) == [FLOWS["nfe->be denied"]]


@pytest.mark.parametrize("filt", [
    F(source_ip=["not-an-ip"]), F(protocol=["gre"]), F(http_path=["("]),
    F(destination_port=["http"]), F(destination_port=["70000"]),
    F(source_label=["app in (a"]), F(http_status_code=["abc"]),
    F(source_workload=[fpb.Workload()]),
], ids=["bad ip", "unknown protocol", "bad regular expression", "named port",
        "port out of range", "unclosed set", "bad http status", "empty workload"])
def test_a_bad_filter_value_is_an_error_not_a_silent_match(filt: fpb.FlowFilter) -> None:
    with pytest.raises(ValueError):
        build_filter(filt)


def test_selector_parsing_reads_sources_and_operators() -> None:
    reqs = parse_selector("k8s:app in (a, b),!tier,env")
    assert [(r.source, r.key, r.op, set(r.values)) for r in reqs] == [
        ("k8s", "app", "in", {"a", "b"}), ("", "tier", "!exists", set()),
        ("", "env", "exists", set())]


def test_a_label_key_with_dots_and_slashes_is_not_mistaken_for_a_source() -> None:
    flow = replace_labels(FLOWS["fe->be allowed"],
                          ["k8s:io.kubernetes.pod.namespace=default"])
    keep = build_filter(F(source_label=["io.kubernetes.pod.namespace=default"]))
    assert keep(flow)


def replace_labels(flow: fpb.Flow, labels: list[str]) -> fpb.Flow:
    copy = fpb.Flow()
    copy.CopyFrom(flow)
    del copy.source.labels[:]
    copy.source.labels.extend(labels)
    return copy


def test_reply_filter_reads_is_reply_not_the_deprecated_field() -> None:
    flow = fpb.Flow(reply=True)
    assert not build_filter(F(reply=[True]))(flow)
    flow.is_reply.CopyFrom(BoolValue(value=True))
    assert build_filter(F(reply=[True]))(flow)



YES: FilterFunc = lambda flow: True   # noqa: E731
NO: FilterFunc = lambda flow: False   # noqa: E731


@pytest.mark.parametrize("funcs, all_, one, none", [
    ([], True, False, True),
    ([YES], True, True, False),
    ([NO], False, False, True),
    ([YES, NO], False, True, False),
], ids=["no filters", "one that matches", "one that does not", "one of each"])
def test_the_combinators_fold_as_hubbles_do(funcs: list[FilterFunc], all_: bool, one: bool,
                                            none: bool) -> None:
    flow = fpb.Flow()
    assert (match_all(funcs, flow), match_one(funcs, flow), match_none(funcs, flow)) == \
        (all_, one, none)


def test_a_filter_is_built_from_the_builders_given() -> None:
    only_verdicts = build_filter(F(verdict=[fpb.DROPPED], source_pod=["nothing/"]),
                                 builders=[b for b in BUILDERS if "verdict" in b.__module__])
    assert only_verdicts(FLOWS["nfe->be denied"])
    assert not build_filter(F(verdict=[fpb.DROPPED], source_pod=["nothing/"]))(
        FLOWS["nfe->be denied"])
