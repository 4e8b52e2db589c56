"""Which pod labels are security relevant.

Labels that differ between replicas of one workload (or between runs of one job) would
give every replica its own identity, so they are left out. The list is configurable:
`LabelFilter(extra_excluded=...)`, or `--exclude-label` on the agent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Keys (exact, or prefix when ending in "/") that change per replica, per revision or per run.
DEFAULT_EXCLUDED: tuple[str, ...] = (
    "pod-template-hash",                          # Deployment -> ReplicaSet revision
    "controller-revision-hash",                   # StatefulSet / DaemonSet revision
    "pod-template-generation",                    # DaemonSet generation
    "statefulset.kubernetes.io/pod-name",         # one value per StatefulSet replica
    "apps.kubernetes.io/pod-index",               # StatefulSet ordinal
    "batch.kubernetes.io/job-completion-index",   # indexed Job
    "job-completion-index",
    "controller-uid",                             # Job, legacy key
    "batch.kubernetes.io/controller-uid",         # Job
    "job-name",                                   # one value per Job run (CronJob)
    "batch.kubernetes.io/job-name",
)


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
        for ex in self.excluded:
            if key == ex or (ex.endswith("/") and key.startswith(ex)):
                return False
        return not any(re.fullmatch(p, key) for p in self.excluded_patterns)
