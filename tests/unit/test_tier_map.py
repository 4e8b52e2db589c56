"""Tiers in the policy map: what the writer writes, read the way the kernel reads it,
decides every packet as `EndpointPolicy.decide` does.

The kernel side is modelled here in a few lines: an LPM lookup over the entries
`writer.expand` produces (the longest prefix of the key wins, nothing else), and
bpf/lib/policy.h's policy_decide over the three lookups (peer identity, CIDR identity,
ANY). Random endpoint policies mixing NetworkPolicy allows with Admin and Baseline rules
of every action, overlapping port ranges and peers, are compared packet by packet with
the map state's own decision, so `flatten` (which gives each prefix the facts of the
prefixes covering it) is checked against the one-lookup-per-identity contract without a
kernel. tests/datapath/test_generated_scenarios.py then runs the real programs.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.datapath import layout
from agent.datapath.writer import EntryValue, PolicyMapKey, endpoint_flags, expand
from agent.policy.mapstate import (ANY_PROTOCOL, Direction, EndpointPolicy, MatchType,
                                   PolicyKey, TierAction, TierEntry, TierLevel)
from core.protocols import IPProtocol

EP = 7
PEERS = (256, 257, 1 << 24, (1 << 24) + 1)
PROTOCOLS = (int(IPProtocol.TCP), int(IPProtocol.UDP))
PORTS = (1, 79, 80, 81, 443, 1000, 1023, 1024, 8080, 65535)
_SPEC = {MatchType.L3_L4: 4, MatchType.L3_ONLY: 3, MatchType.L4_ONLY: 2, MatchType.ALL: 1,
         MatchType.NONE: 0}


def lpm(entries: dict[PolicyMapKey, EntryValue], direction: Direction, peer: int,
        protocol: int, port: int) -> EntryValue | None:
    """The kernel's LPM lookup with the full 80-bit key."""
    best: tuple[int, EntryValue] | None = None
    for mk, value in entries.items():
        if (mk.endpoint_id, mk.direction, mk.peer) != (EP, int(direction), peer):
            continue
        if mk.prefixlen > layout.POLICY_PREFIX_ANY_PROTO and mk.protocol != protocol:
            continue
        bits = mk.prefixlen - layout.POLICY_PREFIX_ANY_PORT
        if bits > 0 and (port >> (16 - bits)) != (mk.port >> (16 - bits)):
            continue
        if best is None or mk.prefixlen > best[0]:
            best = (mk.prefixlen, value)
    return None if best is None else best[1]


def kernel_decide(policy: EndpointPolicy, direction: Direction, peer: int, cidr: int,
                  protocol: int, port: int) -> tuple[int, int]:
    """bpf/lib/policy.h policy_decide: (POLICY_* verdict, match type)."""
    flags = endpoint_flags(policy)
    ingress = direction is Direction.INGRESS
    applies = layout.EP_F_INGRESS_ENFORCED | layout.EP_F_INGRESS_TIERED if ingress else \
        layout.EP_F_EGRESS_ENFORCED | layout.EP_F_EGRESS_TIERED
    if not flags & applies:
        return layout.POLICY_ALLOWED, 0
    entries = expand(EP, policy)
    found = [lpm(entries, direction, p, protocol, port)
             for p in ([peer] + ([cidr] if cidr and cidr != peer else []) + [0])]
    values = [v for v in found if v is not None]
    admin = min((v for v in values if v.admin_flags), key=lambda v: v.admin_rank, default=None)
    np = max((v for v in values if v.match_type), default=None,
             key=lambda v: _SPEC[MatchType(v.match_type)])
    baseline = min((v for v in values if v.baseline_flags), key=lambda v: v.baseline_rank,
                   default=None)
    enforced = layout.EP_F_INGRESS_ENFORCED if ingress else layout.EP_F_EGRESS_ENFORCED
    if admin is not None and admin.admin_flags & 3 != TierAction.PASS:
        rule = admin.admin_flags
    elif flags & enforced:
        rule = (TierAction.ALLOW | (np.match_type << 3)) if np else TierAction.DENY
    elif baseline is not None and baseline.baseline_flags & 3 != TierAction.PASS:
        rule = baseline.baseline_flags
    else:
        deny = layout.EP_F_INGRESS_DEFAULT_DENY if ingress else layout.EP_F_EGRESS_DEFAULT_DENY
        rule = TierAction.DENY if flags & deny else TierAction.ALLOW
    if rule & 3 == TierAction.ALLOW:
        return layout.POLICY_ALLOWED, (rule >> 3) & 7
    if flags & layout.EP_F_AUDIT or rule & 4:
        return layout.POLICY_AUDITED, (rule >> 3) & 7
    return layout.POLICY_DENIED, (rule >> 3) & 7


@st.composite
def ranges(draw: st.DrawFn) -> tuple[int, int, int]:
    protocol = draw(st.sampled_from(PROTOCOLS + (ANY_PROTOCOL,)))
    if protocol == ANY_PROTOCOL:
        return protocol, 0, 65535
    low = draw(st.sampled_from(PORTS + (0,)))
    high = draw(st.sampled_from([p for p in PORTS + (65535,) if p >= low]))
    return protocol, low, high


@st.composite
def endpoint_policies(draw: st.DrawFn) -> EndpointPolicy:
    allows = set()
    for _ in range(draw(st.integers(0, 5))):
        proto, low, high = draw(ranges())
        allows.add(PolicyKey(draw(st.sampled_from(Direction)),
                             draw(st.sampled_from(PEERS + (0,))), proto, low, high))
    # Rules as the engine ranks them: one rank per rule of a tier and direction, one
    # action, audit and shape (every port, or ports) per rule, entries per peer and port.
    tiers = set()
    for direction in Direction:
        for level in TierLevel:
            for rank in range(draw(st.integers(0, 4))):
                action, audit = draw(st.sampled_from(TierAction)), draw(st.booleans())
                with_ports = draw(st.booleans())
                for _ in range(draw(st.integers(1, 3))):
                    proto, low, high = draw(ranges()) if with_ports else (ANY_PROTOCOL, 0,
                                                                          65535)
                    if with_ports:   # API ports start at 1: never "every port"
                        proto = proto if proto != ANY_PROTOCOL else int(IPProtocol.TCP)
                        low, high = max(low, 1), max(high, 1)
                    tiers.add(TierEntry(direction, level, draw(st.sampled_from(PEERS)),
                                        proto, low, high, rank, action, audit))
    return EndpointPolicy(draw(st.booleans()), draw(st.booleans()), frozenset(allows),
                          frozenset(tiers),
                          frozenset(draw(st.sets(st.sampled_from(Direction)))),
                          draw(st.integers(0, 3)) == 0)


def verdict_of(policy: EndpointPolicy, direction: Direction, peers: list[int], protocol: int,
               port: int) -> tuple[int, int]:
    decision = policy.decide(direction, peers, protocol, port)
    code = (layout.POLICY_ALLOWED if decision.allowed else
            layout.POLICY_AUDITED if decision.audited else layout.POLICY_DENIED)
    return code, int(decision.match_type)


@settings(max_examples=300, deadline=None)
@given(policy=endpoint_policies(), peer=st.sampled_from(PEERS[:2] + (2,)),
       cidr=st.sampled_from((0,) + PEERS[2:]), protocol=st.sampled_from(PROTOCOLS),
       port=st.sampled_from(PORTS))
def test_the_map_read_as_the_kernel_reads_it_decides_as_the_map_state(
        policy: EndpointPolicy, peer: int, cidr: int, protocol: int, port: int) -> None:
    for direction in Direction:
        peers = [peer] + ([cidr] if cidr else [])
        assert kernel_decide(policy, direction, peer, cidr, protocol, port) == \
            verdict_of(policy, direction, peers, protocol, port), (direction, policy)


def test_an_admin_deny_of_a_whole_protocol_reaches_a_port_entry_of_the_same_peer() -> None:
    """The case flatten exists for: the /80 entry of an allow must carry the Deny of the
    /64 entry, or its lookup (the longest prefix) would hide the Deny."""
    deny = TierEntry(Direction.INGRESS, TierLevel.ADMIN, 256, 6, rank=1,
                     action=TierAction.DENY)
    allow = PolicyKey(Direction.INGRESS, 256, 6, 80, 80)
    policy = EndpointPolicy(ingress_enforced=True, entries=frozenset({allow}),
                            tier_entries=frozenset({deny}))
    entries = expand(EP, policy)
    port80 = PolicyMapKey(EP, 0, 256, 6, 80, 80)
    assert entries[port80].match_type == MatchType.L3_L4 and entries[port80].admin_rank == 1
    assert kernel_decide(policy, Direction.INGRESS, 256, 0, 6, 80)[0] == layout.POLICY_DENIED


def test_networkpolicy_only_maps_are_unchanged_by_tiers() -> None:
    """Without tier entries no value inherits anything: the map is what it was before."""
    policy = EndpointPolicy(ingress_enforced=True, entries=frozenset({
        PolicyKey(Direction.INGRESS, 256, ANY_PROTOCOL),
        PolicyKey(Direction.INGRESS, 256, 6, 80, 80)}))
    assert expand(EP, policy) == {
        PolicyMapKey(EP, 0, 256, 0, 0, 56): EntryValue(MatchType.L3_ONLY),
        PolicyMapKey(EP, 0, 256, 6, 80, 80): EntryValue(MatchType.L3_L4)}
    assert endpoint_flags(policy) == layout.EP_F_INGRESS_ENFORCED
