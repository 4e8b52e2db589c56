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

from dataclasses import dataclass
from enum import Enum

from core.errors import MembraneError


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
