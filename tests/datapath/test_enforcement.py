"""Real packets through the compiled datapath: peers, ports, protocols, replies,
revocation, spoofing, node-to-pod, ipBlock/except and port ranges."""

from __future__ import annotations

import time

from agent.policy.mapstate import ANY_IDENTITY, Direction, EndpointPolicy, MatchType, PolicyKey
from observe.events import EventType
from observe.reasons import DropReason
from tests.datapath.conftest import IDS, Env, cluster_maps
from tests.datapath.topology import EXT2_IP, EXT_IP, NODE_IP, wait_for

TCP, UDP, ICMP = 6, 17, 1
IN, EG = Direction.INGRESS, Direction.EGRESS


def ingress(*keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(ingress_enforced=True, entries=frozenset(keys))


def egress(*keys: PolicyKey) -> EndpointPolicy:
    return EndpointPolicy(egress_enforced=True, entries=frozenset(keys))


def test_ingress_allows_the_selected_peer_on_its_port_only(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 8080, 0.5) == "timeout"
    assert t.tcp(clean.ns("p2"), clean.ip("p1"), 80, 0.5) == "timeout"
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"


def test_any_peer_entry_allows_every_pod_and_the_world_on_that_port(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, ANY_IDENTITY, TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p2"), clean.ip("p1"), 80) == "ok"
    assert t.tcp(t.ext, clean.ip("p1"), 80) == "ok"
    assert t.tcp(t.ext, clean.ip("p1"), 443, 0.5) == "timeout"


def test_l3_only_entry_allows_every_protocol_from_that_peer(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], 0)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 8080) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"
    assert t.ping(clean.ns("p0"), clean.ip("p1")) == "ok"
    assert t.ping(clean.ns("p2"), clean.ip("p1"), 0.5) == "timeout"


def test_replies_pass_when_ingress_is_enforced_and_the_pod_initiated(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p0", ingress())   # deny all ingress
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"
    assert t.ping(clean.ns("p0"), clean.ip("p1")) == "ok"
    assert t.tcp(clean.ns("p1"), clean.ip("p0"), 80, 0.5) == "timeout"


def test_egress_enforced_denies_unlisted_destinations_but_replies_to_clients_pass(
        clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p0", egress(PolicyKey(EG, IDS["p1"], UDP, 5353, 5353)))
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip("p2"), 5353, 0.5) == "timeout"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"
    # p2 connects to p0: p0's replies are replies, not egress
    assert t.tcp(clean.ns("p2"), clean.ip("p0"), 80) == "ok"


def test_port_ranges_from_end_port_are_enforced_at_their_edges(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, 444, 8080)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 8080) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 9000, 0.5) == "timeout"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 443, 0.5) == "timeout"
    # written as a handful of prefixes, not one entry per port
    assert 1 < len(clean.dp.dump_policy(clean.slot("p1").endpoint_id)) < 20  # type: ignore[attr-defined]
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, 443, 8080)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 443) == "ok"


def test_ipblock_with_except_uses_the_cidr_map(clean: Env) -> None:
    t = clean.topo
    block, hole = 1 << 24, (1 << 24) + 1
    clean.dp.sync_cluster_maps(cluster_maps(  # type: ignore[attr-defined]
        t, {"172.31.250.0/23": block, "172.31.251.0/24": hole}))
    clean.set_policy("p0", egress(PolicyKey(EG, block, TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), EXT_IP, 80) == "ok"
    assert t.tcp(clean.ns("p0"), EXT2_IP, 80, 0.5) == "timeout"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"
    evs = clean.drain(0.1)
    verdicts = [e for e in evs if e.type == EventType.POLICY_VERDICT and e.allowed]
    assert any(e.dst_ip == EXT_IP and e.dst_identity == block for e in verdicts)
    drops = [e for e in evs if e.type == EventType.DROP]
    assert any(e.dst_ip == EXT2_IP and e.dst_identity == hole for e in drops)


def test_cidr_entry_matches_pod_ips_too(clean: Env) -> None:
    t = clean.topo
    cid = (1 << 24) + 5
    clean.dp.sync_cluster_maps(cluster_maps(t, {"10.200.0.0/24": cid}))  # type: ignore[attr-defined]
    clean.set_policy("p1", ingress(PolicyKey(IN, cid, TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.tcp(t.ext, clean.ip("p1"), 80, 0.5) == "timeout"


def test_world_reaches_a_pod_only_with_a_world_entry(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, 2, TCP, 80, 80)))
    assert t.tcp(t.ext, clean.ip("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"


def test_node_reaches_its_pods_with_the_host_entry(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, 1, 0)))
    assert t.tcp(t.node, clean.ip("p1"), 80) == "ok"
    assert t.ping(t.node, clean.ip("p1")) == "ok"
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80, 0.5) == "timeout"
    clean.set_policy("p1", ingress())
    assert t.tcp(t.node, clean.ip("p1"), 80, 0.5) == "timeout"


def test_spoofed_source_is_dropped_with_invalid_source_ip(clean: Env) -> None:
    t = clean.topo
    t.run(clean.ns("p0"), "spoof", "10.200.0.99", clean.ip("p1"), "5353")
    evs = clean.drain(0.2)
    drops = [e for e in evs if e.type == EventType.DROP
             and e.drop_reason == DropReason.INVALID_SOURCE_IP]
    assert drops, evs
    assert drops[0].src_ip == "10.200.0.99" and drops[0].endpoint_id == clean.slot("p0").endpoint_id
    assert clean.dp.stats().drops.get(int(DropReason.INVALID_SOURCE_IP), 0) >= 1  # type: ignore[attr-defined]


def test_revoking_the_allow_cuts_an_established_connection_within_a_second(
        clean: Env) -> None:
    t = clean.topo
    allow = ingress(PolicyKey(IN, IDS["p0"], TCP, 9000, 9000))
    clean.set_policy("p1", allow)
    proc = t.spawn(clean.ns("p0"), "stream", clean.ip("p1"), "9000")
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "connected"
        assert proc.stdout.readline().startswith("ok")
        clean.set_policy("p1", ingress())
        revoked = time.monotonic()
        # lines already in flight may still arrive; none after the cut settles
        os_set_nonblocking(proc.stdout)
        time.sleep(1.0)
        _ = read_available(proc.stdout)
        time.sleep(1.0)
        assert read_available(proc.stdout) == "", "data flowed after revocation"
        assert time.monotonic() - revoked < 5
        # restoring the allow lets the same connection flow again
        clean.set_policy("p1", allow)
        assert wait_for(lambda: "ok" in read_available(proc.stdout), 3.0)  # type: ignore[arg-type]
    finally:
        t.stop(proc)


def test_events_carry_identities_tuple_flags_reason_and_match_type(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p1", ingress(PolicyKey(IN, IDS["p0"], TCP, 80, 80)))
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.tcp(clean.ns("p2"), clean.ip("p1"), 80, 0.3) == "timeout"
    evs = clean.drain(0.1)
    ep1 = clean.slot("p1").endpoint_id
    allowed = [e for e in evs if e.endpoint_id == ep1 and e.type == EventType.POLICY_VERDICT
               and e.allowed]
    assert len(allowed) == 1
    a = allowed[0]
    assert (a.direction, a.src_identity, a.dst_identity) == (Direction.INGRESS,
                                                            IDS["p0"], IDS["p1"])
    assert (a.src_ip, a.dst_ip, a.protocol, a.dst_port) == (clean.ip("p0"), clean.ip("p1"),
                                                            TCP, 80)
    assert a.tcp_flags & 0x02 and a.match_type == MatchType.L3_L4 and a.drop_reason == 0
    assert a.timestamp_ns > 1_600_000_000 * 10**9   # realtime, not ktime
    denied = [e for e in evs if e.endpoint_id == ep1 and not e.allowed]
    kinds = {e.type for e in denied}
    assert kinds == {EventType.POLICY_VERDICT, EventType.DROP}
    assert all(e.src_identity == IDS["p2"] and e.drop_reason == DropReason.POLICY_DENIED
               for e in denied)
    # egress of p0 is not enforced: its new connection is still reported, match none
    out = [e for e in evs if e.endpoint_id == clean.slot("p0").endpoint_id
           and e.type == EventType.POLICY_VERDICT]
    assert out and out[0].direction == Direction.EGRESS
    assert out[0].match_type == MatchType.NONE and out[0].allowed


def test_icmp_error_for_a_tracked_flow_passes_as_related(clean: Env) -> None:
    t = clean.topo
    clean.set_policy("p0", ingress())
    # nothing listens on UDP 9999 in p1: p1's port-unreachable is related to p0's flow
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 9999) == "refused"   # the error arrived
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"


def test_conntrack_lists_entries_with_state_and_gc_keeps_live_ones(clean: Env) -> None:
    t = clean.topo
    assert t.tcp(clean.ns("p0"), clean.ip("p1"), 80) == "ok"
    assert t.udp(clean.ns("p0"), clean.ip("p1"), 5353) == "ok"
    entries = clean.dp.dump_conntrack()  # type: ignore[attr-defined]
    states = {(e.endpoint_id, e.protocol, e.state) for e in entries}
    ep0, ep1 = clean.slot("p0").endpoint_id, clean.slot("p1").endpoint_id
    assert (ep0, UDP, "udp") in states and (ep1, UDP, "udp") in states
    tcp_states = {e.state for e in entries if e.protocol == TCP}
    assert tcp_states <= {"closing", "fin-wait", "established"}, tcp_states
    assert clean.dp.collect_conntrack_garbage() == 0  # type: ignore[attr-defined]


def os_set_nonblocking(f) -> None:  # type: ignore[no-untyped-def]
    import os

    os.set_blocking(f.fileno(), False)


def read_available(f) -> str:  # type: ignore[no-untyped-def]
    try:
        data = f.read()
    except (BlockingIOError, TypeError):
        return ""
    return data or ""
