"""The composition root: every part of the agent, built from an AgentConfig and handed its
dependencies (as kube-network-policies' NewController(engine, config) is).

    SourceFeed ──> Store ──> Regenerator ──> EndpointManager ──> Datapath
    (source thread)          (engine + allocators;  (registry,        │ EventBatch
                             EngineDelta)            INIT policy)      v
                               │ refresh                          EventPipeline (FlowObserver,
                               v                                  HubbleMetrics, FlowExporter)
                             AgentMetadata (peers, identity labels, ──┘ meta, namer
                                            policy names)
    AgentServicer <── EndpointApi, AgentMetadata, PolicyQueries, Datapath, StatusReporter
    ApiServer: the servicer, the Observer and Peer on the unix socket (+ Observer and
               Peer over mTLS)
    HealthChecks, ErrorHistory: every part registers its own checks and errors

Nothing here runs anything: `agent.daemon.Agent` starts and stops the parts. Tests hand
in their own datapath and source, or build single parts with fakes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.api.server import AgentServicer
from agent.config import AgentConfig
from agent.datapath.bpf import BpfDatapath
from agent.datapath.fake import FakeDatapath
from agent.datapath.interface import Datapath
from agent.endpoint_manager import EndpointApi, EndpointManager, UnmanagedPods
from agent.endpoints import EndpointRegistry
from agent.feed import SourceFeed
from agent.flowmeta import AgentMetadata
from agent.mapshares import PolicyMapShares
from agent.gc import GarbageCollector
from agent.health import ErrorHistory, HealthChecks
from agent.observing import EventPipeline, export_config, gauges_from, make_metrics
from agent.policy.engine import PolicyEngine
from agent.regeneration import PolicyQueries, Regenerator
from agent.serving import ApiServer, TlsListener, node_peers
from agent.sources.base import Source
from agent.sources.labdir import LabDirSource
from agent.status import StatusReporter
from agent.store import Store
from agent.workers import Workers
from core.errors import MembraneError
from identity.allocator import Allocator
from identity.cidr import CidrAllocator
from identity.filter import LabelFilter
from identity.local import LocalAllocator
from observe.ring import FlowObserver


@dataclass(frozen=True)
class AgentParts:
    config: AgentConfig
    stop: threading.Event          # set once: every loop ends
    lock: threading.RLock          # the agent's state: engine, endpoints, datapath writes
    store: Store
    feed: SourceFeed
    datapath: Datapath
    allocator: Allocator
    cidr_allocator: Allocator
    engine: PolicyEngine
    health: HealthChecks
    errors: ErrorHistory
    workers: Workers
    endpoints: EndpointManager
    metadata: AgentMetadata
    regenerator: Regenerator
    events: EventPipeline
    gc: GarbageCollector
    status: StatusReporter
    api: ApiServer


def compose(config: AgentConfig, datapath: Datapath | None = None,
            source: Source | None = None) -> AgentParts:
    config.validate()
    config.state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    kick = threading.Event()       # "regenerate now": store changes, registrations
    lock = threading.RLock()
    health = HealthChecks()
    errors = ErrorHistory()
    store = Store()
    datapath = datapath or make_datapath(config)
    feed = SourceFeed(source or make_source(config), store, stop, health)
    allocator, cidr_allocator = make_allocators(config)
    engine = PolicyEngine(allocator, cidr_allocator, cluster=config.cluster,
                          label_filter=LabelFilter.default().with_excluded(*config.exclude_labels),
                          modes=config.policy_modes, limits=config.policy_limits())
    endpoints = EndpointManager(EndpointRegistry(config.state_dir), datapath, lock, kick, errors)
    metrics = make_metrics(config)
    unmanaged = UnmanagedPods(config.node, store, endpoints.registry, health,
                              config.unmanaged_grace_seconds)
    metadata = AgentMetadata(config.node, allocator, cidr_allocator)
    regenerator = Regenerator(
        node=config.node, store=store, engine=engine, allocators=(allocator, cidr_allocator),
        datapath=datapath, endpoints=endpoints, metadata=metadata, lock=lock, kick=kick,
        stop=stop, errors=errors, health=health,
        shares=PolicyMapShares(config.max_policy_entries, config.namespace_map_share),
        on_regenerated=metrics.agent.observe_regeneration)
    observer = FlowObserver(node=config.node, capacity=config.flow_capacity, meta=metadata,
                            queue_size=config.event_queue_size, listeners=[metrics.hubble],
                            namer=metadata)
    # Flows built after a regeneration say what it changed (labels, policies).
    metadata.on_change = observer.metadata_changed
    status = StatusReporter(
        node=config.node, source_name=feed.name, store=store, endpoints=endpoints,
        regenerator=regenerator, datapath=datapath, observer=observer, identities=allocator,
        health=health, errors=errors, unmanaged=unmanaged)
    metrics.agent.read_gauges(lambda: gauges_from(status))
    servicer = AgentServicer(config.node, EndpointApi(endpoints, unmanaged), metadata,
                             PolicyQueries(regenerator, engine, endpoints, lock), datapath,
                             status)
    tls = (TlsListener(config.observer_listen, config.tls_cert, config.tls_key,
                       config.tls_client_ca, config.tls_client_names)
           if config.observer_listen else None)
    return AgentParts(
        config=config, stop=stop, lock=lock, store=store, feed=feed, datapath=datapath,
        allocator=allocator, cidr_allocator=cidr_allocator, engine=engine, health=health,
        errors=errors, workers=Workers(stop, health, errors), endpoints=endpoints,
        metadata=metadata, regenerator=regenerator,
        events=EventPipeline(datapath, observer, stop, metrics, export_config(config)),
        gc=GarbageCollector(datapath, (allocator, cidr_allocator), lock, stop,
                            conntrack_interval=config.conntrack_gc_interval,
                            identity_interval=config.identity_gc_interval),
        status=status, api=ApiServer(config.socket, servicer, observer, tls,
                                     peers=lambda: node_peers(store, config)))


def make_datapath(config: AgentConfig) -> Datapath:
    # Typed as the Protocol: mypy proves FakeDatapath and BpfDatapath implement it.
    if config.datapath == "fake":
        fake: Datapath = FakeDatapath(node=config.node, max_policy=config.max_policy_entries,
                                      max_conntrack=config.max_conntrack_entries,
                                      max_ipcache=config.max_ipcache_entries,
                                      max_cidr=config.max_cidr_entries)
        return fake
    if config.datapath == "bpf":
        bpf: Datapath = BpfDatapath(node=config.node, pin_dir=config.bpffs,
                                    max_policy=config.max_policy_entries,
                                    max_conntrack=config.max_conntrack_entries,
                                    max_ipcache=config.max_ipcache_entries,
                                    max_cidr=config.max_cidr_entries,
                                    max_endpoints=config.max_endpoints,
                                    ring_pages=config.event_ring_pages,
                                    attach_mode=config.attach_mode)
        return bpf
    raise MembraneError(f"--datapath {config.datapath!r}: expected bpf or fake")


def make_source(config: AgentConfig) -> Source:
    lab_store = config.lab_store
    if lab_store is not None:
        return LabDirSource(lab_store)
    if config.source == "kubernetes":
        # The kubernetes client takes ~0.4 s to import: only when this source is chosen.
        from agent.sources.kubernetes import KubernetesSource

        kubernetes: Source = KubernetesSource(kubeconfig=config.kubeconfig,
                                              node_name=config.node)
        return kubernetes
    raise MembraneError(f"--source {config.source!r}: expected kubernetes or lab:<dir>")


def _read_secret(path: str | None) -> str | None:
    """A secret's text from its file (a mounted Secret's key), without the newline an
    editor or `echo` leaves."""
    if path is None:
        return None
    try:
        return open(path, encoding="utf-8").read().rstrip("\r\n")
    except OSError as err:
        raise MembraneError(f"--etcd-password-file {path}: {err.strerror}") from None


def make_allocators(config: AgentConfig) -> tuple[Allocator, Allocator]:
    """(label identities, CIDR identities). Both persist "on_flush": numbers are written
    once per regeneration, always before any map uses them, instead of an fsync'd
    rewrite per new identity."""
    cidr: Allocator = CidrAllocator(config.state_dir / "cidr-identities", persist="on_flush")
    if config.identity_backend == "crd":
        # The kubernetes client (~0.4 s to import) only for this backend, as for the source.
        from agent.sources.kubernetes import crd_allocator

        return crd_allocator(config.kubeconfig, node=config.node,
                             grace_seconds=config.identity_grace_seconds), cidr
    if config.identity_backend == "etcd":
        # etcd3gw and requests (~0.2 s) only for the etcd backend.
        from identity.etcd import EtcdAccess, EtcdAllocator

        access = EtcdAccess(ca_file=config.etcd_ca_file, cert_file=config.etcd_cert_file,
                            key_file=config.etcd_key_file, user=config.etcd_user,
                            password=_read_secret(config.etcd_password_file))
        etcd: Allocator = EtcdAllocator(list(config.etcd_endpoints), node=config.node,
                                        grace_seconds=config.identity_grace_seconds,
                                        access=access)
        return etcd, cidr
    local: Allocator = LocalAllocator(config.state_dir / "identities",
                                      grace_seconds=config.identity_grace_seconds,
                                      persist="on_flush")
    return local, cidr
