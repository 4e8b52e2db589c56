"""Which policies' ipBlocks the cidr map can hold, decided alike on every node.

Every ipBlock prefix (cidr and excepts) of every policy gets a CIDR identity and a
`cidr` map entry, cluster-wide: one policy with thousands of /32s would fill the map
and every node's regeneration would fail with it. So, before anything is compiled:

  1. a policy with more prefixes than `max_prefixes_per_policy` is refused;
  2. per namespace, the union of its policies' prefixes may use `namespace_share` of
     the map: when it does not fit, its policies are taken smallest first (then by key)
     and those that would overflow it are refused;
  3. the same over all namespaces against the map's size.

A refused policy is compiled `isolating` (agent/policy/resolver.py): it isolates what it
selects and allows nothing, so its pods fail closed and every other policy is enforced.
The decision depends on the policies alone (never on the order they arrived in), so all
nodes agree, and an offline `policy matrix` gives the same answer.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from agent.k8s.objects import NetworkPolicy
from agent.policy.limits import PolicyLimits
from agent.policy.resolver import CompiledPolicy


def prefixes_of(policy: NetworkPolicy) -> frozenset[str]:
    """The prefixes the policy would put in the cidr map (those the engine resolves)."""
    return frozenset(p for block in CompiledPolicy.of(policy).ip_blocks
                     for p in (block.cidr, *block.except_))


class PrefixAdmission:
    def __init__(self, limits: PolicyLimits) -> None:
        self._limits = limits
        self._policies: dict[str, tuple[NetworkPolicy, frozenset[str]]] = {}
        self._refused: dict[str, str] = {}

    def refused(self) -> Mapping[str, str]:
        """Policy key -> why it is not enforced."""
        return self._refused

    def update(self, policies: Mapping[str, NetworkPolicy]) -> Mapping[str, str]:
        """Decides again when a policy with prefixes came, went or changed; returns
        `refused()`."""
        changed = False
        for key in list(self._policies):
            old, prefixes = self._policies[key]
            new = policies.get(key)
            if new is not old and new != old:
                del self._policies[key]
                changed |= bool(prefixes)
        for key, policy in policies.items():
            if key not in self._policies:
                prefixes = prefixes_of(policy)
                self._policies[key] = (policy, prefixes)
                changed |= bool(prefixes)
        if changed:
            self._refused = self._decide()
        return self._refused

    def _decide(self) -> dict[str, str]:
        limits = self._limits
        refused: dict[str, str] = {}
        sized = {k: ps for k, (_, ps) in self._policies.items() if ps}
        for key, prefixes in sized.items():
            if len(prefixes) > limits.max_prefixes_per_policy:
                refused[key] = (f"{len(prefixes)} ipBlock prefixes (cidrs and excepts), more "
                                f"than the {limits.max_prefixes_per_policy} one policy may "
                                "have (--max-cidr-prefixes-per-policy)")
        by_namespace: dict[str, list[str]] = {}
        for key in sized:
            if key not in refused:
                by_namespace.setdefault(self._policies[key][0].namespace, []).append(key)
        share = limits.namespace_cidr_prefixes()
        for namespace, keys in sorted(by_namespace.items()):
            need = _union(sized[k] for k in keys)
            for key in _overflow(keys, sized, share):
                refused[key] = (f"namespace {namespace}'s policies need {need} ipBlock "
                                f"prefixes, more than its share of the cidr map ({share} of "
                                f"{limits.max_cidr_prefixes}; --namespace-map-share): its "
                                "largest policies are not enforced")
        admitted = [k for k in sized if k not in refused]
        need = _union(sized[k] for k in admitted)
        for key in _overflow(admitted, sized, limits.max_cidr_prefixes):
            refused[key] = (f"the cidr map holds {limits.max_cidr_prefixes} prefixes and the "
                            f"policies need {need}: the largest are not enforced "
                            "(--max-cidr-entries)")
        return refused


def _union(sets: Iterable[frozenset[str]]) -> int:
    out: set[str] = set()
    for s in sets:
        out |= s
    return len(out)


def _overflow(keys: list[str], sized: Mapping[str, frozenset[str]], capacity: int) -> list[str]:
    """The policies left out when the smallest are taken first until `capacity`."""
    if _union(sized[k] for k in keys) <= capacity:
        return []
    taken: set[str] = set()
    left_out = []
    for key in sorted(keys, key=lambda k: (len(sized[k]), k)):
        if len(taken | sized[key]) <= capacity:
            taken |= sized[key]
        else:
            left_out.append(key)
    return left_out
