"""Keys the identity filter leaves out that some policy selects on, and whom they concern.

Selectors are matched against identities, and identities leave out replica-varying keys
(identity/filter.py), so a selector on such a key would see nothing (matchLabels, In,
Exists) or everyone (DoesNotExist, NotIn). The engine therefore puts a left-out key back
into the identities of the pods a selector on it may concern:

  spec.podSelector                              pods of the policy's namespace
  a peer's podSelector (no namespaceSelector)   pods of the policy's namespace
  a peer's podSelector with a namespaceSelector pods of every namespace (ANY_NAMESPACE)

`SelectedKeys` counts the (scope, key) pairs each policy brings, and `update` says
which scopes gained or lost a key, so the engine recomputes the identities of only the
pods there (and only those carrying a left-out label can change). Rules of a type the
policy does not declare are counted too: a key kept needlessly splits identities but
never changes a verdict.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator, Mapping

from agent.k8s.objects import LabelSelector, NetworkPolicy

ANY_NAMESPACE = ""   # a scope no namespace has as its name: every namespace

Scope = str


def _keys(selector: LabelSelector | None) -> Iterator[str]:
    if selector is None:
        return
    yield from (k for k, _ in selector.match_labels)
    yield from (r.key for r in selector.match_expressions)


def selected_pairs(policy: NetworkPolicy) -> Iterator[tuple[Scope, str]]:
    """(scope, key) for every pod label key the policy's pod selectors read."""
    yield from ((policy.namespace, k) for k in _keys(policy.pod_selector))
    for rule in policy.ingress + policy.egress:
        for peer in rule.peers:
            scope = policy.namespace if peer.namespace_selector is None else ANY_NAMESPACE
            yield from ((scope, k) for k in _keys(peer.pod_selector))


class SelectedKeys:
    """Left-out keys policies select on, by scope. `left_out(key)`: whether the identity
    filter leaves the key out (only those are tracked)."""

    def __init__(self, left_out: Callable[[str], bool]) -> None:
        self._left_out = left_out
        self._policies: dict[str, tuple[NetworkPolicy, frozenset[tuple[Scope, str]]]] = {}
        self._counts: Counter[tuple[Scope, str]] = Counter()
        self._by_scope: dict[Scope, frozenset[str]] = {}

    def update(self, policies: Mapping[str, NetworkPolicy]) -> set[Scope]:
        """Brings the counts to these policies; returns the scopes whose keys changed."""
        touched: set[tuple[Scope, str]] = set()
        for key in list(self._policies):
            old, pairs = self._policies[key]
            new = policies.get(key)
            if new is not old and new != old:
                del self._policies[key]
                self._counts.subtract(pairs)
                touched |= pairs
        for key, policy in policies.items():
            if key not in self._policies:
                pairs = frozenset(p for p in selected_pairs(policy) if self._left_out(p[1]))
                self._policies[key] = (policy, pairs)
                self._counts.update(pairs)
                touched |= pairs
        changed: set[Scope] = set()
        for pair in touched:
            scope, key = pair
            present = self._counts[pair] > 0
            if not present:
                del self._counts[pair]
            if present != (key in self._by_scope.get(scope, frozenset())):
                changed.add(scope)
        for scope in changed:
            keys = frozenset(k for s, k in self._counts if s == scope)
            if keys:
                self._by_scope[scope] = keys
            else:
                self._by_scope.pop(scope, None)
        return changed

    def keys_for(self, namespace: str) -> frozenset[str]:
        """The left-out keys kept in identities of this namespace's pods."""
        here = self._by_scope.get(namespace, frozenset())
        everywhere = self._by_scope.get(ANY_NAMESPACE, frozenset())
        return here | everywhere if here and everywhere else here or everywhere

    @staticmethod
    def concerns(changed: set[Scope], namespace: str) -> bool:
        return bool(changed) and (ANY_NAMESPACE in changed or namespace in changed)
