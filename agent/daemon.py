"""The agent: keeps a node's endpoints, identities and BPF maps in step with the cluster.

Threads, each with one job:
  source       fills the Store from the lab directory or the Kubernetes watch
  regenerator  store or endpoint change -> engine -> map state -> datapath diff/write
  events       datapath ring buffer -> FlowObserver
  gc           expired conntrack entries, unreferenced identities
and the gRPC server (Agent + Observer services on one unix socket).

Nothing is enforced from a half-known state: until the source reports its initial list,
endpoints keep what is pinned (after a restart) or the fail-closed init policy (new ones).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.datapath.interface import Datapath, EndpointSlot
from agent.endpoints import Endpoint, EndpointRegistry, EndpointState
from core.errors import DatapathError, MapFullError, MembraneError
from agent.policy.mapstate import (ANY_PROTOCOL, ClusterMaps, Direction, EndpointPolicy,
                                   PolicyKey)
from agent.sources.base import Source
from agent.store import Snapshot, Store
from identity.reserved import ReservedIdentity
from observe.metrics import observe_regeneration

log = logging.getLogger("membrane.agent")

VERSION = "0.1.0"

# A registered endpoint whose pod (and so identity) is not known yet: deny everything
# but its node, like Cilium's init identity. Fail closed from the first packet.
INIT_POLICY = EndpointPolicy(
    ingress_enforced=True, egress_enforced=True,
    entries=frozenset({PolicyKey(Direction.INGRESS, int(ReservedIdentity.HOST), ANY_PROTOCOL)}),
)


@dataclass
class _Written:
    slot: EndpointSlot
    policy: EndpointPolicy


class Agent:
    def __init__(self, config: AgentConfig, datapath: Datapath | None = None,
                 source: Source | None = None) -> None:
        self.config = config
        self.started_at = time.time()
        config.state_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store()
        self.registry = EndpointRegistry(config.state_dir)
        self.allocator, self.cidr_allocator = self._make_allocators()
        from agent.policy.engine import PolicyEngine
        from identity.filter import LabelFilter

        label_filter = LabelFilter.default().with_excluded(*config.exclude_labels)
        self.engine = PolicyEngine(self.allocator, self.cidr_allocator, cluster=config.cluster,
                                   label_filter=label_filter)
        self.datapath = datapath or self._make_datapath()
        self.source = source or self._make_source()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._lock = threading.RLock()            # engine, registry, datapath writes
        self._applied = threading.Condition()
        self.applied_revision = 0                 # source revision written to every endpoint
        self.snapshot: Snapshot = self.store.snapshot()
        self._written: dict[int, _Written] = {}
        self._cluster_maps: ClusterMaps | None = None
        self.last_regeneration_ms = 0.0
        self.last_change_to_maps_ms = 0.0
        self.errors: list[str] = []
        self.peers_by_ip: dict[str, Any] = {}     # ip -> observe.metadata.PeerInfo
        self.observer: Any = None
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._tls_server: Any = None
        self._lost_seen = 0

    # -- construction ----------------------------------------------------------------
    def _make_allocators(self) -> tuple[Any, Any]:
        from identity.cidr import CidrAllocator

        # "on_flush": numbers are written once per regeneration (flush), always before any
        # map uses them, instead of an fsync'd rewrite per new identity.
        cidr = CidrAllocator(self.config.state_dir / "cidr-identities", persist="on_flush")
        if self.config.identity_backend == "crd":
            from kubernetes import client
            from agent.sources.kubernetes import load_configuration  # only for crd: a client
            from identity.crd import CrdAllocator  # only for crd: the kubernetes client

            api = client.ApiClient(load_configuration(self.config.kubeconfig))
            return CrdAllocator(api, node=self.config.node,
                                grace_seconds=self.config.identity_grace_seconds), cidr
        if self.config.identity_backend == "etcd":
            from identity.etcd import EtcdAllocator

            if not self.config.etcd_endpoints:
                raise MembraneError("--identity-backend etcd needs --etcd URL")
            return EtcdAllocator(list(self.config.etcd_endpoints), node=self.config.node,
                                 grace_seconds=self.config.identity_grace_seconds), cidr
        from identity.local import LocalAllocator

        return LocalAllocator(self.config.state_dir / "identities",
                              grace_seconds=self.config.identity_grace_seconds,
                              persist="on_flush"), cidr

    def _make_datapath(self) -> Datapath:
        if self.config.datapath == "fake":
            from agent.datapath.fake import FakeDatapath

            return FakeDatapath()  # type: ignore[return-value]
        from agent.datapath.bpf import BpfDatapath

        return BpfDatapath(node=self.config.node, pin_dir=self.config.bpffs,  # type: ignore[return-value]
                           max_policy=self.config.max_policy_entries,
                           max_conntrack=self.config.max_conntrack_entries,
                           ring_pages=self.config.event_ring_pages)

    def _make_source(self) -> Source:
        if self.config.source.startswith("lab:"):
            from agent.sources.labdir import LabDirSource

            return LabDirSource(self.config.source[len("lab:"):])
        if self.config.source == "kubernetes":
            from agent.sources.kubernetes import KubernetesSource

            return KubernetesSource(kubeconfig=self.config.kubeconfig,  # type: ignore[return-value]
                                    node_name=self.config.node)
        raise MembraneError(f"--source {self.config.source!r}: expected kubernetes or lab:<dir>")

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.monotonic()
        self.datapath.start()
        self._reconcile_pinned()
        self._start_observer()
        set_batch = getattr(self.datapath, "set_batch_handler", None)
        if set_batch is not None:
            set_batch(self.observer.on_events)   # one EventBatch per poll, one lock each
        else:
            self.datapath.set_event_handler(self._on_event)
        self._serve()
        self._spawn("source", lambda: self.source.run(self.store, self._stop))
        self.store.subscribe(lambda _rev: self._kick.set())
        self._spawn("regenerator", self._regenerate_loop)
        self._spawn("events", self._events_loop)
        self._spawn("gc", self._gc_loop)
        log.info("agent %s started in %.0f ms (source %s)", self.config.node,
                 (time.monotonic() - t0) * 1000, self.source.name)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=self._guard(name, target), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, name: str, target: Any) -> Any:
        def run() -> None:
            try:
                target()
            except Exception as err:  # a dead thread must be visible in status, not silent
                log.exception("thread %s died", name)
                self.errors.append(f"thread {name} died: {err}")
        return run

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        for server in (self._server, self._tls_server):
            if server is not None:
                server.stop(grace=0.5).wait()
        for thread in self._threads:
            thread.join(timeout=3)
        if self.observer is not None:
            self.observer.stop()
        # Programs and pinned maps stay: a restarting agent neither opens nor cuts anything.
        self.datapath.close(unpin=False)
        for leftover in (self.config.socket, self.config.socket + ".pid"):
            try:
                os.unlink(leftover)
            except FileNotFoundError:
                pass
        self.allocator.close()
        self.cidr_allocator.close()
        log.info("agent %s stopped", self.config.node)

    def wait(self) -> None:
        self._stop.wait()

    # -- reconciliation on start -----------------------------------------------------
    def _reconcile_pinned(self) -> None:
        """Pinned endpoints nobody registered (or whose veth is gone) are removed;
        registered endpoints keep their pinned maps until the first regeneration."""
        pinned = {slot.endpoint_id: slot for slot in self.datapath.pinned_endpoints()}
        for ep in list(self.registry.all()):
            if _ifindex(ep.ifname) == 0:
                log.info("endpoint %d (%s): veth %s is gone, removing", ep.id, ep.key, ep.ifname)
                self.registry.remove(ep.id)
                if ep.id in pinned:
                    self.datapath.remove_endpoint(ep.id)
                    del pinned[ep.id]
            elif ep.id in pinned:
                # Our programs (and so our ring buffer) on the pinned state, maps untouched.
                self.datapath.reattach(replace(pinned[ep.id], ifname=ep.ifname))
                ep.attached = True
                ep.identity = pinned[ep.id].identity
                ep.ifindex = pinned[ep.id].ifindex
                ep.state = EndpointState.REGENERATING
            else:
                # Registered but never written (the last agent died in between): fail
                # closed now rather than leave the veth without programs until sync.
                self._write(ep, EndpointSlot(ep.id, ep.ifname, _ifindex(ep.ifname), ep.ipv4,
                                             int(ReservedIdentity.INIT)), INIT_POLICY, 0)
                ep.state = EndpointState.WAITING_FOR_IDENTITY
        for endpoint_id in pinned:
            if self.registry.get(endpoint_id) is None:
                log.info("endpoint %d: pinned but not registered, removing", endpoint_id)
                self.datapath.remove_endpoint(endpoint_id)

    # -- endpoints (API) -------------------------------------------------------------
    def register_endpoint(self, namespace: str, pod: str, ifname: str, ipv4: str,
                          container_id: str = "", timeout: float = 30.0) -> Endpoint:
        if not namespace or not pod or not ifname or not ipv4:
            raise MembraneError("RegisterEndpoint needs namespace, pod, ifname and ipv4")
        if _ifindex(ifname) == 0:
            raise MembraneError(f"endpoint {namespace}/{pod}: no interface {ifname!r} in the "
                                "agent's network namespace")
        with self._lock:
            ep = self.registry.register(namespace, pod, ifname, ipv4, container_id)
            if not ep.attached:
                # Fail closed at once; regeneration opens what policy allows.
                self._write(ep, EndpointSlot(ep.id, ifname, _ifindex(ifname), ipv4,
                                             int(ReservedIdentity.INIT)), INIT_POLICY, 0)
                if ep.state is not EndpointState.NOT_READY:
                    ep.state = EndpointState.WAITING_FOR_IDENTITY
        self._kick.set()
        ready = self.registry.wait(lambda: ep.state in (EndpointState.READY,
                                                        EndpointState.NOT_READY), timeout)
        if ep.state is EndpointState.NOT_READY:
            raise MembraneError(f"endpoint {ep.id} ({ep.key}): not-ready: {ep.error}")
        if not ready:
            raise MembraneError(f"endpoint {ep.id} ({ep.key}): still {ep.state.value} after "
                                f"{timeout:.0f}s (is the pod in the source? labels known?)")
        return ep

    def deregister_endpoint(self, namespace: str, pod: str) -> None:
        with self._lock:
            ep = self.registry.by_pod(f"{namespace}/{pod}")
            if ep is None:
                return  # idempotent, as CNI DEL must be
            ep.state = EndpointState.DISCONNECTING
            self.registry.notify()
            self.datapath.remove_endpoint(ep.id)
            self._written.pop(ep.id, None)
            self.registry.remove(ep.id)
            self.registry.notify()

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        with self._applied:
            return self._applied.wait_for(lambda: self.applied_revision >= revision, timeout)

    # -- regeneration ----------------------------------------------------------------
    def _regenerate_loop(self) -> None:
        regenerated = -1
        while not self._stop.is_set():
            kicked = self._kick.wait(timeout=1.0)
            self._kick.clear()
            if self._stop.is_set():
                return
            snapshot = self.store.snapshot()
            if not snapshot.synced:
                continue  # never enforce a half-known state
            # The 1 s tick only retries endpoints that are not ready (a veth that was
            # missing, a map that was full); an unchanged, healthy node does nothing.
            if (not kicked and snapshot.revision == regenerated
                    and all(ep.state is EndpointState.READY for ep in self.registry.all())):
                continue
            regenerated = snapshot.revision
            try:
                self.regenerate(snapshot)
            except Exception as err:
                # Retried at the next tick, not only at the next change: a flush to an
                # etcd that was briefly away must not leave the maps stale until then.
                regenerated = -1
                message = f"regeneration: {err}"
                if self.errors[-1:] != [message]:   # the traceback once per distinct error
                    log.exception("regeneration failed; retrying every second")
                    self.errors = self.errors[-20:] + [message]

    def regenerate(self, snapshot: Snapshot) -> None:
        t0 = time.monotonic()
        with self._lock:
            self.snapshot = snapshot
            self.engine.update(snapshot.objects)
            # Durable before the datapath uses them: a restart must give the same numbers.
            self.allocator.flush()
            self.cidr_allocator.flush()
            maps = self.engine.cluster_maps(self.config.node)
            if maps != self._cluster_maps:
                self.datapath.sync_cluster_maps(maps)
                self._cluster_maps = maps
            self._refresh_peers(snapshot)
            for ep in self.registry.all():
                self._regenerate_endpoint(ep, snapshot)
            self.registry.notify()
        done = time.monotonic()
        elapsed = (done - t0) * 1000
        self.last_regeneration_ms = elapsed
        # From the change reaching the store to every endpoint's maps being written.
        self.last_change_to_maps_ms = (done - snapshot.changed_at) * 1000
        log.info("revision %d applied to %d endpoints in %.1f ms (%.1f ms after the change)",
                 snapshot.source_revision, len(self.registry.all()), elapsed,
                 self.last_change_to_maps_ms)
        with self._applied:
            self.applied_revision = max(self.applied_revision, snapshot.source_revision)
            self._applied.notify_all()

    def _regenerate_endpoint(self, ep: Endpoint, snapshot: Snapshot) -> None:
        t0 = time.monotonic()
        pod = snapshot.objects.pods.get(ep.key)
        ident = self.engine.identity_of(ep.key) if pod is not None else None
        ifindex = _ifindex(ep.ifname)
        if ifindex == 0:
            ep.state, ep.error = EndpointState.NOT_READY, f"veth {ep.ifname} not found"
            return
        if ident is None:
            ep.state = EndpointState.WAITING_FOR_IDENTITY
            return
        policy = self.engine.endpoint_policy(ep.key)
        slot = EndpointSlot(ep.id, ep.ifname, ifindex, ep.ipv4, ident.id)
        written = self._written.get(ep.id)
        if (written and written.slot == slot and written.policy == policy
                and ep.state is EndpointState.READY):
            ep.policy_revision = snapshot.source_revision
            return
        ep.state = EndpointState.REGENERATING
        self._write(ep, slot, policy, snapshot.source_revision)
        if ep.state is EndpointState.REGENERATING:
            ep.state, ep.error = EndpointState.READY, ""
            ep.last_regeneration_ms = (time.monotonic() - t0) * 1000
            observe_regeneration(ep.last_regeneration_ms / 1000)
            log.info("endpoint %d (%s) identity %d: %d entries written in %.1f ms", ep.id, ep.key,
                     ident.id, len(policy.entries), ep.last_regeneration_ms)

    def _write(self, ep: Endpoint, slot: EndpointSlot, policy: EndpointPolicy,
               revision: int) -> None:
        try:
            if not ep.attached:
                self.datapath.add_endpoint(slot, policy)
                ep.attached = True
            else:
                self.datapath.update_endpoint(slot, policy)
        except MapFullError as err:
            ep.state, ep.error = EndpointState.NOT_READY, str(err)
            self.errors = self.errors[-20:] + [f"endpoint {ep.id} ({ep.key}): {err}"]
            self._written.pop(ep.id, None)  # partially written: rewrite next time
            return
        except DatapathError as err:
            ep.state, ep.error = EndpointState.NOT_READY, str(err)
            self._written.pop(ep.id, None)
            return
        self._written[ep.id] = _Written(slot, policy)
        ep.identity, ep.ifindex = slot.identity, slot.ifindex
        ep.ingress_enforced, ep.egress_enforced = policy.ingress_enforced, policy.egress_enforced
        ep.policy_entries = len(policy.entries)
        ep.policy_revision = revision

    # -- observability ---------------------------------------------------------------
    def _start_observer(self) -> None:
        from observe.metrics import default_metrics
        from observe.ring import FlowObserver

        from agent.flowmeta import AgentMetadata

        self.observer = FlowObserver(node=self.config.node, capacity=self.config.flow_capacity,
                                     meta=AgentMetadata(self),
                                     queue_size=self.config.event_queue_size,
                                     listeners=[default_metrics()])
        self.observer.start()
        if self.config.observer_listen:
            from observe.tls import serve_tcp_with_tls

            # Refuses to start without cert, key and client CA: flows are never served
            # in plaintext or to anonymous clients.
            self._tls_server = serve_tcp_with_tls(self.observer, self.config.observer_listen,
                                                  self.config.tls_cert, self.config.tls_key,
                                                  self.config.tls_client_ca)
        if self.config.metrics_port:
            from observe.metrics import start_metrics_server

            start_metrics_server(self.config.metrics_port)

    def _on_event(self, event: Any) -> None:
        self.observer.on_event(event)

    def _events_loop(self) -> None:
        next_lost_check = 0.0
        while not self._stop.is_set():
            self.datapath.poll_events(100)
            now = time.monotonic()
            if now < next_lost_check:
                continue
            # The kernel's counter is cumulative: reading it every 100 ms loses no count.
            next_lost_check = now + 0.1
            lost = self.datapath.lost_events()
            if lost > self._lost_seen:
                self.observer.report_lost("kernel", lost - self._lost_seen)
                self._lost_seen = lost

    def _refresh_peers(self, snapshot: Snapshot) -> None:
        from agent.flowmeta import peers_from

        self.peers_by_ip = peers_from(self, snapshot)

    def _gc_loop(self) -> None:
        last_identity_gc = time.monotonic()
        while not self._stop.wait(self.config.conntrack_gc_interval):
            with self._lock:
                removed = self.datapath.collect_conntrack_garbage()
            if removed:
                log.debug("conntrack gc: %d expired entries removed", removed)
            if time.monotonic() - last_identity_gc > 30:
                last_identity_gc = time.monotonic()
                with self._lock:
                    # Unreferenced numbers left every map at their last regeneration; after
                    # the grace period they may be handed out again.
                    freed = self.allocator.collect_garbage() + self.cidr_allocator.collect_garbage()
                    self.allocator.flush()
                    self.cidr_allocator.flush()
                for ident in freed:
                    log.info("identity %d released after its grace period", ident.id)

    # -- gRPC ------------------------------------------------------------------------
    def _serve(self) -> None:
        from concurrent import futures

        import grpc

        from agent.api.server import AgentServicer
        from agent.api.gen import agent_pb2_grpc
        from observe.server import add_observer_to_server

        path = self.config.socket
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)  # a stale socket of a previous run
        # Each `observe --follow` stream holds a worker thread: leave room for Agent RPCs.
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
        agent_pb2_grpc.add_AgentServicer_to_server(AgentServicer(self), server)
        add_observer_to_server(server, self.observer)
        old_umask = os.umask(0o177)  # the socket is root's only: 0600
        try:
            server.add_insecure_port("unix:" + path)
            server.start()
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        Path(path + ".pid").write_text(f"{os.getpid()}\n")  # lets tools find this agent
        self._server = server

    def status(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for ep in self.registry.all():
            by_state[ep.state.value] = by_state.get(ep.state.value, 0) + 1
        stats = self.datapath.stats()
        obs = self.observer.status().to_dict() if self.observer else {}
        healthy = not any(e.startswith("thread") for e in self.errors) and self.snapshot.synced
        warnings = [f"{m.name} map {100 * m.entries // m.max_entries}% full"
                    + (": the oldest connections are being evicted" if m.name == "conntrack" else "")
                    for m in stats.maps if m.max_entries and m.entries * 10 >= m.max_entries * 9]
        return {
            "node": self.config.node, "version": VERSION, "healthy": healthy,
            "uptime_seconds": time.time() - self.started_at,
            "store_revision": self.store.snapshot().source_revision,
            "applied_revision": self.applied_revision,
            "endpoints_by_state": by_state,
            "identities": len(self.allocator.identities()),
            "maps": stats.maps, "drops": stats.drops, "lost_kernel": stats.lost_events,
            "observer": obs, "last_regeneration_ms": self.last_regeneration_ms,
            "errors": list(self.errors) + list(self.snapshot.rejected) + warnings,
            "source": self.source.name, "synced": self.snapshot.synced,
        }


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        return 0
