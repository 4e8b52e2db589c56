"""The store: the cluster as the agent knows it, whichever source feeds it.

Sources (the lab's store directory, the Kubernetes watch) call the sink methods; the
agent reads consistent snapshots. Every change bumps `revision`. Nothing is enforced
from a half-known state: `synced` turns true only after a source's initial list.

An object that fails validation costs only itself: every other object stays. Its
Rejection (agent.k8s.rejection) keeps the reason and the last good version, and the
store holds in its place what is enforced instead: a NetworkPolicy's fail-closed
stand-in (the source hands it in beside the rejection), or, for the other kinds, the
last good version. Validation warnings are kept per object until it changes again.
Both reach `membrane policy get` and `membrane status` through the snapshot.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from core.errors import MembraneError
from agent.k8s.objects import (TIER_KINDS, ClusterObject, ClusterObjects, Namespace,
                               NetworkPolicy, Node, Pod, Service, TieredPolicy)
from agent.k8s.rejection import Rejection, describe_in_force
from agent.k8s.validation.fields import ValidationWarning

StoreObject = ClusterObject

KINDS: dict[type, str] = {Namespace: "Namespace", Pod: "Pod", NetworkPolicy: "NetworkPolicy",
                          Service: "Service", Node: "Node"}
# The cluster-wide tier kinds share one table, keyed "Kind/name" (TieredPolicy.key): a
# ClusterNetworkPolicy and a BaselineAdminNetworkPolicy may both be called "default".
KIND_NAMES = frozenset(KINDS.values()) | frozenset(TIER_KINDS)
KIND_TABLES = {"Namespace": "namespaces", "Pod": "pods", "NetworkPolicy": "policies",
               "Service": "services", "Node": "nodes",
               **{kind: "cluster_policies" for kind in TIER_KINDS}}
NETWORK_POLICY = "NetworkPolicy"


def object_key(obj: StoreObject) -> tuple[str, str]:
    """(kind, "ns/name" or "name"; "Kind/name" for the tier kinds)."""
    if isinstance(obj, TieredPolicy):
        return obj.kind, obj.key
    kind = KINDS[type(obj)]
    if isinstance(obj, (Namespace, Node)):
        return kind, obj.name
    return kind, f"{obj.namespace}/{obj.name}"


@dataclass(frozen=True)
class Snapshot:
    revision: int
    objects: ClusterObjects
    source_revision: int = 0         # the source's own counter (lab store revision), if any
    changed_at: float = 0.0          # time.monotonic() of the newest change
    rejected: tuple[Rejection, ...] = ()            # objects validation refused, by key
    synced: bool = False
    warnings: tuple[ValidationWarning, ...] = ()    # about accepted objects, by object


@dataclass
class Store:
    _objects: ClusterObjects = field(default_factory=ClusterObjects)
    _rejected: dict[tuple[str, str], Rejection] = field(default_factory=dict)
    _warnings: dict[tuple[str, str], tuple[ValidationWarning, ...]] = field(
        default_factory=dict)
    _revision: int = 0
    _source_revision: int = 0
    _changed_at: float = 0.0
    _synced: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _listeners: list[Callable[[int], None]] = field(default_factory=list)

    # -- sink side (sources) -------------------------------------------------------
    def replace_all(self, objects: ClusterObjects,
                    rejected: Sequence[MembraneError | Rejection] | None = None,
                    synced: bool = True, source_revision: int | None = None,
                    warnings: Sequence[ValidationWarning] = ()) -> None:
        """Initial list or relist: the whole state, atomically. `objects` holds the
        stand-ins of rejected NetworkPolicies; each rejection keeps the last good
        version the store held under its key."""
        with self._lock:
            if source_revision is not None:
                self._source_revision = source_revision
            new = _copy(objects)
            rejections: dict[tuple[str, str], Rejection] = {}
            for index, item in enumerate(rejected or []):
                rejection = item if isinstance(item, Rejection) else Rejection.of(item, index)
                key = (rejection.kind, rejection.key)
                rejections[key] = self._keep_last_good(rejection, new)
            self._objects, self._rejected = new, rejections
            self._warnings = {}
            for warning in warnings:
                key = (warning.kind, warning.name)
                self._warnings[key] = self._warnings.get(key, ()) + (warning,)
            self._synced = self._synced or synced
            self._bump()

    def upsert(self, obj: StoreObject, warnings: Sequence[ValidationWarning] = ()) -> None:
        with self._lock:
            kind, key = object_key(obj)
            self._put(key, obj)
            self._rejected.pop((kind, key), None)
            self._set_warnings((kind, key), warnings)
            self._bump()

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._remove(kind, key)
            self._rejected.pop((kind, key), None)
            self._warnings.pop((kind, key), None)
            self._bump()

    def reject(self, kind: str, key: str, error: MembraneError,
               stand_in: StoreObject | None = None) -> None:
        """An object the source saw but validation refused. A NetworkPolicy's
        `stand_in` is enforced in its place (none: nothing is); any other kind keeps
        its last good version in force. Either way the last good version is kept in
        the rejection, with the error."""
        with self._lock:
            last_good = self._last_good(kind, key) if kind in KIND_NAMES else None
            if kind == NETWORK_POLICY:
                self._remove(kind, key)   # a stale policy may allow what the new one revokes
            if stand_in is not None:
                self._put(key, stand_in)
            rejection = Rejection(kind, key, str(error), last_good)
            self._rejected[(kind, key)] = self._keep_last_good(rejection, self._objects)
            self._warnings.pop((kind, key), None)
            self._bump()

    def mark_synced(self) -> None:
        with self._lock:
            if not self._synced:
                self._synced = True
                self._bump()

    # -- reader side (agent) -------------------------------------------------------
    @property
    def revision(self) -> int:
        with self._lock:
            return self._revision

    @property
    def synced(self) -> bool:
        """The source's initial list is in (cheap: no snapshot)."""
        with self._lock:
            return self._synced

    @property
    def source_revision(self) -> int:
        with self._lock:
            return self._source_revision

    def networked_pods_on(self, node: str) -> list[Pod]:
        """Pods the source places on `node` that have an address and are not
        hostNetwork: the runtime has networked them (the kubelet reports status.podIP
        only after the CNI chain ran; a finished pod's address is dropped by the loader).
        Cheap: no snapshot. Nothing until synced: a half-known store names nobody."""
        with self._lock:
            if not self._synced:
                return []
            return [pod for pod in self._objects.pods.values()
                    if pod.node_name == node and pod.addresses and not pod.host_network]

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                self._revision, _copy(self._objects), self._source_revision,
                self._changed_at,
                tuple(self._rejected[k] for k in sorted(self._rejected)), self._synced,
                tuple(w for k in sorted(self._warnings) for w in self._warnings[k]))

    def subscribe(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    # -- internals -----------------------------------------------------------------
    def _last_good(self, kind: str, key: str) -> StoreObject | None:
        """The newest accepted version of (kind, key): the one held now unless it is a
        stand-in, else the one an earlier rejection kept."""
        held = _table(self._objects, kind).get(key)
        if held is not None and not _is_stand_in(held):
            return held
        earlier = self._rejected.get((kind, key))
        return earlier.last_good if earlier is not None else None

    def _keep_last_good(self, rejection: Rejection, objects: ClusterObjects) -> Rejection:
        """The rejection with its last good version, that version put back into
        `objects` for every kind but NetworkPolicy, and what is in force in words."""
        kind, key = rejection.kind, rejection.key
        last_good = rejection.last_good or (self._last_good(kind, key) if kind in KIND_NAMES
                                            else None)
        table = _table(objects, kind) if kind in KIND_NAMES else {}
        if last_good is not None and kind != NETWORK_POLICY and key not in table:
            table[key] = last_good
        return replace(rejection, last_good=last_good,
                       in_force=describe_in_force(kind, table.get(key), last_good))

    def _set_warnings(self, key: tuple[str, str],
                      warnings: Sequence[ValidationWarning]) -> None:
        if warnings:
            self._warnings[key] = tuple(warnings)
        else:
            self._warnings.pop(key, None)

    def _put(self, key: str, obj: StoreObject) -> None:
        _table(self._objects, object_key(obj)[0])[key] = obj

    def _remove(self, kind: str, key: str) -> None:
        if kind not in KIND_NAMES:
            raise KeyError(f"store: no kind {kind!r}")
        _table(self._objects, kind).pop(key, None)

    def _bump(self) -> None:
        self._revision += 1
        self._changed_at = time.monotonic()
        self._lock.notify_all()
        for listener in self._listeners:
            listener(self._revision)


def _table(objects: ClusterObjects, kind: str) -> dict[str, StoreObject]:
    """The table of `kind` ("Pod" -> objects.pods). Each table holds its kind only:
    callers put an object under its own kind (object_key)."""
    table: dict[str, StoreObject] = getattr(objects, KIND_TABLES[kind])
    return table


def _is_stand_in(obj: StoreObject) -> bool:
    return isinstance(obj, NetworkPolicy) and bool(obj.fail_closed)


def _copy(objects: ClusterObjects) -> ClusterObjects:
    return replace(objects, namespaces=dict(objects.namespaces), pods=dict(objects.pods),
                   policies=dict(objects.policies), services=dict(objects.services),
                   nodes=dict(objects.nodes), cluster_policies=dict(objects.cluster_policies))
