"""Regeneration: a store change or an endpoint change -> engine -> map writes.

One pass (`regenerate`), under the agent's state lock:

  1. engine.update(snapshot) returns an EngineDelta: the pods whose EndpointPolicy
     changed, the pods that stopped being endpoints, whether the cluster maps changed.
     Deltas accumulate in `_pending` until a pass completes, so a pass that fails
     half-way (an allocator flush to an etcd that is briefly away) loses nothing.
  2. Allocator flush: numbers are durable before any map holds them.
  3. Cluster maps (ipcache, cidr) are synced only when a delta said they changed.
  4. The observer's peers table is refreshed (agent.flowmeta).
  5. Each local endpoint is rewritten only when its policy changed (the delta), its slot
     changed (identity, veth), or it is not ready (waiting for its pod, a veth that was
     missing, a map that was full, a registration not yet written); an unchanged ready
     endpoint only has its revision advanced, without comparing its policy.

The loop (`run`) passes on every kick (a store change, a registration) and otherwise
once a second while some endpoint is not ready or the last pass failed; a synced store
is required: nothing is enforced from a half-known state.

`PolicyQueries` answers the API's PolicyView from the same engine and snapshot, under
the same lock, so a trace never sees an update half done.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Iterable, Sequence

from agent.api.services import LoadedPolicies
from agent.datapath.interface import Datapath, EndpointSlot
from agent.endpoint_manager import EndpointManager
from agent.endpoints import Endpoint, EndpointState, interface_index
from agent.flowmeta import AgentMetadata
from agent.health import ErrorHistory, HealthChecks
from agent.k8s.clusterpolicy import describe_same_priority, same_priority_groups
from agent.policy.engine import PolicyEngine
from agent.policy.explain import Explanation, explain
from agent.policy.trace import TraceResult, trace_engine
from core.protocols import Direction
from agent.store import Snapshot, Store
from identity.allocator import Allocator
from observe.metrics import observe_regeneration

log = logging.getLogger("membrane.agent")

RETRY_INTERVAL = 1.0   # seconds between passes while something is not ready


class Regenerator:
    def __init__(self, *, node: str, store: Store, engine: PolicyEngine,
                 allocators: Sequence[Allocator], datapath: Datapath,
                 endpoints: EndpointManager, metadata: AgentMetadata,
                 lock: threading.RLock, kick: threading.Event, stop: threading.Event,
                 errors: ErrorHistory, health: HealthChecks) -> None:
        self._node = node
        self._store = store
        self._engine = engine
        self._allocators = tuple(allocators)
        self._datapath = datapath
        self._endpoints = endpoints
        self._metadata = metadata
        self._lock = lock
        self._kick = kick
        self._stop = stop
        self._errors = errors
        self.snapshot: Snapshot = store.snapshot()   # the one last applied
        self.applied_revision = 0                    # source revision written everywhere
        self._applied_once = False
        self._applied = threading.Condition()
        self.last_regeneration_ms = 0.0
        self.last_change_to_maps_ms = 0.0
        self._pending: set[str] = set()              # pod keys whose policy changed
        self._maps_pending = True                    # cluster maps not written yet
        store.subscribe(lambda _revision: kick.set())
        health.add_readiness("policy written", self.policy_written)

    # -- the loop -----------------------------------------------------------------
    def wake(self) -> None:
        """A pass now (or, once stop is set, the loop's end) instead of at the next tick."""
        self._kick.set()

    def run(self) -> None:
        regenerated = -1
        while not self._stop.is_set():
            kicked = self._kick.wait(timeout=RETRY_INTERVAL)
            self._kick.clear()
            if self._stop.is_set():
                return
            snapshot = self._store.snapshot()
            if not snapshot.synced:
                continue  # never enforce a half-known state
            # The 1 s tick only retries endpoints that are not ready (a veth that was
            # missing, a map that was full); an unchanged, healthy node does nothing.
            if (not kicked and snapshot.revision == regenerated
                    and all(ep.state is EndpointState.READY for ep in self._endpoints.all())):
                continue
            regenerated = snapshot.revision
            try:
                self.regenerate(snapshot)
            except Exception as err:
                # Retried at the next tick, not only at the next change: a flush to an
                # etcd that was briefly away must not leave the maps stale until then.
                regenerated = -1
                if self._errors.record(f"regeneration: {err}"):   # the traceback once per error
                    log.exception("regeneration failed; retrying every second")

    # -- one pass -----------------------------------------------------------------
    def regenerate(self, snapshot: Snapshot) -> None:
        t0 = time.monotonic()
        with self._lock:
            self.snapshot = snapshot
            delta = self._engine.update(snapshot.objects)
            self._pending |= delta.changed_endpoints | delta.removed_endpoints
            self._maps_pending |= delta.cluster_maps_changed
            # Durable before the datapath uses them: a restart must give the same numbers.
            for allocator in self._allocators:
                allocator.flush()
            if self._maps_pending:
                self._datapath.sync_cluster_maps(self._engine.cluster_maps(self._node))
                self._maps_pending = False
            endpoints = self._endpoints.all()
            self._metadata.refresh(snapshot, self._engine.identity_of,
                                   {ep.key: ep.id for ep in endpoints})
            for ep in endpoints:
                self._regenerate_endpoint(ep, snapshot)
            self._pending.clear()
            self._endpoints.notify()
        done = time.monotonic()
        elapsed = (done - t0) * 1000
        self.last_regeneration_ms = elapsed
        # From the change reaching the store to every endpoint's maps being written.
        self.last_change_to_maps_ms = (done - snapshot.changed_at) * 1000
        log.info("revision %d applied to %d endpoints in %.1f ms (%.1f ms after the change)",
                 snapshot.source_revision, len(endpoints), elapsed,
                 self.last_change_to_maps_ms)
        with self._applied:
            self.applied_revision = max(self.applied_revision, snapshot.source_revision)
            self._applied_once = True
            self._applied.notify_all()

    def _regenerate_endpoint(self, ep: Endpoint, snapshot: Snapshot) -> None:
        t0 = time.monotonic()
        pod = snapshot.objects.pods.get(ep.key)
        ident = self._engine.identity_of(ep.key) if pod is not None else None
        ifindex = interface_index(ep.ifname)
        if ifindex == 0:
            ep.state, ep.error = EndpointState.NOT_READY, f"veth {ep.ifname} not found"
            return
        if ident is None:
            ep.state = EndpointState.WAITING_FOR_IDENTITY
            return
        slot = EndpointSlot(ep.id, ep.ifname, ifindex, ep.ipv4, ident.id)
        written = self._endpoints.written(ep.id)
        if (ep.key not in self._pending and written is not None and written.slot == slot
                and ep.state is EndpointState.READY):
            ep.policy_revision = snapshot.source_revision   # its policy did not change
            return
        policy = self._engine.endpoint_policy(ep.key)
        ep.state = EndpointState.REGENERATING
        self._endpoints.write(ep, slot, policy, snapshot.source_revision)
        if ep.state is EndpointState.REGENERATING:
            ep.state, ep.error = EndpointState.READY, ""
            ep.last_regeneration_ms = (time.monotonic() - t0) * 1000
            observe_regeneration(ep.last_regeneration_ms / 1000)
            log.info("endpoint %d (%s) identity %d: %d entries written in %.1f ms", ep.id,
                     ep.key, ident.id, len(policy.entries), ep.last_regeneration_ms)

    # -- what others ask ----------------------------------------------------------
    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        with self._applied:
            return self._applied.wait_for(lambda: self.applied_revision >= revision, timeout)

    def undefined_orders(self) -> tuple[str, ...]:
        """Tier policies that share a priority and a selected pod: the API leaves their
        order undefined; each note says the order Membrane uses (`policy get`,
        `status`)."""
        with self._lock:
            engine = self._engine
            groups = same_priority_groups(engine.tier_policies(),
                                          lambda p: engine.selected_endpoints(p.key))
        return tuple(describe_same_priority(group) for group in groups)

    def policy_written(self) -> bool:
        """Readiness: a pass has completed, and every endpoint is ready with its policy
        written at the applied revision."""
        if not self._applied_once:
            return False
        return all(ep.state is EndpointState.READY
                   and ep.policy_revision == self.applied_revision
                   for ep in self._endpoints.all())


class PolicyQueries:
    """The API's PolicyView (agent.api.services) over the regenerator's engine."""

    def __init__(self, regenerator: Regenerator, engine: PolicyEngine,
                 endpoints: EndpointManager, lock: threading.RLock) -> None:
        self._regenerator = regenerator
        self._engine = engine
        self._endpoints = endpoints
        self._lock = lock

    def loaded(self) -> LoadedPolicies:
        with self._lock:
            snapshot = self._regenerator.snapshot
            selected: dict[str, list[int]] = {}
            for ep in self._endpoints.all():
                for policy_key in self._engine.selecting_policies(ep.key):
                    selected.setdefault(policy_key, []).append(ep.id)
        tiers = dict(snapshot.objects.cluster_policies)
        notes = self._regenerator.undefined_orders()
        return LoadedPolicies(
            revision=snapshot.source_revision, policies=dict(snapshot.objects.policies),
            rejected=snapshot.rejected, warnings=snapshot.warnings,
            selected_endpoints={k: tuple(ids) for k, ids in selected.items()},
            cluster_policies=tiers, notes=notes)

    def decided_by(self, pod_key: str, direction: Direction, peers: Iterable[int],
                   protocol: int, port: int) -> Explanation | None:
        """Which tier, policy and rule decide a forward packet of a local endpoint (the
        flow's endpoint, direction, peer identities, protocol and port): for flows'
        ingress_allowed_by / egress_allowed_by and AUDIT flows' would-be denier. None
        for a pod the engine does not know (gone since the event)."""
        with self._lock:
            if pod_key not in self._engine.pods():
                return None
            return explain(self._engine, pod_key, direction, peers, protocol, port)

    def trace(self, src: str, dst: str, port: int, protocol: str) -> TraceResult:
        # The live engine: identity numbers in the explanation are the agent's own.
        with self._lock:
            return trace_engine(self._engine, src, dst, port, protocol)
