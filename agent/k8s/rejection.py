"""Objects a source delivered that Membrane could not accept, and what stands in their
place. One record per object, kept by the store (agent.store) and shown by `membrane
policy get` and `membrane status`.

What is enforced instead of a rejected object:

    NetworkPolicy   its fail-closed stand-in (agent.k8s.validation.networkpolicy): the
                    pods it covers isolated in its directions, nothing allowed by it.
                    The last good version is kept and shown, not enforced: it may allow
                    what the new version revokes.
    Pod, Namespace, the last good version, when there is one: none of them allows anything
    Node, Service   by itself, and dropping one would re-identify every pod of a
                    namespace, cut a node from its pods, or leave an endpoint with maps
                    nothing updates. With no last good version the object is absent: a
                    pod's endpoint then keeps the fail-closed init policy.
    the tier kinds  (ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy)
                    the last good version, its Deny rules with it. With none, nothing: a
                    tier policy isolates no pod, so there is no stand-in (the API
                    server's CRD validation refuses such objects before Membrane sees them).
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.k8s.objects import TIER_KINDS, ClusterObject, NetworkPolicy, PolicyType
from core.errors import InvalidObject, MembraneError


@dataclass(frozen=True)
class Rejection:
    kind: str                               # "NetworkPolicy", "Pod", ...
    key: str                                # the store's key: "ns/name", "name", "Kind/name"
    reason: str                             # the validation error, one line
    last_good: ClusterObject | None = None  # the version before, kept
    in_force: str = ""                      # what is enforced in its place, in words

    @classmethod
    def of(cls, error: MembraneError, index: int = 0) -> "Rejection":
        """Keyed like the object (InvalidObject names it), so a fixed object's upsert
        clears its rejection; other errors get an anonymous key."""
        if isinstance(error, InvalidObject):
            # The tier kinds share one table, keyed "Kind/name" (agent.store).
            key = f"{error.kind}/{error.name}" if error.kind in TIER_KINDS else error.name
            return cls(error.kind, key, str(error))
        return cls("?", str(index), str(error))

    def __str__(self) -> str:
        return f"{self.reason}; in force: {self.in_force}" if self.in_force else self.reason


def describe_stand_in(policy: NetworkPolicy) -> str:
    """What a fail-closed stand-in does, in words."""
    directions = " and ".join(t.value for t in PolicyType if t in policy.policy_types)
    pods = (f"every pod of namespace {policy.namespace}" if policy.pod_selector.is_empty
            else f"pods {policy.pod_selector} of namespace {policy.namespace}")
    return f"fail closed: {pods} isolated for {directions}, nothing allowed by this policy"


def describe_in_force(kind: str, in_place: ClusterObject | None,
                      last_good: ClusterObject | None) -> str:
    """What is enforced for a rejected object: `in_place` is what the store holds under
    its key (a stand-in, the last good version, or nothing)."""
    if isinstance(in_place, NetworkPolicy) and in_place.fail_closed:
        return describe_stand_in(in_place)
    if kind == "NetworkPolicy":
        return "nothing: the policy names no namespace a pod can be in"
    if in_place is not None and in_place == last_good:
        return "the last good version"
    return "nothing: not in the store"
