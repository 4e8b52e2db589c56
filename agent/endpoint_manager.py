"""Endpoint lifecycle: registration, deregistration, reconciliation with pinned state, and
the one place an endpoint's maps are written.

Fail closed: a registered endpoint is attached at once with INIT_POLICY (deny all but
its node) under the init identity; the regenerator opens what policy allows once the pod
is known. On start, pinned endpoints nobody registered (or whose veth is gone) are
removed, registered ones get this process's programs on their pinned maps, and a
registration that was never written is closed before anything else happens.

Locking: every change to the registry's records or the datapath happens under the
agent's state lock (shared with the regenerator and GC); `register` waits for readiness
outside it. The regenerator is woken through the shared `kick` event.

Unmanaged pods (UnmanagedPods): pods the source places on this node, networked, that
never registered (created before Membrane was installed, or after the chained conflist
was replaced) run unenforced. They are compared with the registry at every question and
reported in `status`, `/readyz` (not ready past a grace period) and `endpoint list`
(state "unmanaged"), with what the operator does: check the chain, restart the pod.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from agent.api.client import DEFAULT_WAIT_SECONDS
from agent.api.services import EndpointView, InvalidRegistration
from agent.datapath.interface import Datapath, EndpointSlot
from agent.endpoints import (Endpoint, EndpointRegistry, EndpointState, interface_index,
                             registration_problems)
from agent.health import ErrorHistory, HealthChecks
from agent.k8s.objects import Pod
from agent.k8s.validation.fields import printable
from agent.policy.mapstate import ANY_PROTOCOL, Direction, EndpointPolicy, PolicyKey
from core.errors import DatapathError, MapFullError, MembraneError
from identity.reserved import ReservedIdentity

log = logging.getLogger("membrane.agent")


class PodSource(Protocol):
    """The part of the store UnmanagedPods reads (agent.store.Store has it)."""

    def networked_pods_on(self, node: str) -> list[Pod]: ...


# A registered endpoint whose pod (and so identity) is not known yet: deny everything
# but its node, like Cilium's init identity. Fail closed from the first packet.
INIT_POLICY = EndpointPolicy(
    ingress_enforced=True, egress_enforced=True,
    entries=frozenset({PolicyKey(Direction.INGRESS, int(ReservedIdentity.HOST), ANY_PROTOCOL)}),
)


@dataclass(frozen=True)
class Written:
    """What the datapath last accepted for an endpoint, entirely."""

    slot: EndpointSlot
    policy: EndpointPolicy


class EndpointManager:
    def __init__(self, registry: EndpointRegistry, datapath: Datapath, lock: threading.RLock,
                 kick: threading.Event, errors: ErrorHistory) -> None:
        self.registry = registry
        self._datapath = datapath
        self._lock = lock
        self._kick = kick
        self._errors = errors
        self._written: dict[int, Written] = {}

    # -- reading -------------------------------------------------------------------
    def all(self) -> list[Endpoint]:
        return self.registry.all()

    def get(self, endpoint_id: int) -> Endpoint | None:
        return self.registry.get(endpoint_id)

    def by_pod(self, key: str) -> Endpoint | None:
        return self.registry.by_pod(key)

    def written(self, endpoint_id: int) -> Written | None:
        return self._written.get(endpoint_id)

    def notify(self) -> None:
        """Wakes everyone waiting on an endpoint's state (registrations)."""
        self.registry.notify()

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return self.registry.wait(predicate, timeout)

    # -- reconciliation on start ---------------------------------------------------
    def reconcile_pinned(self) -> None:
        """Pinned endpoints nobody registered (or whose veth is gone) are removed;
        registered endpoints keep their pinned maps until the first regeneration."""
        with self._lock:
            pinned = {slot.endpoint_id: slot for slot in self._datapath.pinned_endpoints()}
            for ep in self.registry.all():
                if interface_index(ep.ifname) == 0:
                    log.info("endpoint %d (%s): veth %s is gone, removing", ep.id, ep.key,
                             ep.ifname)
                    self.registry.remove(ep.id)
                    if ep.id in pinned:
                        self._datapath.remove_endpoint(ep.id)
                        del pinned[ep.id]
                elif ep.id in pinned:
                    # Our programs (and so our ring buffer) on the pinned state, maps untouched.
                    self._datapath.reattach(replace(pinned[ep.id], ifname=ep.ifname))
                    ep.attached = True
                    ep.identity = pinned[ep.id].identity
                    ep.ifindex = pinned[ep.id].ifindex
                    ep.state = EndpointState.REGENERATING
                else:
                    # Registered but never written (the last agent died in between): fail
                    # closed now rather than leave the veth without programs until sync.
                    self._close(ep)
                    ep.state = EndpointState.WAITING_FOR_IDENTITY
            for endpoint_id in pinned:
                if self.registry.get(endpoint_id) is None:
                    log.info("endpoint %d: pinned but not registered, removing", endpoint_id)
                    self._datapath.remove_endpoint(endpoint_id)

    # -- registration --------------------------------------------------------------
    def register(self, namespace: str, pod: str, ifname: str, ipv4: str,
                 container_id: str = "", timeout: float = DEFAULT_WAIT_SECONDS,
                 ipv6: str = "") -> Endpoint:
        """Returns the endpoint once it is enforced (ready); raises MembraneError when it
        cannot be, with the endpoint left fail-closed. ipv4 and ipv6 are the pod's
        addresses ("" for a family it lacks: at least one is needed)."""
        problems = registration_problems(namespace, pod, ifname, ipv4, ipv6)
        if problems:
            raise InvalidRegistration(f"RegisterEndpoint {printable(namespace)}/"
                                      f"{printable(pod)}: " + "; ".join(problems))
        if interface_index(ifname) == 0:
            raise MembraneError(f"endpoint {namespace}/{pod}: no interface {ifname!r} in the "
                                "agent's network namespace")
        with self._lock:
            ep = self.registry.register(namespace, pod, ifname, ipv4, container_id, ipv6)
            if not ep.attached:
                # Fail closed at once; regeneration opens what policy allows.
                self._close(ep)
                if ep.state is not EndpointState.NOT_READY:
                    ep.state = EndpointState.WAITING_FOR_IDENTITY
        self._kick.set()
        settled = (EndpointState.READY, EndpointState.NOT_READY)
        ready = self.registry.wait(lambda: ep.state in settled, timeout)
        if ep.state is EndpointState.NOT_READY:
            raise MembraneError(f"endpoint {ep.id} ({ep.key}): not-ready: {ep.error}")
        if not ready:
            why = ep.error or "is the pod in the source? labels known?"
            raise MembraneError(f"endpoint {ep.id} ({ep.key}): still {ep.state.value} after "
                                f"{timeout:.0f}s ({why})")
        return ep

    def deregister(self, namespace: str, pod: str) -> None:
        with self._lock:
            ep = self.registry.by_pod(f"{namespace}/{pod}")
            if ep is None:
                return  # idempotent, as CNI DEL must be
            ep.state = EndpointState.DISCONNECTING
            self.registry.notify()
            self._datapath.remove_endpoint(ep.id)
            self._written.pop(ep.id, None)
            self.registry.remove(ep.id)
            self.registry.notify()

    # -- writing -------------------------------------------------------------------
    def _close(self, ep: Endpoint) -> None:
        slot = EndpointSlot(ep.id, ep.ifname, interface_index(ep.ifname), ep.ipv4,
                            int(ReservedIdentity.INIT), ep.ipv6)
        self.write(ep, slot, INIT_POLICY, 0)

    def write(self, ep: Endpoint, slot: EndpointSlot, policy: EndpointPolicy,
              revision: int) -> None:
        """Attaches (first time) or updates the endpoint's maps; call with the state lock
        held. A full map or a datapath error makes it not-ready (and forgets what was
        written, so the next pass writes it whole); the caller sees ep.state."""
        try:
            if not ep.attached:
                self._datapath.add_endpoint(slot, policy)
                ep.attached = True
            else:
                self._datapath.update_endpoint(slot, policy)
        except MapFullError as err:
            ep.state, ep.error = EndpointState.NOT_READY, str(err)
            self._errors.record(f"endpoint {ep.id} ({ep.key}): {err}")
            self._written.pop(ep.id, None)  # partially written: rewrite next time
            return
        except DatapathError as err:
            ep.state, ep.error = EndpointState.NOT_READY, str(err)
            self._written.pop(ep.id, None)
            return
        self._written[ep.id] = Written(slot, policy)
        ep.identity, ep.ifindex = slot.identity, slot.ifindex
        # Enforced: policy decides the direction (NetworkPolicy, a tier, or "always").
        ep.ingress_enforced = policy.decides(Direction.INGRESS)
        ep.egress_enforced = policy.decides(Direction.EGRESS)
        ep.audit = policy.audit
        ep.policy_entries = len(policy.entries)
        ep.policy_revision = revision


# How long a networked pod of this node may go without an endpoint before it counts as
# unmanaged: its CNI ADD may still be on its way (the runtime reports the pod's IP as
# the chain returns; the lab registers right after writing the pod).
UNMANAGED_GRACE = 30.0

UNMANAGED = "unmanaged"   # the state `endpoint list` shows for such a pod
UNMANAGED_ADVICE = ("no endpoint: the container runtime did not run Membrane's CNI plugin "
                    "for it (created before Membrane was installed, or after the chained "
                    "conflist was replaced), so its traffic is not enforced. Check that "
                    "the node's CNI config chains membrane-cni, then restart the pod "
                    "(kubectl delete pod) so the runtime runs the chain")


@dataclass(frozen=True)
class UnmanagedPod:
    namespace: str
    pod: str
    ipv4: str
    seconds: float          # how long it has been seen without an endpoint
    ipv6: str = ""

    def __str__(self) -> str:
        return (f"pod {self.namespace}/{self.pod} ({self.ipv4 or self.ipv6}) {UNMANAGED} for "
                f"{self.seconds:.0f}s: {UNMANAGED_ADVICE}")

    def view(self) -> EndpointView:
        return EndpointView(
            id=0, namespace=self.namespace, pod=self.pod, ifname="", ipv4=self.ipv4,
            ipv6=self.ipv6, ifindex=0, identity=0, state=UNMANAGED, error=UNMANAGED_ADVICE,
            ingress_enforced=False, egress_enforced=False, policy_revision=0,
            policy_entries=0, last_regeneration_ms=0.0)


class UnmanagedPods:
    """The pods the source places on this node, networked and not hostNetwork, that no
    registered endpoint enforces (none for the pod, or one for an earlier address of
    it) for longer than `grace`. Computed afresh from the store and the registry at each
    question (status, /readyz, `endpoint list`); the grace counts from the first
    question that saw the pod so. Registers the readiness check "no unmanaged pods"."""

    def __init__(self, node: str, store: PodSource, registry: EndpointRegistry,
                 health: HealthChecks, grace: float = UNMANAGED_GRACE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._node = node
        self._store = store
        self._registry = registry
        self._grace = grace
        self._clock = clock
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}
        health.add_readiness("no unmanaged pods", self.none)

    def current(self) -> list[UnmanagedPod]:
        now = self._clock()
        # Enforced: registered under the pod's current first address (IPv4, or IPv6 on an
        # IPv6-only pod).
        enforced = {(ep.key, ep.ipv4 or ep.ipv6) for ep in self._registry.all()}
        pods = {p.key: p for p in self._store.networked_pods_on(self._node)
                if (p.key, p.addresses[0]) not in enforced}
        with self._lock:
            self._first_seen = {key: self._first_seen.get(key, now) for key in pods}
            seen = dict(self._first_seen)
        return [UnmanagedPod(p.namespace, p.name, p.ip or "", now - seen[key], p.ipv6 or "")
                for key, p in sorted(pods.items()) if now - seen[key] >= self._grace]

    def none(self) -> bool:
        """Readiness: no pod of this node has gone unmanaged past the grace."""
        return not self.current()


class EndpointApi:
    """The API's EndpointService (agent.api.services) over the manager: views, not
    records; unmanaged pods are listed too, as rows in state "unmanaged"."""

    def __init__(self, manager: EndpointManager,
                 unmanaged: UnmanagedPods | None = None) -> None:
        self._manager = manager
        self._unmanaged = unmanaged

    def register(self, namespace: str, pod: str, ifname: str, ipv4: str,
                 container_id: str, timeout: float, ipv6: str = "") -> EndpointView:
        return self._manager.register(namespace, pod, ifname, ipv4, container_id,
                                      timeout, ipv6).view()

    def deregister(self, namespace: str, pod: str) -> None:
        self._manager.deregister(namespace, pod)

    def endpoints(self) -> list[EndpointView]:
        views = [ep.view() for ep in self._manager.all()]
        if self._unmanaged is not None:
            views += [pod.view() for pod in self._unmanaged.current()]
        return views

    def find(self, endpoint_id: int, pod_key: str) -> EndpointView | None:
        ep = self._manager.get(endpoint_id) if endpoint_id else self._manager.by_pod(pod_key)
        return ep.view() if ep is not None else None
