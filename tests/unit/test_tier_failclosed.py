"""Tiers under the agent's fail-closed paths (agent/policy/limits.py, agent/regeneration.py):
an endpoint that does not fit the policy map isolates where tiers decided too; a cidr map
out of step turns tier rules allowing a CIDR identity into denies; the revoke-first
step keeps the written tier entries (dropping them would open what a Deny closed); and
tier entries count towards the map shares. Each never more open than the policy."""

from __future__ import annotations

from itertools import product
from pathlib import Path

from agent.k8s.objects import (LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort,
                               PolicyRule, PolicyType)
from agent.mapshares import NODE_ENTRY, Planned
from agent.policy.limits import isolating, key_entries, policy_map_entries
from agent.policy.mapstate import (EndpointPolicy, PolicyKey, TierAction, TierEntry,
                                   TierLevel)
from agent.regeneration import _without_cidr_entries
from core.protocols import Direction
from identity.reserved import MIN_CIDR_IDENTITY, ReservedIdentity
from test_agent import cluster, push
from test_agent_tiers import deny_frontend_to_backend, start

HOST = int(ReservedIdentity.HOST)
POD, CIDR = 300, MIN_CIDR_IDENTITY + 5
ING = Direction.INGRESS


def tier(peer: int, rank: int, action: TierAction, level: TierLevel = TierLevel.ADMIN,
         port: int | None = None, direction: Direction = ING) -> TierEntry:
    low, high = (port, port) if port is not None else (0, 65535)
    return TierEntry(direction, level, peer, 6, low, high, rank, action)


TIERED = EndpointPolicy(tier_entries=frozenset({
    tier(HOST, 0, TierAction.ALLOW),
    tier(POD, 1, TierAction.PASS, port=80),
    tier(POD, 2, TierAction.ALLOW),
    tier(CIDR, 3, TierAction.ALLOW),
    tier(CIDR, 1, TierAction.DENY, TierLevel.BASELINE, port=443),
    tier(POD, 4, TierAction.ALLOW, direction=Direction.EGRESS)}))


def never_more_open(narrow: EndpointPolicy, wide: EndpointPolicy) -> None:
    for direction, peer, port in product(Direction, (HOST, POD, CIDR, 2), (22, 80, 443)):
        if narrow.decide(direction, {peer}, 6, port).allowed:
            assert wide.decide(direction, {peer}, 6, port).allowed, (direction, peer, port)


def test_an_endpoint_closed_for_the_map_isolates_where_only_tiers_decided() -> None:
    closed = isolating(TIERED, NODE_ENTRY)
    assert closed.ingress_enforced and closed.egress_enforced
    never_more_open(closed, TIERED)
    assert closed.decide(ING, {HOST}, 6, 22).allowed           # the node's own rule stays
    assert not closed.decide(ING, {POD}, 6, 22).allowed
    assert not closed.decide(Direction.EGRESS, {POD}, 6, 22).allowed


def test_tier_entries_count_towards_the_policy_map() -> None:
    allow = PolicyKey(ING, POD, 6, 80, 80)
    policy = EndpointPolicy(True, False, frozenset({allow}), TIERED.tier_entries)
    assert policy_map_entries(policy) == key_entries(allow) + sum(
        key_entries(e.key) for e in TIERED.tier_entries)


def test_a_cidr_map_out_of_step_turns_tier_allows_of_cidr_identities_into_denies() -> None:
    out = _without_cidr_entries(Planned(TIERED), "cidr map out of step").policy
    never_more_open(out, TIERED)
    assert not out.decide(ING, {CIDR}, 6, 22).allowed
    assert out.decide(ING, {POD}, 6, 22).allowed
    assert {e.action for e in out.tier_entries if e.peer == CIDR} == {TierAction.DENY}
    assert _without_cidr_entries(Planned(EndpointPolicy()), "x").policy == EndpointPolicy()


def test_revoking_first_keeps_the_written_tier_entries(tmp_path: Path) -> None:
    """A NetworkPolicy port swapped for another: the old one is revoked first, in an
    interim write, the new one added after; an Admin Deny written before stays in force
    through both."""
    agent, source, datapath = start(tmp_path)
    try:
        back = agent.register_endpoint("default", "backend", "lo", "10.244.1.3", timeout=5)
        objs = cluster()
        deny = deny_frontend_to_backend("x")
        objs.cluster_policies[deny.key] = deny

        def allow(*ports: int) -> NetworkPolicy:
            return NetworkPolicy(
                "default", "allow", LabelSelector.of({"app": "backend"}),
                frozenset({PolicyType.INGRESS}), ingress=(PolicyRule(
                    peers=(PolicyPeer(namespace_selector=LabelSelector.of({})),),
                    ports=tuple(PolicyPort(port=p) for p in ports)),))

        objs.policies["default/allow"] = allow(80, 81)
        push(source, objs, 2)
        assert agent.wait_for_revision(2, 5)
        written = datapath.policies[back.id]
        assert written.tier_entries
        datapath.calls.clear()
        objs.policies["default/allow"] = allow(80, 82)
        push(source, objs, 3)
        assert agent.wait_for_revision(3, 5)
        writes = [args[1] for name, args in datapath.calls
                  if name == "update_endpoint" and args[0].endpoint_id == back.id]
        assert len(writes) == 2, writes   # the interim revocation, then the target
        assert [sorted({k.port_low for k in w.entries if k.peer != 1}) for w in writes] == [
            [80], [80, 82]]
        assert all(w.tier_entries == written.tier_entries for w in writes)
        assert not datapath.decide(back.id, ING, "10.244.1.2", 6, 80)[0]
    finally:
        agent.stop()
