"""The selector cache: which identities each policy selector matches.

Policies never look at pods: they are matched against identities, through the labels
an identity carries (`identity.security`). A `Selector` is one NetworkPolicy selector
in normal form; the cache keeps, for every selector some policy uses, the set of label
identities it matches, and keeps it current incrementally:

  - a new identity is evaluated against every selector (not every selector against
    every identity);
  - a new selector is evaluated against every identity;
  - every selector whose set changed is remembered until `drain_changed`, so the engine
    recomputes only the endpoints that depend on it.

Reserved and CIDR identities are never matched by a selector: peers that are nodes or
addresses outside the cluster are reached through ipBlock, not through labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.k8s.objects import LabelSelector, PolicyPeer
from identity.labels import LabelSet
from identity.reserved import MIN_CIDR_IDENTITY, MIN_LABEL_IDENTITY
from identity.security import namespace_labels_of, namespace_of, pod_labels_of

_ALL = LabelSelector()


@dataclass(frozen=True)
class Selector:
    """A selector in normal form.

    namespace set (and namespace_selector None): pods of that namespace matching
    pod_selector. namespace_selector set (namespace None): pods matching pod_selector in
    namespaces matching namespace_selector. An empty LabelSelector matches everything.
    """

    namespace: str | None
    pod_selector: LabelSelector = _ALL
    namespace_selector: LabelSelector | None = None

    @classmethod
    def subject(cls, namespace: str, pod_selector: LabelSelector) -> "Selector":
        """spec.podSelector of a policy: the pods it applies to, in its own namespace."""
        return cls(namespace, pod_selector, None)

    @classmethod
    def of_peer(cls, policy_namespace: str, peer: PolicyPeer) -> "Selector":
        """A peer with a podSelector and/or a namespaceSelector (not an ipBlock)."""
        if peer.ip_block is not None:
            raise ValueError("an ipBlock peer has no selector")
        pods = peer.pod_selector if peer.pod_selector is not None else _ALL
        if peer.namespace_selector is None:
            return cls(policy_namespace, pods, None)
        return cls(None, pods, peer.namespace_selector)

    def matches(self, view: "IdentityView") -> bool:
        if self.namespace_selector is None:
            if view.namespace != self.namespace:
                return False
        elif not self.namespace_selector.matches(view.namespace_labels):
            return False
        return self.pod_selector.matches(view.pod_labels)

    def __str__(self) -> str:
        if self.namespace_selector is None:
            return f"pods {self.pod_selector} in namespace {self.namespace}"
        return f"pods {self.pod_selector} in namespaces {self.namespace_selector}"


@dataclass(frozen=True)
class IdentityView:
    """An identity's labels split the way selectors read them (computed once per identity)."""

    namespace: str | None
    pod_labels: dict[str, str]
    namespace_labels: dict[str, str]

    @classmethod
    def of(cls, labels: LabelSet) -> "IdentityView":
        return cls(namespace_of(labels), pod_labels_of(labels), namespace_labels_of(labels))


def is_selectable(identity_id: int) -> bool:
    return MIN_LABEL_IDENTITY <= identity_id < MIN_CIDR_IDENTITY


@dataclass
class SelectorCache:
    _identities: dict[int, IdentityView] = field(default_factory=dict)
    _selections: dict[Selector, set[int]] = field(default_factory=dict)
    _refs: dict[Selector, int] = field(default_factory=dict)
    _changed: set[Selector] = field(default_factory=set)

    # -- identities --------------------------------------------------------------
    def add_identity(self, identity_id: int, labels: LabelSet) -> None:
        if not is_selectable(identity_id) or identity_id in self._identities:
            return
        view = IdentityView.of(labels)
        self._identities[identity_id] = view
        for selector, ids in self._selections.items():
            if selector.matches(view):
                ids.add(identity_id)
                self._changed.add(selector)

    def remove_identity(self, identity_id: int) -> None:
        if self._identities.pop(identity_id, None) is None:
            return
        for selector, ids in self._selections.items():
            if identity_id in ids:
                ids.discard(identity_id)
                self._changed.add(selector)

    def identities(self) -> frozenset[int]:
        return frozenset(self._identities)

    # -- selectors ---------------------------------------------------------------
    def add_selector(self, selector: Selector) -> None:
        """Takes a reference on the selector, evaluating it the first time."""
        self._refs[selector] = self._refs.get(selector, 0) + 1
        if selector not in self._selections:
            self._selections[selector] = {
                i for i, view in self._identities.items() if selector.matches(view)
            }

    def remove_selector(self, selector: Selector) -> None:
        """Drops a reference; the selector is forgotten with its last one."""
        left = self._refs.get(selector, 0) - 1
        if left > 0:
            self._refs[selector] = left
            return
        self._refs.pop(selector, None)
        self._selections.pop(selector, None)
        self._changed.discard(selector)

    def matches(self, selector: Selector) -> frozenset[int]:
        """The identities a selector matches; it must have been added."""
        return frozenset(self._selections[selector])

    def contains(self, selector: Selector, identity_id: int) -> bool:
        return identity_id in self._selections[selector]

    def selectors(self) -> frozenset[Selector]:
        return frozenset(self._selections)

    def drain_changed(self) -> set[Selector]:
        """Selectors whose identity set changed since the last drain."""
        changed, self._changed = self._changed, set()
        return changed
