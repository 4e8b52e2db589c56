"""Cluster-wide policy tiers as immutable values: one model for two API versions.

The Network Policy API (kubernetes-sigs/network-policy-api) has two generations of
cluster-scoped policy, and clusters run both:

    ClusterNetworkPolicy          policy.networking.k8s.io/v1alpha2, `spec.tier` Admin or
                                  Baseline, actions Accept / Deny / Pass
    AdminNetworkPolicy            policy.networking.k8s.io/v1alpha1 (last published in
                                  v0.1.7): the Admin tier, actions Allow / Deny / Pass
    BaselineAdminNetworkPolicy    v1alpha1: the Baseline tier, one object named "default",
                                  no priority, actions Allow / Deny

Both front-ends (agent.k8s.validation.clusternetworkpolicy and .adminnetworkpolicy)
produce a `TieredPolicy` (the values live in agent.k8s.objects beside the other kinds,
re-exported here with what is said about them); the engine sees no difference between
them. Accept and Allow are one action (`RuleAction.ALLOW`).

Semantics, per direction of a pod's traffic (agent.policy.tiers evaluates them):
  1. the Admin tier: the policies selecting the pod in `order_key` order (priority,
     lower first), each policy's rules in order; the first rule matching the packet
     decides: ALLOW and DENY are final, PASS skips the rest of the tier;
  2. NetworkPolicy, when any selects the pod for that direction: what it allows passes,
     the rest is denied;
  3. the Baseline tier, as the Admin tier (a PASS there skips to 4);
  4. allowed (the enforcement mode `always` denies instead).

Policies of one tier with the same priority have no defined order in the API ("the
implementation can apply any of the matching policies"); Membrane orders them by API
(ClusterNetworkPolicy before AdminNetworkPolicy) and then by name, and the BANP, which
has no priority, comes after every ClusterNetworkPolicy of the Baseline tier.
"""

from __future__ import annotations

from typing import AbstractSet, Callable

from agent.k8s.objects import (ANP_API_VERSION, ANP_KIND, API_GROUP, BANP_KIND,
                               BANP_PRIORITY, CNP_API_VERSION, CNP_KIND, MAX_PRIORITY,
                               TIER_KINDS, RuleAction, Tier, TieredPolicy, TierPeer,
                               TierPort, TierRule, TierSelector)

__all__ = ["ANP_API_VERSION", "ANP_KIND", "API_GROUP", "AUDIT_ANNOTATION", "AUDIT_TRUE",
           "BANP_KIND", "BANP_PRIORITY", "CNP_API_VERSION", "CNP_KIND", "MAX_PRIORITY",
           "TIER_KINDS", "RuleAction", "Tier", "TierPeer", "TierPort", "TierRule",
           "TierSelector", "TieredPolicy", "describe_same_priority", "same_priority_groups"]

# metadata.annotations key that puts one tier policy in audit mode: traffic its Deny
# rules match goes through, reported as AUDIT (the flow names the rule).
AUDIT_ANNOTATION = "policy.membrane.io/audit-mode"
AUDIT_TRUE = ("true", "enabled")


def same_priority_groups(policies: list[TieredPolicy],
                         selects: Callable[[TieredPolicy], AbstractSet[str]] | None = None
                         ) -> list[list[TieredPolicy]]:
    """Groups of two or more policies of one tier sharing a priority, each in the order
    Membrane evaluates them: what `policy get` and `status` warn about. With `selects`
    (the pods a policy's subject selects), only policies that share a pod with another
    of their group count: the API calls the order undefined where two "could match a
    connection", and policies of disjoint subjects never decide the same packet."""
    by_slot: dict[tuple[Tier, int], list[TieredPolicy]] = {}
    for policy in policies:
        if policy.kind != BANP_KIND:
            by_slot.setdefault((policy.tier, policy.priority), []).append(policy)
    out = []
    for _, group in sorted(by_slot.items(), key=lambda kv: (kv[0][0].value, kv[0][1])):
        if selects is not None:
            pods = {p.key: selects(p) for p in group}
            group = [p for p in group
                     if any(pods[p.key] & pods[q.key] for q in group if q is not p)]
        if len(group) > 1:
            out.append(sorted(group, key=lambda p: p.order_key))
    return out


def describe_same_priority(group: list[TieredPolicy]) -> str:
    first = group[0]
    names = ", ".join(p.key for p in group)
    return (f"{first.tier.value} tier priority {first.priority} is shared by {names}: "
            "their order is undefined by the API; Membrane evaluates them in this order "
            "(ClusterNetworkPolicy before AdminNetworkPolicy, then by name)")
