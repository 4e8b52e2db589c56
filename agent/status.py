"""The agent's status, assembled from its parts as typed data (agent.api.status).

`StatusReporter` is the API's StatusProvider: `status()` reads every part's own state
(no part keeps a status dict for it) and runs the health checks; the API layer turns the
result into a StatusReply.

What is wrong now (`problems`) is computed afresh: objects the source's validation
refused (also apart, in `rejected`, each with what is in force in its place), endpoints
that are not ready and why, pods of this node running without an endpoint
(`unmanaged`, agent.endpoint_manager.UnmanagedPods), and what the regenerator cannot
enforce as asked (policies not enforced, pods without identity, cluster maps out of
step). Validation warnings about accepted objects are `object_warnings`. What went
wrong lately is the bounded error history (agent.health.ErrorHistory). Warnings are
maps at least 90% full, and cluster-wide tier policies sharing a priority and a pod
(their order is undefined by the API: the warning says which order Membrane uses).
"""

from __future__ import annotations

import time

from agent.api.status import AgentStatus, RegenerationTimes
from agent.datapath.interface import Datapath, MapUsage
from agent.endpoint_manager import UNMANAGED, EndpointManager, UnmanagedPods
from agent.endpoints import EndpointState
from agent.flowmeta import IdentityLookup
from agent.health import ErrorHistory, HealthChecks
from agent.regeneration import Regenerator
from agent.store import Store
from core.version import version
from observe.ring import FlowObserver

NEARLY_FULL = 0.9   # a map this full is a warning (conntrack: the oldest are evicted)


class StatusReporter:
    def __init__(self, *, node: str, source_name: str, store: Store,
                 endpoints: EndpointManager, regenerator: Regenerator, datapath: Datapath,
                 observer: FlowObserver, identities: IdentityLookup, health: HealthChecks,
                 errors: ErrorHistory, unmanaged: UnmanagedPods | None = None) -> None:
        self._node = node
        self._source_name = source_name
        self._store = store
        self._endpoints = endpoints
        self._regenerator = regenerator
        self._datapath = datapath
        self._observer = observer
        self._identities = identities
        self._health = health
        self._errors = errors
        self._unmanaged = unmanaged
        self._version = version()
        self._started_at = time.monotonic()

    def status(self) -> AgentStatus:
        endpoints = self._endpoints.all()
        unmanaged = tuple(str(p) for p in self._unmanaged.current()) if self._unmanaged else ()
        by_state: dict[str, int] = {UNMANAGED: len(unmanaged)} if unmanaged else {}
        for ep in endpoints:
            by_state[ep.state.value] = by_state.get(ep.state.value, 0) + 1
        stats = self._datapath.stats()
        applied = self._regenerator.snapshot
        rejected = tuple(str(r) for r in applied.rejected)
        problems = list(rejected) + [
            f"endpoint {ep.id} ({ep.key}) {ep.state.value}: {ep.error}"
            for ep in endpoints if ep.state is EndpointState.NOT_READY
        ] + list(unmanaged) + list(self._regenerator.problems())
        return AgentStatus(
            node=self._node, version=self._version,
            uptime_seconds=time.monotonic() - self._started_at,
            source=self._source_name, synced=self._store.synced,
            store_revision=self._store.source_revision,
            applied_revision=self._regenerator.applied_revision,
            health=self._health.report(), endpoints_by_state=by_state,
            identities=len(self._identities.identities()),
            maps=tuple(stats.maps), drops=dict(stats.drops), lost_kernel=stats.lost_events,
            observer=self._observer.status(),
            regeneration=RegenerationTimes(self._regenerator.last_regeneration_ms,
                                           self._regenerator.last_change_to_maps_ms),
            errors=self._errors.recent(), problems=tuple(problems),
            warnings=tuple(map_warning(m) for m in stats.maps if nearly_full(m))
            + self._regenerator.undefined_orders(),
            rejected=rejected, object_warnings=tuple(str(w) for w in applied.warnings),
            unmanaged=unmanaged)

    def applied_revision(self) -> int:
        return self._regenerator.applied_revision

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        return self._regenerator.wait_for_revision(revision, timeout)


def nearly_full(m: MapUsage) -> bool:
    return bool(m.max_entries) and m.entries >= m.max_entries * NEARLY_FULL


EVICTION_NOTES = {
    "conntrack": ": the oldest connections are being evicted",
    "ct_unreplied": ": connections not answered yet are being evicted (a pod flooding?)",
}


def map_warning(m: MapUsage) -> str:
    return (f"{m.name} map {100 * m.entries // m.max_entries}% full"
            + EVICTION_NOTES.get(m.name, ""))
