"""Real IPv6 packets between the session topology's dual-stack pods (and its external
host): the same programs decide them with the IPv6 maps. Crafted corner cases (extension
header chains, fragments, ICMPv6 errors, neighbour discovery) are test_ipv6_crafted.py."""

from __future__ import annotations

from agent.policy.mapstate import ANY_IDENTITY, Direction, EndpointPolicy, MatchType, PolicyKey
from identity.reserved import MIN_CIDR_IDENTITY
from observe.events import EventType
from observe.reasons import DropReason
from tests.datapath.conftest import IDS, Env, cluster_maps
from tests.datapath.topology import EXT2_IP6, EXT_IP6, NODE_IP6

TCP, UDP = 6, 17
IN, EG = Direction.INGRESS, Direction.EGRESS


def ingress(*keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(ingress_enforced=True, entries=frozenset(keys))


def egress(*keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(egress_enforced=True, entries=frozenset(keys))


def test_ipv6_ingress_allows_the_selected_peer_on_its_port_only(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 8080, 0.5) == "timeout"
    assert t.tcp(clean.ns("p2"), clean.ip6("p1"), 80, 0.5) == "timeout"
    assert t.udp(clean.ns("p0"), clean.ip6("p1"), 80, 0.5) == "timeout"


def test_one_policy_holds_for_both_families_of_a_dual_stack_pod(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], UDP, 5353, 5353)))
    for address in (clean.ip("p1"), clean.ip6("p1")):
        assert t.udp(clean.ns("p0"), address, 5353) == "ok"
        assert t.udp(clean.ns("p2"), address, 5353, 0.5) == "timeout"


def test_replies_and_echo_replies_of_the_pods_own_ipv6_connections_pass(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p0", ingress())   # nothing may connect to p0
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 80) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip6("p1"), 5353) == "ok"
    assert t.ping(clean.ns("p0"), clean.ip6("p1")) == "ok"
    assert t.tcp(clean.ns("p1"), clean.ip6("p0"), 80, 0.5) == "timeout"
    assert t.ping(clean.ns("p1"), clean.ip6("p0"), 0.5) == "timeout"


def test_ipv6_egress_to_a_prefix_reaches_the_external_host_in_it_only(clean: Env) -> None:
    t = clean.topo
    block = MIN_CIDR_IDENTITY + 60
    clean.dp.sync_cluster_maps(cluster_maps(t, {"fd00:31:250::/64": block}))  # type: ignore[attr-defined]
    clean.set_policy("p0", egress(PolicyKey(EG, block, TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), EXT_IP6, 80) == "ok"
    assert t.tcp(clean.ns("p0"), EXT2_IP6, 80, 0.5) == "timeout"     # outside the block
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 80, 0.5) == "timeout"
    verdicts = [(e.allowed, e.dst_ip, e.dst_identity) for e in clean.drain(0.1)
                if e.type == EventType.POLICY_VERDICT]
    assert (True, EXT_IP6, block) in verdicts


def test_the_node_reaches_its_pods_over_ipv6(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, 1, 0)))   # what the engine gives: host, any
    assert t.tcp(t.node, clean.ip6("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 80, 0.5) == "timeout"
    seen = [(e.allowed, e.src_ip, e.src_identity) for e in clean.drain(0.1)
            if e.type == EventType.POLICY_VERDICT]
    assert (True, NODE_IP6, 1) in seen


def test_a_pod_sending_from_another_pods_ipv6_address_is_dropped(clean: Env) -> None:
    t = clean.topo
    t.run(clean.ns("p0"), "spoof6", clean.ip6("p2"), clean.ip6("p1"), "5353")
    events = clean.drain(0.2)
    spoofs = [e for e in events if e.drop_reason == DropReason.INVALID_SOURCE_IP]
    assert spoofs and spoofs[0].src_ip == clean.ip6("p2"), events


def test_ipv6_flows_carry_ipv6_addresses_identities_and_conntrack(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, ANY_IDENTITY, TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip6("p1"), 80) == "ok"
    [verdict] = [e for e in clean.drain(0.1) if e.type == EventType.POLICY_VERDICT
                 and e.direction is IN]
    assert (verdict.src_ip, verdict.dst_ip, verdict.src_identity, verdict.dst_identity,
            verdict.match_type) == (clean.ip6("p0"), clean.ip6("p1"), IDS["p0"], IDS["p1"],
                                    MatchType.L4_ONLY)
    entries = [e for e in clean.dp.dump_conntrack()  # type: ignore[attr-defined]
               if e.dst_ip == clean.ip6("p1") and e.dst_port == 80]
    assert {e.endpoint_id for e in entries} == {clean.slot("p0").endpoint_id,
                                                clean.slot("p1").endpoint_id}
