"""Which tier, policy and rule decided a packet: the engine-side lookup.

    explain(engine, "ns/pod", Direction.EGRESS, peer_identities, protocol, port)

returns the `Decision` the datapath makes (mapstate.EndpointPolicy.decide) together with
the rules behind it, each a `RuleRef`: for an Admin- or Baseline-tier verdict the one
rule that decided (tier, policy, rule index and name, action); for a NetworkPolicy allow
every rule that allows it; for an Admin-tier Pass the rule that passed. `policy trace`
prints it, and flows can name the rule that allowed, denied or audited them (Hubble's
`ingress_allowed_by` / `egress_allowed_by`): the event gives the endpoint, direction,
peer identity, protocol and port this needs.

The answer is the engine's current state: call it under the agent's state lock (the
regenerator's PolicyQueries does), or on an offline engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from core.protocols import Direction
from agent.policy.engine import PolicyEngine
from agent.policy.mapstate import DecidedBy, Decision, TierEntry
from agent.policy.tiers import TierProvenance


@dataclass(frozen=True)
class RuleRef:
    """One rule, as flows and trace name it."""

    tier: str            # "Admin", "Baseline", "NetworkPolicy", or "" for built-in rules
    policy: str          # "ClusterNetworkPolicy/name", "AdminNetworkPolicy/name", "ns/name"
    rule: int            # index in the policy's ingress / egress list (-1: built in)
    rule_name: str       # the rule's `name` ("" when unnamed, NetworkPolicy rules)
    action: str          # "Allow", "Deny", "Pass"
    text: str            # the whole rule as trace prints it

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Explanation:
    decision: Decision
    rules: tuple[RuleRef, ...] = ()     # what decided (several NetworkPolicy allows)
    passed_by: RuleRef | None = None    # the Admin-tier Pass, if one sent it further

    @property
    def summary(self) -> str:
        """One line: "Deny by ClusterNetworkPolicy/x spec.egress[1] \"db\" (Admin tier)"."""
        d = self.decision
        verdict = "AUDIT" if d.audited else "allowed" if d.allowed else "denied"
        if d.by is DecidedBy.NOT_ENFORCED:
            return "allowed: no policy applies"
        if d.by is DecidedBy.DEFAULT:
            return f"{verdict} by default (no rule of any tier decided)"
        if d.by is DecidedBy.NETWORK_POLICY and not d.allowed:
            return f"{verdict}: isolated by NetworkPolicy and no rule allows it"
        rules = "; ".join(r.text for r in self.rules) or "a rule"
        return f"{verdict} by {rules} ({d.by.value})"


def _tier_ref(why: TierProvenance) -> RuleRef:
    return RuleRef(why.tier.value if why.policy else "", why.policy, why.rule, why.rule_name,
                   why.action.value, why.text)


def tier_rule(engine: PolicyEngine, pod_key: str, entry: TierEntry) -> RuleRef:
    """The rule a tier entry of this endpoint comes from (the first, if several)."""
    whys = engine.tiers.provenance(pod_key).get(entry, [])
    if not whys:
        return RuleRef("", "", -1, "", entry.action.name.title(), f"rank {entry.rank}")
    return _tier_ref(min(whys))


def explain(engine: PolicyEngine, pod_key: str, direction: Direction, peers: Iterable[int],
            protocol: int, port: int) -> Explanation:
    """The decision for a forward packet of `pod_key` in `direction` from/to a peer with
    these identities (its ipcache and CIDR identities), and the rules behind it."""
    peer_set = set(peers)
    policy = engine.endpoint_policy(pod_key)
    decision = policy.decide(direction, peer_set, protocol, port)
    passed = tier_rule(engine, pod_key, decision.passed) if decision.passed else None
    if decision.entry is not None:
        return Explanation(decision, (tier_rule(engine, pod_key, decision.entry),), passed)
    if decision.by is DecidedBy.NETWORK_POLICY and decision.allowed:
        whys = sorted({why for key, whys in engine.provenance(pod_key).items()
                       if key.direction is direction and key.matches(peer_set, protocol, port)
                       for why in whys})
        refs = tuple(RuleRef("NetworkPolicy" if w.policy else "", w.policy,
                             -1 if w.rule is None else w.rule, "", "Allow", w.text)
                     for w in whys)
        return Explanation(decision, refs, passed)
    return Explanation(decision, (), passed)
