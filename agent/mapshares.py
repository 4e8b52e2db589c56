"""The node's policy map, shared fairly between the namespaces of its endpoints.

Every local endpoint's entries live in one BPF policy map (`--max-policy-entries`).
The engine already bounds each endpoint (agent/policy/limits.py); here the node's
endpoints are bounded together, before anything is written:

  1. one namespace's endpoints may hold at most `namespace_share` of the map: when they
     need more, those needing the most are failed closed first until the rest fit;
  2. the same for all endpoints against the whole map.

A failed-closed endpoint gets `isolating(...)`: its enforcement, and of its entries
only the node's own (kubelet probes), so it denies more than the spec, never more open,
and says why. Others' room is never taken: a tenant filling its share leaves every
other namespace's endpoints writable. Entries are counted with `policy_map_entries` (an
upper bound of what the writer writes), cached per endpoint while the engine hands out
the same policy object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from agent.policy.engine import HOST_ENTRY
from agent.policy.limits import isolating, policy_map_entries
from agent.policy.mapstate import EndpointPolicy

NODE_ENTRY = frozenset({HOST_ENTRY})


@dataclass(frozen=True)
class Wanted:
    namespace: str
    policy: EndpointPolicy


@dataclass(frozen=True)
class Planned:
    policy: EndpointPolicy        # what to write
    problem: str = ""             # why it is not the policy wanted ("" when it is)


class PolicyMapShares:
    def __init__(self, capacity: int, namespace_share: float) -> None:
        self.capacity = capacity
        self.namespace_share = namespace_share
        self._sizes: dict[int, tuple[EndpointPolicy, int]] = {}

    @property
    def namespace_capacity(self) -> int:
        return max(1, int(self.capacity * self.namespace_share))

    def size(self, endpoint_id: int, policy: EndpointPolicy) -> int:
        cached = self._sizes.get(endpoint_id)
        if cached is not None and cached[0] is policy:
            return cached[1]
        n = policy_map_entries(policy)
        self._sizes[endpoint_id] = (policy, n)
        return n

    def plan(self, wanted: Mapping[int, Wanted], held: int = 0) -> dict[int, Planned]:
        """What to write per endpoint id. held: entries endpoints outside `wanted` keep
        (those waiting for an identity)."""
        for gone in set(self._sizes) - set(wanted):
            del self._sizes[gone]
        sizes = {eid: self.size(eid, w.policy) for eid, w in wanted.items()}
        closed: dict[int, str] = {}
        by_namespace: dict[str, list[int]] = {}
        for eid, w in wanted.items():
            by_namespace.setdefault(w.namespace, []).append(eid)
        share = self.namespace_capacity
        for namespace, ids in sorted(by_namespace.items()):
            need = sum(sizes[i] for i in ids)
            for eid in _largest_until_fit(ids, sizes, share):
                closed[eid] = (f"namespace {namespace}'s endpoints on this node need {need} "
                               f"policy map entries, more than its share ({share} of "
                               f"{self.capacity}; --namespace-map-share): those needing the "
                               f"most (this one {sizes[eid]}) fail closed")
        left = [eid for eid in wanted if eid not in closed]
        need = sum(sizes[i] for i in left) + held
        for eid in _largest_until_fit(left, sizes, self.capacity - held):
            closed[eid] = (f"this node's endpoints need {need} policy map entries, more than "
                           f"the map's {self.capacity} (--max-policy-entries): those needing "
                           f"the most (this one {sizes[eid]}) fail closed")
        return {eid: (Planned(isolating(w.policy, NODE_ENTRY), closed[eid]) if eid in closed
                      else Planned(w.policy))
                for eid, w in wanted.items()}


def _largest_until_fit(ids: list[int], sizes: Mapping[int, int], capacity: int) -> list[int]:
    """The endpoints to leave out, largest first (then highest id), until the rest fit."""
    total = sum(sizes[i] for i in ids)
    out = []
    for eid in sorted(ids, key=lambda i: (-sizes[i], -i)):
        if total <= capacity:
            break
        out.append(eid)
        total -= sizes[eid] - 1 if sizes[eid] else 0   # it keeps the node's entry at most
    return out
