"""Bounds on what one policy, one endpoint or one namespace may take of the shared maps.

The cidr map (every ipBlock prefix of every policy, cluster-wide) and the policy map
(every local endpoint's entries) are shared by every tenant of a node. Without bounds
one policy fills them and every other update fails with it, and one endpoint's
expansion burns seconds under the agent's lock. So:

  max_prefixes_per_policy   a policy with more ipBlock prefixes (cidr + excepts) is not
                            enforced (agent/policy/admission.py);
  max_cidr_prefixes         the cidr map's size: when every policy's prefixes do not fit,
                            the largest policies are left out until they do;
  max_entries_per_endpoint  an endpoint whose policies need more policy map entries
                            gets the smallest of them that fit (engine.py: counted
                            before anything is expanded, so the cost is bounded too);
  namespace_share           the fraction of the cidr map one namespace's policies, and of
                            the policy map one namespace's local endpoints, may use
                            (agent/regeneration.py for the policy map).

Whatever does not fit fails closed: a policy not enforced still isolates the pods it
selects in the directions it declares and allows nothing (`isolating`), so the endpoint
denies more than the spec says, never more open; it is shown not-ready with the reason.

The defaults are the agent's (agent.config.AgentConfig reads them from here, as
`policy matrix` and `policy trace` do, so offline answers match a default agent).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.policy.mapstate import EndpointPolicy, PolicyKey
from agent.policy.ports import map_entries
from core.errors import MembraneError
from core.protocols import Direction
from identity.reserved import ReservedIdentity

DEFAULT_MAX_CIDR_PREFIXES = 4096          # bpf/lib/common.h MEMBRANE_CIDR_MAX
DEFAULT_MAX_PREFIXES_PER_POLICY = 1024
DEFAULT_MAX_ENTRIES_PER_ENDPOINT = 16384
DEFAULT_NAMESPACE_SHARE = 0.5


@dataclass(frozen=True)
class PolicyLimits:
    max_cidr_prefixes: int = DEFAULT_MAX_CIDR_PREFIXES
    max_prefixes_per_policy: int = DEFAULT_MAX_PREFIXES_PER_POLICY
    max_entries_per_endpoint: int = DEFAULT_MAX_ENTRIES_PER_ENDPOINT
    namespace_share: float = DEFAULT_NAMESPACE_SHARE

    def validate(self) -> None:
        for name in ("max_cidr_prefixes", "max_prefixes_per_policy", "max_entries_per_endpoint"):
            if getattr(self, name) < 1:
                raise MembraneError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0 < self.namespace_share <= 1:
            raise MembraneError(f"namespace_share must be in (0, 1], not "
                                f"{self.namespace_share}")

    def namespace_cidr_prefixes(self) -> int:
        return max(1, int(self.max_cidr_prefixes * self.namespace_share))


def policy_map_entries(policy: EndpointPolicy) -> int:
    """Policy map entries an endpoint's policy takes, at most (the writer merges
    identical blocks of overlapping ranges, so it may take fewer)."""
    return (sum(key_entries(key) for key in policy.entries)
            + sum(key_entries(entry.key) for entry in policy.tier_entries))


def key_entries(key: PolicyKey) -> int:
    return map_entries(key.protocol, key.port_low, key.port_high)


def isolating(policy: EndpointPolicy, keep: frozenset[PolicyKey] = frozenset()
              ) -> EndpointPolicy:
    """Fail closed: the same enforcement, and of its entries only `keep` (the node's own
    entry, say). Never more open than `policy`. A direction only the tiers decide is
    isolated too, keeping of the tiers' entries only those about the node (the host
    identity), at their ranks."""
    host = int(ReservedIdentity.HOST)
    return replace(policy, ingress_enforced=policy.decides(Direction.INGRESS),
                   egress_enforced=policy.decides(Direction.EGRESS),
                   entries=policy.entries & keep,
                   tier_entries=frozenset(e for e in policy.tier_entries if e.peer == host))
