"""Which pod labels are security relevant.

Labels that differ between replicas of one workload (or between runs of one job) would
give every replica its own identity, so they are left out. The list is configurable:
`LabelFilter(extra_excluded=...)`, or `--exclude-label` on the agent.

Left out is not ignored: a key some policy selects on is put back into the identities
of the pods that policy may concern (`identity.security.security_labels`'s
`selected_keys`, worked out by the policy engine), so selectors always see what the
spec says they see. `why_excluded` says why a key is left out, for `endpoint get`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Keys (exact, or prefix when ending in "/") that change per replica, per revision or per
# run, each with why.
DEFAULT_EXCLUSIONS: dict[str, str] = {
    "pod-template-hash": "one value per Deployment revision (ReplicaSet)",
    "controller-revision-hash": "one value per StatefulSet or DaemonSet revision",
    "pod-template-generation": "one value per DaemonSet generation",
    "statefulset.kubernetes.io/pod-name": "one value per StatefulSet replica",
    "apps.kubernetes.io/pod-index": "one value per StatefulSet replica (its ordinal)",
    "batch.kubernetes.io/job-completion-index": "one value per indexed Job completion",
    "job-completion-index": "one value per indexed Job completion",
    "controller-uid": "one value per Job run",
    "batch.kubernetes.io/controller-uid": "one value per Job run",
    "job-name": "one value per Job run (CronJob)",
    "batch.kubernetes.io/job-name": "one value per Job run (CronJob)",
}
DEFAULT_EXCLUDED: tuple[str, ...] = tuple(DEFAULT_EXCLUSIONS)


@dataclass(frozen=True)
class LabelFilter:
    excluded: tuple[str, ...] = DEFAULT_EXCLUDED
    excluded_patterns: tuple[str, ...] = field(default=())  # regular expressions on the key

    @classmethod
    def default(cls) -> "LabelFilter":
        return cls()

    def with_excluded(self, *keys: str) -> "LabelFilter":
        return LabelFilter(self.excluded + tuple(keys), self.excluded_patterns)

    def is_relevant(self, key: str) -> bool:
        return self.why_excluded(key) is None

    def why_excluded(self, key: str) -> str | None:
        """None for a relevant key; else why it is left out of identities."""
        for ex in self.excluded:
            if key == ex or (ex.endswith("/") and key.startswith(ex)):
                default = DEFAULT_EXCLUSIONS.get(ex)
                if default is not None:
                    return f"{default}, left out by default"
                return f"left out by --exclude-label {ex}"
        for pattern in self.excluded_patterns:
            if re.fullmatch(pattern, key):
                return f"left out by the pattern {pattern!r}"
        return None
