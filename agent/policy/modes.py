"""Agent-wide policy modes: enforcement (Cilium's meanings) and audit.

    default  a direction of a pod is enforced when some policy decides it: a
             NetworkPolicy isolating it, or an Admin/Baseline tier rule selecting it;
             what no step decides is allowed
    always   every pod is enforced in both directions: what no step decides is denied
             (the Baseline tier still decides first). The node keeps reaching its pods
             (kubelet probes, node health checks): a built-in allow from the host
             identity comes before every tier rule; replies of allowed connections and
             ARP pass as always
    never    nothing is enforced, whatever the policies say

Audit (agent-wide, or per namespace with the annotation
policy.membrane.io/audit-mode: "true", or per tier policy with the same annotation on
the policy): a packet the policies would deny passes, reported as AUDIT with what would
have denied it. A drop for any other reason (a spoofed source) stays a drop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from typing import Mapping

from core.errors import MembraneError
from core.protocols import Direction
from agent.k8s.objects import Namespace
from agent.policy.mapstate import EndpointPolicy, TierEntry
from agent.policy.tiers import HOST_TIER_PROVENANCE, TierProvenance, host_entry
from identity.reserved import ReservedIdentity


class Enforcement(str, Enum):
    DEFAULT = "default"
    ALWAYS = "always"
    NEVER = "never"


ENFORCEMENT_MODES = tuple(e.value for e in Enforcement)


@dataclass(frozen=True)
class PolicyModes:
    enforcement: Enforcement = Enforcement.DEFAULT
    audit: bool = False

    @classmethod
    def of(cls, enforcement: str = "default", audit: bool = False) -> "PolicyModes":
        try:
            mode = Enforcement(enforcement)
        except ValueError:
            raise MembraneError(f"policy enforcement mode {enforcement!r}: expected "
                                f"{', '.join(ENFORCEMENT_MODES)}") from None
        return cls(mode, audit)

    def __str__(self) -> str:
        return f"enforcement {self.enforcement.value}" + (", audit" if self.audit else "")


def shape(policy: EndpointPolicy, modes: PolicyModes, namespace_audit: bool,
          tier_provenance: dict[TierEntry, list[TierProvenance]]) -> EndpointPolicy:
    """An endpoint's policy under the modes: `never` enforces nothing; `always` denies
    what no step decides, the node still reaching the pod (a built-in first Admin-tier
    allow, whose provenance it records); audit by the agent or the pod's namespace."""
    if modes.enforcement is Enforcement.NEVER:
        return EndpointPolicy()
    audit = modes.audit or namespace_audit
    if modes.enforcement is Enforcement.ALWAYS:
        host = host_entry(host=int(ReservedIdentity.HOST))
        tier_provenance.setdefault(host, []).append(HOST_TIER_PROVENANCE)
        return replace(policy, tier_entries=policy.tier_entries | {host},
                       default_deny=frozenset(Direction), audit=audit)
    return replace(policy, audit=audit) if audit else policy


def audit_changed(before: Mapping[str, Namespace], after: Mapping[str, Namespace]) -> set[str]:
    """Namespaces whose audit annotation changed: their pods' policies change, not their
    identities."""
    return {name for name, ns in after.items()
            if ns.audit != getattr(before.get(name), "audit", False)}
