"""The agent's status as data: what `agent.status.StatusReporter` produces, and what
`agent.api.server` turns into a `StatusReply` (the only place that knows the proto).

Health is a list of named checks, each registered by the part that owns the condition
(`agent.health.HealthChecks`): liveness checks say the agent's threads run (`/healthz`),
readiness checks say it enforces what the cluster asks (`/readyz`: the source has synced,
every endpoint's policy is written at the applied revision, and no pod of the node runs
without an endpoint past a grace period).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from agent.datapath.interface import MapUsage
from observe.ring import ObserverStatus


class CheckKind(str, Enum):
    LIVENESS = "liveness"     # failing: the process is broken; restart it
    READINESS = "readiness"   # failing: not (yet) enforcing what the cluster asks


@dataclass(frozen=True)
class CheckResult:
    name: str                 # "thread regenerator", "synced", "policy written"
    kind: CheckKind
    ok: bool


@dataclass(frozen=True)
class Health:
    checks: tuple[CheckResult, ...] = ()

    @property
    def live(self) -> bool:
        return all(c.ok for c in self.checks if c.kind is CheckKind.LIVENESS)

    @property
    def ready(self) -> bool:
        return all(c.ok for c in self.checks if c.kind is CheckKind.READINESS)

    def failing(self, kind: CheckKind) -> list[str]:
        return [c.name for c in self.checks if c.kind is kind and not c.ok]


@dataclass(frozen=True)
class RegenerationTimes:
    last_ms: float = 0.0             # the last pass: engine update to every endpoint written
    change_to_maps_ms: float = 0.0   # from the change reaching the store to the maps


@dataclass(frozen=True)
class AgentStatus:
    node: str
    version: str
    uptime_seconds: float
    source: str                      # "lab:<dir>" | "kubernetes"
    synced: bool                     # the source's initial list is in
    store_revision: int              # newest revision the source delivered
    applied_revision: int            # newest revision written to every endpoint's maps
    health: Health
    endpoints_by_state: Mapping[str, int]
    identities: int
    maps: tuple[MapUsage, ...]
    drops: Mapping[int, int]         # observe.reasons.DropReason value -> packets
    lost_kernel: int                 # events lost in the kernel's ring buffer
    observer: ObserverStatus         # flows seen, and every loss by where it happened
    regeneration: RegenerationTimes
    errors: tuple[str, ...] = ()     # what went wrong lately, oldest first (bounded)
    problems: tuple[str, ...] = ()   # what is wrong now: rejected objects, endpoints not ready
    warnings: tuple[str, ...] = field(default=())   # maps nearly full, shared priorities
    rejected: tuple[str, ...] = ()   # objects validation refused: reason; what is in force
    object_warnings: tuple[str, ...] = ()   # validation warnings about accepted objects
    unmanaged: tuple[str, ...] = ()  # pods of this node running without an endpoint, and
                                     # what to do about them

    @property
    def healthy(self) -> bool:
        """Every thread runs and the source has synced (what `membrane status` shows)."""
        return self.health.live and self.synced
