"""Regeneration: a store change or an endpoint change -> engine -> map writes.

One pass (`regenerate`), under the agent's state lock:

  1. engine.update(snapshot) returns an EngineDelta: the pods whose EndpointPolicy
     changed, the pods that stopped being endpoints, whether the cluster maps changed.
     Deltas accumulate in `_pending` until a pass completes, so a pass that fails
     half-way (an allocator flush to an etcd that is briefly away) loses nothing. What
     one pod or policy cannot have (an identity, room in a map) never fails the update:
     the engine fails those pods closed and says why.
  2. Targets: each local endpoint's policy, after the policy map's shares between
     namespaces (agent/mapshares.py): an endpoint over its share fails closed.
  3. Revocations first: every endpoint whose written policy allows what its target does
     not gets only the removals written (entries deleted, a new deny switched on),
     before anything in this pass adds an entry.
  4. Allocator flush: numbers are durable before any map holds them (a failure ends
     the pass here, revocations applied; it is retried).
  5. Cluster maps (ipcache, cidr) are synced only when a delta said they changed. If
     that fails, endpoints are written without their CIDR-identity entries (an address
     the cidr map lacks could match a wider block) and shown not-ready until it works.
  6. The observer's peers table is refreshed (agent.flowmeta).
  7. Each local endpoint is rewritten only when its target changed (the delta, or a
     share), its slot changed (identity, veth), or it is not in the state its target
     calls for (a veth that was missing, a map that was full, a write not yet done); an
     unchanged endpoint only has its revision advanced, without comparing its policy.

Endpoint states: ready (its target is the spec's), not-ready with the reason when it is
fail-closed (a policy of it not enforced, over its share, no identity: written and
settled, so they neither fail readiness nor spin the loop) or when something failed
(veth gone, map full: retried every second).

The loop (`run`) passes on every kick (a store change, a registration) and otherwise
once a second while an endpoint waits for something a retry may fix, a pod waits for
its identity, the cluster maps are out of step, or the last pass failed; a synced store
is required: nothing is enforced from a half-known state.

`PolicyQueries` answers the API's PolicyView from the same engine and snapshot, under
the same lock, so a trace never sees an update half done.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import Callable, Iterable, Sequence

from agent.api.services import LoadedPolicies
from agent.datapath.interface import Datapath, EndpointSlot
from agent.endpoint_manager import INIT_POLICY, EndpointManager
from agent.endpoints import Endpoint, EndpointState, interface_index
from agent.flowmeta import AgentMetadata
from agent.health import ErrorHistory, HealthChecks
from agent.k8s.clusterpolicy import describe_same_priority, same_priority_groups
from agent.mapshares import NODE_ENTRY, Planned, PolicyMapShares, Wanted
from agent.policy.engine import PolicyEngine
from agent.policy.explain import Explanation, explain
from agent.policy.limits import DEFAULT_NAMESPACE_SHARE, policy_map_entries
from agent.policy.mapstate import Direction, EndpointPolicy, TierAction
from agent.policy.trace import TraceResult, trace_engine
from agent.store import Snapshot, Store
from core.errors import DatapathError
from identity.allocator import Allocator
from identity.reserved import MIN_CIDR_IDENTITY

log = logging.getLogger("membrane.agent")

RETRY_INTERVAL = 1.0   # seconds between passes while something is not ready
DEFAULT_POLICY_MAP = 65536
MAX_LISTED = 10        # pods without identity named in status problems


class Regenerator:
    def __init__(self, *, node: str, store: Store, engine: PolicyEngine,
                 allocators: Sequence[Allocator], datapath: Datapath,
                 endpoints: EndpointManager, metadata: AgentMetadata,
                 lock: threading.RLock, kick: threading.Event, stop: threading.Event,
                 errors: ErrorHistory, health: HealthChecks,
                 shares: PolicyMapShares | None = None,
                 on_regenerated: Callable[[float], None] | None = None) -> None:
        self._node = node
        # Told each endpoint regeneration's seconds (the agent's metrics histogram).
        self._on_regenerated = on_regenerated
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
        self._shares = shares or PolicyMapShares(DEFAULT_POLICY_MAP, DEFAULT_NAMESPACE_SHARE)
        self.snapshot: Snapshot = store.snapshot()   # the one last applied
        self.applied_revision = 0                    # source revision written everywhere
        self._applied_once = False
        self._applied = threading.Condition()
        self.last_regeneration_ms = 0.0
        self.last_change_to_maps_ms = 0.0
        self._pending: set[str] = set()              # pod keys whose policy changed
        self._maps_pending = True                    # cluster maps not written yet
        self._maps_error = ""                        # why the last cluster map sync failed
        self._fail_closed: dict[int, str] = {}       # endpoint id -> why (settled)
        self._modified: set[int] = set()             # written with a target not the engine's
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
            # The 1 s tick only retries what a retry may fix (a veth that was missing, a
            # map that was full, an identity); an unchanged, healthy node does nothing.
            if not kicked and snapshot.revision == regenerated and not self._needs_retry():
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

    def _needs_retry(self) -> bool:
        with self._lock:
            return (self._maps_pending or bool(self._engine.identity_problems())
                    or any(ep.state is not EndpointState.READY and ep.id not in self._fail_closed
                           for ep in self._endpoints.all()))

    # -- one pass -----------------------------------------------------------------
    def regenerate(self, snapshot: Snapshot) -> None:
        t0 = time.monotonic()
        with self._lock:
            self.snapshot = snapshot
            delta = self._engine.update(snapshot.objects)
            self._pending |= delta.changed_endpoints | delta.removed_endpoints
            self._maps_pending |= delta.cluster_maps_changed
            endpoints = self._endpoints.all()
            targets = self._targets(endpoints, snapshot)
            self._revoke_first(endpoints, targets)
            # Durable before the datapath uses them: a restart must give the same numbers.
            for allocator in self._allocators:
                allocator.flush()
            cidr_ok = self._sync_cluster_maps()
            self._metadata.refresh(snapshot, self._engine, endpoints)
            for ep in endpoints:
                target = targets.get(ep.id)
                if target is not None and not cidr_ok:
                    target = _without_cidr_entries(target, self._maps_error)
                self._regenerate_endpoint(ep, snapshot, target)
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

    def _targets(self, endpoints: list[Endpoint], snapshot: Snapshot) -> dict[int, Planned]:
        """The policy to write per endpoint with an identity, after the shares; the
        engine's own problems (policies not enforced for it) carried along."""
        wanted: dict[int, Wanted] = {}
        held = 0
        for ep in endpoints:
            if ep.key in snapshot.objects.pods and self._engine.identity_of(ep.key):
                wanted[ep.id] = Wanted(ep.namespace, self._engine.endpoint_policy(ep.key))
            elif (written := self._endpoints.written(ep.id)) is not None:
                held += policy_map_entries(written.policy)
        planned = self._shares.plan(wanted, held)
        by_id = {ep.id: ep for ep in endpoints}
        out = {}
        for eid, plan in planned.items():
            problems = self._engine.endpoint_problems(by_id[eid].key)
            reason = "; ".join((*problems, plan.problem) if plan.problem else problems)
            out[eid] = Planned(plan.policy, reason)
        return out

    def _revoke_first(self, endpoints: list[Endpoint], targets: dict[int, Planned]) -> None:
        """Writes, for every endpoint, what its target no longer allows: its entries
        the target lacks deleted, and enforcement switched on where the target adds no
        entry in that direction but the node's (a new deny); switching off, and anything
        else to add, waits for step 7 (there, entries before flags). So no revocation
        of this pass waits behind an addition, and a pass that fails later has still
        revoked."""
        for ep in endpoints:
            target, written = targets.get(ep.id), self._endpoints.written(ep.id)
            if target is None or written is None or written.policy is target.policy:
                continue
            if ep.key not in self._pending and ep.id not in self._modified and not target.problem:
                continue   # its target is the policy already written
            old, new = written.policy, target.policy
            kept = old.entries & new.entries
            added = new.entries - kept - NODE_ENTRY
            ingress = old.ingress_enforced or (
                new.ingress_enforced and not any(k.direction is Direction.INGRESS for k in added))
            egress = old.egress_enforced or (
                new.egress_enforced and not any(k.direction is Direction.EGRESS for k in added))
            if ingress and not old.ingress_enforced:
                kept |= new.entries & NODE_ENTRY   # a new deny must not cut kubelet probes
            # The tiers' entries, default deny and audit stay as written until step 7
            # (keeping them never opens anything: the NetworkPolicy step only narrows).
            interim = replace(old, ingress_enforced=ingress, egress_enforced=egress,
                              entries=kept)
            if interim != old:
                self._endpoints.write(ep, written.slot, interim, ep.policy_revision)

    def _sync_cluster_maps(self) -> bool:
        """Whether the kernel's ipcache and cidr maps hold the engine's."""
        if not self._maps_pending:
            return True
        try:
            self._datapath.sync_cluster_maps(self._engine.cluster_maps(self._node))
        except DatapathError as err:
            self._maps_error = f"cluster maps out of step: {err}"
            if self._errors.record(self._maps_error):
                log.error("%s; endpoints drop their ipBlock entries until it works",
                          self._maps_error)
            return False
        self._maps_pending, self._maps_error = False, ""
        return True

    def _regenerate_endpoint(self, ep: Endpoint, snapshot: Snapshot,
                             target: Planned | None) -> None:
        t0 = time.monotonic()
        ifindex = interface_index(ep.ifname)
        if ifindex == 0:
            self._fail_closed.pop(ep.id, None)
            ep.state, ep.error = EndpointState.NOT_READY, f"veth {ep.ifname} not found"
            return
        ident = self._engine.identity_of(ep.key) if ep.key in snapshot.objects.pods else None
        if ident is None or target is None:
            why = self._engine.identity_problems().get(ep.key)
            if why is None:
                self._fail_closed.pop(ep.id, None)
                ep.state, ep.error = EndpointState.WAITING_FOR_IDENTITY, ""
            else:
                written = self._endpoints.written(ep.id)
                kept = ("its current policy" if written and written.policy != INIT_POLICY
                        else "the init policy (all denied but its node)")
                self._fail_closed[ep.id] = why
                # Waiting, not failed: the allocation is retried, and a registration (a
                # CNI ADD) keeps waiting for it within its timeout, as Cilium's
                # waiting-for-identity does, instead of failing at the first refusal.
                ep.state, ep.error = EndpointState.WAITING_FOR_IDENTITY, f"{why}; kept {kept}"
            return
        ep.labels_left_out = self._engine.left_out_labels(ep.key)
        slot = EndpointSlot(ep.id, ep.ifname, ifindex, ep.ipv4, ident.id, ep.ipv6)
        written = self._endpoints.written(ep.id)
        settled = ((EndpointState.NOT_READY, target.problem) if target.problem
                   else (EndpointState.READY, ""))
        unchanged = ep.key not in self._pending and ep.id not in self._modified
        if (written is not None and written.slot == slot and (ep.state, ep.error) == settled
                and ((unchanged and not target.problem) or written.policy == target.policy)):
            # Its policy did not change, or step 3 already wrote all of it.
            ep.policy_revision = snapshot.source_revision
            return
        ep.state = EndpointState.REGENERATING
        self._endpoints.write(ep, slot, target.policy, snapshot.source_revision)
        if ep.state is not EndpointState.REGENERATING:
            self._fail_closed.pop(ep.id, None)    # the write failed: retried
            return
        ep.state, ep.error = settled
        if target.problem:
            self._fail_closed[ep.id] = target.problem
            self._modified.add(ep.id)
        else:
            self._fail_closed.pop(ep.id, None)
            self._modified.discard(ep.id)
        ep.last_regeneration_ms = (time.monotonic() - t0) * 1000
        if self._on_regenerated is not None:
            self._on_regenerated(ep.last_regeneration_ms / 1000)
        log.info("endpoint %d (%s) identity %d: %d entries written in %.1f ms%s", ep.id,
                 ep.key, ident.id, len(target.policy.entries), ep.last_regeneration_ms,
                 f"; fail-closed: {target.problem}" if target.problem else "")

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
            groups = same_priority_groups(engine.tiers.policies(),
                                          lambda p: engine.selected_endpoints(p.key))
        return tuple(describe_same_priority(group) for group in groups)

    def policy_written(self) -> bool:
        """Readiness: a pass has completed, and every endpoint has its policy written at
        the applied revision (ready, or fail-closed on purpose with the reason shown)."""
        if not self._applied_once:
            return False
        return all((ep.state is EndpointState.READY or ep.id in self._fail_closed)
                   and (ep.policy_revision == self.applied_revision
                        or ep.id in self._fail_closed)
                   for ep in self._endpoints.all())

    def problems(self) -> tuple[str, ...]:
        """What the node cannot enforce as asked, beyond each endpoint's own state (for
        status): policies not enforced, pods without identity, cluster maps."""
        with self._lock:
            out = [f"policy {key} not enforced (it isolates, allows nothing): {why}"
                   for key, why in sorted(self._engine.policy_problems().items())]
            waiting = sorted(self._engine.identity_problems().items())
            out += [f"pod {key} has no identity (fail-closed): {why}"
                    for key, why in waiting[:MAX_LISTED]]
            if len(waiting) > MAX_LISTED:
                out.append(f"... and {len(waiting) - MAX_LISTED} more pods without identity")
            if self._maps_error:
                out.append(self._maps_error)
        return tuple(out)


def _without_cidr_entries(target: Planned, why: str) -> Planned:
    """Fail closed while the cidr map is out of step: no entry allows a CIDR identity
    (a tier's Allow or Pass naming one becomes a Deny at its rank)."""
    entries = frozenset(k for k in target.policy.entries if k.peer < MIN_CIDR_IDENTITY)
    tiers = frozenset(
        e if e.peer < MIN_CIDR_IDENTITY or e.action is TierAction.DENY
        else replace(e, action=TierAction.DENY) for e in target.policy.tier_entries)
    if entries == target.policy.entries and tiers == target.policy.tier_entries:
        return target
    policy = replace(target.policy, entries=entries, tier_entries=tiers)
    return Planned(policy, "; ".join(p for p in (target.problem, why) if p))


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

    def trace(self, src: str, dst: str, port: int, protocol: str, family: int = 4
              ) -> TraceResult:
        # The live engine: identity numbers in the explanation are the agent's own.
        with self._lock:
            return trace_engine(self._engine, src, dst, port, protocol, family)
