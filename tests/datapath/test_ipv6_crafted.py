"""IPv6 through the programs with crafted packets (BPF_PROG_TEST_RUN: no network).

One dual-stack endpoint, "the pod" (fd00:200:77::10 and 10.200.77.10), sits on ifindex
1, where test runs look their endpoint up (progrun.py). Its policy, as the engine would
write it:

  ingress  from PEER on TCP 80; from the node (host) on everything
  egress   to PEER on TCP 80 and UDP 53; to PEER2 on everything (L3 only);
           to the ipBlock 2001:db8::/64 on TCP 443 (a CIDR identity)

Each test sends the packets it needs through to_container (into the pod) or
from_container (out of it) and checks the tc verdict, and where it matters the events
and the IPv6 conntrack tables (conntrack6, ct6_unreplied: the rules of conntrack.h hold
for IPv6 alike, the last tests show them). Every test starts with the pod's conntrack
entries gone. The module leaves the session datapath's maps as it found them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from agent.datapath import layout
from agent.datapath.interface import EndpointSlot
from agent.policy.mapstate import (ANY_PROTOCOL, ClusterMaps, Direction, EndpointPolicy,
                                   MatchType, PolicyKey)
from identity.reserved import MIN_CIDR_IDENTITY, ReservedIdentity
from observe.events import DatapathEvent, EventBatch, EventType
from observe.reasons import DropReason
from tests.datapath.conftest import EventListeners
from tests.datapath.progrun import (ICMP6_DEST_UNREACH, ICMP6_ECHO_REPLY, ICMP6_ECHO_REQUEST,
                                    ICMP6_MLD2_REPORT, ICMP6_NEIGHBOUR_ADVERT,
                                    ICMP6_NEIGHBOUR_SOLICIT, ICMP6_PARAMPROB,
                                    ICMP6_PKT_TOOBIG, ICMP6_ROUTER_SOLICIT, ICMP6_TIME_EXCEED,
                                    IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TC_ACT_OK,
                                    TC_ACT_SHOT, TCP_ACK, TCP_SYN, Ext, auth, dest_options,
                                    first_packet, fragment, hop_by_hop, icmp6, icmp6_echo,
                                    icmp6_error, ipv6_frame, ipv6_packet, prog_test_run,
                                    routing, tcp_frame, tcp_header)

POD, POD4 = "fd00:200:77::10", "10.200.77.10"
PEER, PEER4 = "fd00:200:77::11", "10.200.77.11"
PEER2 = "fd00:200:77::12"
NODE = "fd00:200:ff::1"
WORLD_IN_BLOCK, WORLD_OUTSIDE = "2001:db8::7", "2001:db9::7"
BLOCK = "2001:db8::/64"
LINK_LOCAL, ALL_NODES = "fe80::2", "ff02::1"
SOLICITED_NODE = "ff02::1:ff00:10"

IDENT, PEER_ID, PEER2_ID = 7000, 7001, 7002
CIDR_ID = MIN_CIDR_IDENTITY + 700
ENDPOINT_ID = 4000
LOOPBACK = 1                  # skb->ifindex of every test run
PARKED_IFINDEX = 0x7FFE0000   # where the endpoint goes before it is removed

TCP, UDP = IPPROTO_TCP, IPPROTO_UDP

POLICY = EndpointPolicy(
    ingress_enforced=True, egress_enforced=True,
    entries=frozenset({
        PolicyKey(Direction.INGRESS, PEER_ID, TCP, 80, 80),
        PolicyKey(Direction.INGRESS, int(ReservedIdentity.HOST), ANY_PROTOCOL),
        PolicyKey(Direction.EGRESS, PEER_ID, TCP, 80, 80),
        PolicyKey(Direction.EGRESS, PEER_ID, UDP, 53, 53),
        PolicyKey(Direction.EGRESS, PEER2_ID, ANY_PROTOCOL),
        PolicyKey(Direction.EGRESS, CIDR_ID, TCP, 443, 443),
    }))

CLUSTER = {f"{POD}/128": IDENT, f"{POD4}/32": IDENT, f"{PEER}/128": PEER_ID,
           f"{PEER4}/32": PEER_ID, f"{PEER2}/128": PEER2_ID,
           f"{NODE}/128": int(ReservedIdentity.HOST), "::/0": int(ReservedIdentity.WORLD),
           "0.0.0.0/0": int(ReservedIdentity.WORLD)}


@dataclass
class Pod:
    dp: Any
    events: list[DatapathEvent] = field(default_factory=list)

    def on_events(self, batch: EventBatch) -> None:
        self.events.extend(batch.events())

    def into(self, frame: bytes) -> int:
        """The pod's ingress: to_container's tc verdict."""
        return self._run("to_container", frame)

    def out_of(self, frame: bytes) -> int:
        """The pod's egress: from_container's tc verdict."""
        return self._run("from_container", frame)

    def _run(self, prog: str, frame: bytes) -> int:
        rc, _ = prog_test_run(self.dp._progs[prog].fd, frame)
        assert rc in (TC_ACT_OK, TC_ACT_SHOT), f"{prog}: tc verdict {rc}"
        return rc

    def drain(self) -> list[DatapathEvent]:
        while self.dp.poll_events(0):
            pass
        out = [e for e in self.events if e.endpoint_id == ENDPOINT_ID]
        self.events.clear()
        return out

    def conntrack(self) -> list[Any]:
        return [e for e in self.dp.dump_conntrack() if e.endpoint_id == ENDPOINT_ID]

    def forget_connections(self) -> None:
        for name in ("conntrack", "ct_unreplied", "conntrack6", "ct6_unreplied"):
            ct = self.dp._maps[name]
            for k, _ in ct.items():
                if k.endpoint_id == ENDPOINT_ID:
                    ct.delete(k)


@pytest.fixture(scope="module")
def programmed(datapath: Any, event_listeners: EventListeners) -> Iterator[Pod]:
    ipcache, cidrs = datapath.dump_ipcache()
    baseline = ClusterMaps(ipcache, cidrs)
    datapath.sync_cluster_maps(ClusterMaps({**ipcache, **CLUSTER}, {**cidrs, BLOCK: CIDR_ID}))
    slot = EndpointSlot(endpoint_id=ENDPOINT_ID, ifname="", ifindex=LOOPBACK, ipv4=POD4,
                        identity=IDENT, ipv6=POD)
    datapath.update_endpoint(slot, POLICY)
    pod = Pod(datapath)
    try:
        with event_listeners.listening(pod.on_events):
            yield pod
            pod.drain()
    finally:
        # Off the loopback before removal: removing detaches from the endpoint's ifindex.
        datapath.update_endpoint(EndpointSlot(ENDPOINT_ID, "", PARKED_IFINDEX, POD4, IDENT,
                                              POD), POLICY)
        datapath.remove_endpoint(ENDPOINT_ID)
        datapath.sync_cluster_maps(baseline)


@pytest.fixture
def pod(programmed: Pod) -> Pod:
    programmed.forget_connections()
    programmed.drain()
    return programmed


def syn6(src: str, dst: str, dport: int, ext: tuple[Ext, ...] = (), sport: int = 40000
         ) -> bytes:
    return first_packet(TCP, src, dst, sport, dport, ext=ext)


def verdicts(events: list[DatapathEvent]) -> list[tuple[bool, str, str, int, int]]:
    return [(e.allowed, e.src_ip, e.dst_ip, e.dst_port, e.src_identity)
            for e in events if e.type == EventType.POLICY_VERDICT]


def drops(events: list[DatapathEvent]) -> list[DropReason]:
    return [DropReason(e.drop_reason) for e in events if e.type == EventType.DROP]


# --- extension header chains -------------------------------------------------------------

CHAINS: dict[str, tuple[Ext, ...]] = {
    "no extension header": (),
    "hop-by-hop": (hop_by_hop(),),
    "destination options": (dest_options(16),),
    "routing": (routing(2),),
    "a first fragment": (fragment(0, more=True),),
    "authentication": (auth(),),
    "every kind, in RFC 8200's order": (hop_by_hop(16), dest_options(), routing(),
                                         fragment(0), auth(), dest_options(24)),
}


@pytest.mark.parametrize("chain", CHAINS.values(), ids=CHAINS.keys())
def test_a_connection_behind_an_extension_header_chain_is_decided_on_its_port(
        pod: Pod, chain: tuple[Ext, ...]) -> None:
    assert pod.into(syn6(PEER, POD, 80, chain)) == TC_ACT_OK
    assert pod.into(syn6(PEER, POD, 81, chain, sport=40001)) == TC_ACT_SHOT
    events = pod.drain()
    assert verdicts(events) == [(True, PEER, POD, 80, PEER_ID), (False, PEER, POD, 81, PEER_ID)]
    assert drops(events) == [DropReason.POLICY_DENIED]
    # Tracked like any connection: the reply passes although egress allows no port 40000.
    synack = ipv6_frame(POD, PEER, TCP, tcp_header(80, 40000, TCP_SYN | TCP_ACK), chain)
    assert pod.out_of(synack) == TC_ACT_OK


def test_the_longest_chain_walked_passes_and_one_header_more_is_dropped(pod: Pod) -> None:
    longest = (dest_options(),) * layout.IPV6_EXT_MAX
    assert pod.into(syn6(PEER, POD, 80, longest)) == TC_ACT_OK
    too_long = longest + (dest_options(),)
    assert pod.into(syn6(PEER, POD, 80, too_long, sport=40001)) == TC_ACT_SHOT
    assert drops(pod.drain()) == [DropReason.INVALID_IPV6_EXTENSION_HEADER]


def test_a_hop_by_hop_header_anywhere_but_first_is_dropped(pod: Pod) -> None:
    assert pod.into(syn6(PEER, POD, 80, (dest_options(), hop_by_hop()))) == TC_ACT_SHOT
    assert drops(pod.drain()) == [DropReason.INVALID_IPV6_EXTENSION_HEADER]


def test_a_chain_cut_short_is_dropped(pod: Pod) -> None:
    frame = syn6(PEER, POD, 80, (hop_by_hop(),))
    cut = frame[:14 + 40 + 2]      # the hop-by-hop header's first two bytes only
    assert pod.into(cut) == TC_ACT_SHOT
    assert drops(pod.drain()) == [DropReason.INVALID_IPV6_EXTENSION_HEADER]


# --- fragments -----------------------------------------------------------------------------

def test_a_non_first_fragment_is_decided_without_ports_and_not_tracked(pod: Pod) -> None:
    # The rest of a TCP segment to port 80: no ports to match, so the PEER's TCP/80
    # allow cannot apply (as for IPv4: only entries without ports do) ...
    rest = ipv6_frame(PEER, POD, TCP, b"\0" * 64, (fragment(offset=185),))
    assert pod.into(rest) == TC_ACT_SHOT
    # ... while the node's any-protocol allow does.
    assert pod.into(ipv6_frame(NODE, POD, TCP, b"\0" * 64, (fragment(offset=185),))) == \
        TC_ACT_OK
    assert drops(pod.drain()) == [DropReason.POLICY_DENIED]
    assert pod.conntrack() == []


def test_a_non_first_fragment_behind_other_headers_is_found(pod: Pod) -> None:
    frame = ipv6_frame(PEER2, POD, UDP, b"\0" * 32,
                       (hop_by_hop(), fragment(offset=3), dest_options()))
    # Egress to PEER2 allows everything: the fragment leaving toward it passes, and the
    # walk stopped at the fragment header (what follows is payload, not a header).
    out = ipv6_frame(POD, PEER2, UDP, b"\0" * 32, (hop_by_hop(), fragment(offset=3)))
    assert pod.out_of(out) == TC_ACT_OK
    assert pod.into(frame) == TC_ACT_SHOT      # ingress from PEER2: nothing allows it


def test_a_first_fragment_is_parsed_to_its_ports_and_tracked(pod: Pod) -> None:
    assert pod.into(syn6(PEER, POD, 80, (fragment(0, more=True),))) == TC_ACT_OK
    [entry] = pod.conntrack()
    assert (entry.src_ip, entry.dst_ip, entry.dst_port, entry.state) == \
        (PEER, POD, 80, "syn-sent")


# --- ICMPv6 errors -------------------------------------------------------------------------

ERRORS = {"destination unreachable": ICMP6_DEST_UNREACH, "packet too big": ICMP6_PKT_TOOBIG,
          "time exceeded": ICMP6_TIME_EXCEED, "parameter problem": ICMP6_PARAMPROB}


@pytest.mark.parametrize("kind", ERRORS.values(), ids=ERRORS.keys())
def test_an_icmpv6_error_about_a_tracked_connection_passes_as_related(pod: Pod, kind: int
                                                                       ) -> None:
    assert pod.out_of(syn6(POD, PEER, 80)) == TC_ACT_OK        # egress allows it: tracked
    pod.drain()
    # A router (world: ingress allows nothing from it) reports about the pod's SYN.
    embedded = ipv6_packet(POD, PEER, TCP, tcp_header(40000, 80, TCP_SYN))
    error = ipv6_frame(WORLD_OUTSIDE, POD, IPPROTO_ICMPV6, icmp6_error(kind, embedded))
    assert pod.into(error) == TC_ACT_OK
    # About a connection the pod never made: policy decides, and nothing allows it.
    other = ipv6_packet(POD, PEER, TCP, tcp_header(40001, 80, TCP_SYN))
    assert pod.into(ipv6_frame(WORLD_OUTSIDE, POD, IPPROTO_ICMPV6,
                               icmp6_error(kind, other))) == TC_ACT_SHOT
    assert drops(pod.drain()) == [DropReason.POLICY_DENIED]


def test_an_icmpv6_error_embedding_extension_headers_is_related_too(pod: Pod) -> None:
    chain = (hop_by_hop(), dest_options())
    assert pod.out_of(syn6(POD, PEER, 80, chain)) == TC_ACT_OK
    embedded = ipv6_packet(POD, PEER, TCP, tcp_header(40000, 80, TCP_SYN), chain)
    error = ipv6_frame(WORLD_OUTSIDE, POD, IPPROTO_ICMPV6,
                       icmp6_error(ICMP6_PKT_TOOBIG, embedded), (dest_options(),))
    assert pod.into(error) == TC_ACT_OK


def test_icmpv6_echo_is_tracked_by_its_id(pod: Pod) -> None:
    request = ipv6_frame(POD, PEER2, IPPROTO_ICMPV6, icmp6_echo(ICMP6_ECHO_REQUEST, 77))
    assert pod.out_of(request) == TC_ACT_OK                     # PEER2: L3-only allow
    reply = ipv6_frame(PEER2, POD, IPPROTO_ICMPV6, icmp6_echo(ICMP6_ECHO_REPLY, 77))
    assert pod.into(reply) == TC_ACT_OK                         # its reply, by id
    stray = ipv6_frame(PEER2, POD, IPPROTO_ICMPV6, icmp6_echo(ICMP6_ECHO_REPLY, 78))
    assert pod.into(stray) == TC_ACT_SHOT                       # no request with id 78
    # Events show an echo by its id and type << 8 | code, as for ICMP.
    seen = [(e.allowed, e.protocol, e.src_port, e.dst_port) for e in pod.drain()
            if e.type == EventType.POLICY_VERDICT]
    assert seen == [(True, IPPROTO_ICMPV6, 77, ICMP6_ECHO_REQUEST << 8),
                    (False, IPPROTO_ICMPV6, 78, ICMP6_ECHO_REPLY << 8)]


# --- link-local control, the source check, the node ------------------------------------------

LINK_CONTROL = {
    "neighbour solicitation": (ICMP6_NEIGHBOUR_SOLICIT, SOLICITED_NODE, 255),
    "neighbour advertisement": (ICMP6_NEIGHBOUR_ADVERT, ALL_NODES, 255),
    "router solicitation": (ICMP6_ROUTER_SOLICIT, "ff02::2", 255),
    "MLDv2 report": (ICMP6_MLD2_REPORT, "ff02::16", 1),
}


@pytest.mark.parametrize("kind, dst, hop_limit", LINK_CONTROL.values(), ids=LINK_CONTROL.keys())
def test_neighbour_discovery_and_mld_pass_both_ways_as_arp_does(
        pod: Pod, kind: int, dst: str, hop_limit: int) -> None:
    chain = (hop_by_hop(),) if kind == ICMP6_MLD2_REPORT else ()   # MLD's router alert
    for src in (LINK_LOCAL, "::"):
        frame = ipv6_frame(src, dst, IPPROTO_ICMPV6, icmp6(kind), chain, hop_limit)
        assert pod.out_of(frame) == TC_ACT_OK
        assert pod.into(frame) == TC_ACT_OK
    assert pod.drain() == []


def test_discovery_that_crossed_a_router_is_no_link_control(pod: Pod) -> None:
    routed = ipv6_frame(LINK_LOCAL, ALL_NODES, IPPROTO_ICMPV6,
                        icmp6(ICMP6_NEIGHBOUR_ADVERT), hop_limit=254)
    assert pod.out_of(routed) == TC_ACT_SHOT    # and fe80::2 is not the pod's address
    assert drops(pod.drain()) == [DropReason.INVALID_SOURCE_IP]


def test_ipv6_from_an_address_not_the_pods_is_dropped_as_invalid_source(pod: Pod) -> None:
    assert pod.out_of(syn6(PEER2, PEER, 80)) == TC_ACT_SHOT       # another pod's address
    assert pod.out_of(syn6(POD, PEER, 80)) == TC_ACT_OK           # its own
    events = pod.drain()
    assert drops(events) == [DropReason.INVALID_SOURCE_IP]
    spoofed = next(e for e in events if e.type == EventType.DROP)
    assert (spoofed.src_ip, spoofed.src_identity) == (PEER2, 0)


def test_the_node_reaches_the_pod_over_ipv6(pod: Pod) -> None:
    assert pod.into(syn6(NODE, POD, 12345)) == TC_ACT_OK
    [verdict] = verdicts(pod.drain())
    assert verdict == (True, NODE, POD, 12345, int(ReservedIdentity.HOST))


# --- conntrack, identities, ipBlocks ---------------------------------------------------------

def test_an_allowed_ipv6_connection_is_tracked_and_its_replies_pass(pod: Pod) -> None:
    assert pod.into(syn6(PEER, POD, 80)) == TC_ACT_OK
    assert pod.out_of(ipv6_frame(POD, PEER, TCP, tcp_header(80, 40000, TCP_SYN | TCP_ACK))) \
        == TC_ACT_OK
    assert pod.into(ipv6_frame(PEER, POD, TCP, tcp_header(40000, 80, TCP_ACK, b"x"))) == \
        TC_ACT_OK
    [entry] = pod.conntrack()
    assert (entry.direction, entry.src_ip, entry.src_port, entry.dst_ip, entry.dst_port,
            entry.state) == (Direction.INGRESS, PEER, 40000, POD, 80, "established")
    # One verdict for the connection, carrying both identities and IPv6 addresses.
    [event] = pod.drain()
    assert (event.type, event.allowed, event.match_type, event.src_identity,
            event.dst_identity) == (EventType.POLICY_VERDICT, True, MatchType.L3_L4,
                                    PEER_ID, IDENT)


def test_an_ipv6_ipblock_holds_ipv6_peers_only(pod: Pod) -> None:
    assert pod.out_of(syn6(POD, WORLD_IN_BLOCK, 443)) == TC_ACT_OK
    assert pod.out_of(syn6(POD, WORLD_OUTSIDE, 443, sport=40001)) == TC_ACT_SHOT
    # An IPv4 world address is in no IPv6 block: the CIDR identity is not its.
    assert pod.out_of(tcp_frame(POD4, "203.0.113.7", 40002, 443, TCP_SYN)) == TC_ACT_SHOT
    world = int(ReservedIdentity.WORLD)
    seen = [(e.allowed, e.dst_ip, e.dst_identity) for e in pod.drain()
            if e.type == EventType.POLICY_VERDICT]
    # The event names an off-cluster peer by its CIDR identity when a block holds it.
    assert seen == [(True, WORLD_IN_BLOCK, CIDR_ID), (False, WORLD_OUTSIDE, world),
                    (False, "203.0.113.7", world)]


def test_the_dual_stack_pods_ipv4_side_keeps_its_own_checks(pod: Pod) -> None:
    assert pod.out_of(tcp_frame(POD4, PEER4, 40000, 80, TCP_SYN)) == TC_ACT_OK
    assert pod.out_of(tcp_frame(PEER4, POD4, 40001, 80, TCP_SYN)) == TC_ACT_SHOT
    assert drops(pod.drain()) == [DropReason.INVALID_SOURCE_IP]
    [entry] = pod.conntrack()
    assert (entry.src_ip, entry.dst_ip) == (POD4, PEER4)


# --- conntrack's rules, IPv6 alike (bpf/lib/conntrack.h) -------------------------------------

def tables_of(pod: Pod) -> dict[str, list[tuple[int, int]]]:
    """The pod's IPv6 entries per table: (source port, destination port) of the first
    packet (a key holds the tuple as it leaves the pod: one opened inward is swapped)."""
    def first(k: Any, v: Any) -> tuple[int, int]:
        inward = bool(v.flags & layout.CT_F_INGRESS_FIRST)
        return (k.dport, k.sport) if inward else (k.sport, k.dport)

    return {name: sorted(first(k, v) for k, v in pod.dp._maps[name].items()
                         if k.endpoint_id == ENDPOINT_ID)
            for name in ("conntrack6", "ct6_unreplied")}


def test_an_ipv6_connection_moves_to_conntrack6_once_answered(pod: Pod) -> None:
    assert pod.into(syn6(PEER, POD, 80)) == TC_ACT_OK
    assert tables_of(pod) == {"conntrack6": [], "ct6_unreplied": [(40000, 80)]}
    synack = ipv6_frame(POD, PEER, TCP, tcp_header(80, 40000, TCP_SYN | TCP_ACK))
    assert pod.out_of(synack) == TC_ACT_OK
    # TCP is confirmed by the originator's first packet after the answer.
    assert tables_of(pod)["conntrack6"] == []
    assert pod.into(ipv6_frame(PEER, POD, TCP, tcp_header(40000, 80, TCP_ACK))) == TC_ACT_OK
    assert tables_of(pod) == {"conntrack6": [(40000, 80)], "ct6_unreplied": []}
    # UDP by its first reply.
    assert pod.out_of(first_packet(UDP, POD, PEER, 40001, 53)) == TC_ACT_OK
    reply = ipv6_frame(PEER, POD, UDP, b"\0\x35\x9c\x41\0\x09\0\0x")   # 53 -> 40001
    assert pod.into(reply) == TC_ACT_OK
    assert tables_of(pod)["conntrack6"] == [(40000, 80), (40001, 53)]


def test_an_ipv6_tcp_entry_opened_without_a_syn_lives_seconds(pod: Pod) -> None:
    ack = ipv6_frame(PEER, POD, TCP, tcp_header(40000, 80, TCP_ACK, b"x"))
    assert pod.into(ack) == TC_ACT_OK
    [entry] = pod.conntrack()
    assert entry.state == "midstream" and entry.expires_in_s <= 10


def test_after_a_revocation_no_ipv6_packet_of_the_connection_passes_either_way(
        pod: Pod) -> None:
    assert pod.into(syn6(PEER, POD, 80)) == TC_ACT_OK
    assert pod.out_of(ipv6_frame(POD, PEER, TCP, tcp_header(80, 40000, TCP_SYN | TCP_ACK))) \
        == TC_ACT_OK
    data_in = ipv6_frame(PEER, POD, TCP, tcp_header(40000, 80, TCP_ACK, b"x"))
    data_out = ipv6_frame(POD, PEER, TCP, tcp_header(80, 40000, TCP_ACK, b"y"))
    assert pod.into(data_in) == TC_ACT_OK
    slot = EndpointSlot(ENDPOINT_ID, "", LOOPBACK, POD4, IDENT, POD)
    revoked = EndpointPolicy(True, True, frozenset(
        k for k in POLICY.entries if not (k.peer == PEER_ID and k.direction is Direction.INGRESS)))
    pod.drain()
    pod.dp.update_endpoint(slot, revoked)
    try:
        assert pod.into(data_in) == TC_ACT_SHOT
        assert pod.out_of(data_out) == TC_ACT_SHOT        # the reply is decided as forward
        assert drops(pod.drain()) == [DropReason.POLICY_DENIED, DropReason.POLICY_DENIED]
    finally:
        pod.dp.update_endpoint(slot, POLICY)
    assert pod.out_of(data_out) == TC_ACT_OK              # allowed again: re-stamped
    assert pod.into(data_in) == TC_ACT_OK


def test_an_icmpv6_error_about_a_stale_connection_is_decided_as_plain_icmpv6(pod: Pod) -> None:
    assert pod.out_of(syn6(POD, PEER, 80)) == TC_ACT_OK
    before = pod.dp.policy_revision()
    pod.dp.sync_cluster_maps(ClusterMaps(*pod.dp.dump_ipcache()))     # a bump, no re-stamp
    assert pod.dp.policy_revision() > before
    embedded = ipv6_packet(POD, PEER, TCP, tcp_header(40000, 80, TCP_SYN))
    error = ipv6_frame(WORLD_OUTSIDE, POD, IPPROTO_ICMPV6,
                       icmp6_error(ICMP6_DEST_UNREACH, embedded))
    assert pod.into(error) == TC_ACT_SHOT                 # world may send the pod nothing
    assert pod.out_of(syn6(POD, PEER, 80)) == TC_ACT_OK   # the SYN again: re-stamped
    assert pod.into(error) == TC_ACT_OK
