"""The store: the cluster as the agent knows it, whichever source feeds it.

Sources (the lab's store directory, the Kubernetes watch) call the sink methods; the
agent reads consistent snapshots. Every change bumps `revision`. Nothing is enforced
from a half-known state: `synced` turns true only after a source's initial list.
Objects that fail validation are kept out, with their error, so one bad object never
stops the others.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from core.errors import InvalidObject, MembraneError
from agent.k8s.objects import (TIER_KINDS, ClusterObject, ClusterObjects, Namespace,
                               NetworkPolicy, Node, Pod, Service, TieredPolicy)

StoreObject = ClusterObject

KINDS: dict[type, str] = {Namespace: "Namespace", Pod: "Pod", NetworkPolicy: "NetworkPolicy",
                          Service: "Service", Node: "Node"}


def object_key(obj: StoreObject) -> tuple[str, str]:
    """(kind, "ns/name" or "name")."""
    if isinstance(obj, TieredPolicy):
        return obj.kind, obj.name        # cluster-scoped, kind by API
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
    rejected: tuple[str, ...] = ()   # messages of objects validation refused
    synced: bool = False


@dataclass
class Store:
    _objects: ClusterObjects = field(default_factory=ClusterObjects)
    _rejected: dict[tuple[str, str], str] = field(default_factory=dict)
    _revision: int = 0
    _source_revision: int = 0
    _changed_at: float = 0.0
    _synced: bool = False
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _listeners: list[Callable[[int], None]] = field(default_factory=list)

    # -- sink side (sources) -------------------------------------------------------
    def replace_all(self, objects: ClusterObjects, rejected: list[MembraneError] | None = None,
                    synced: bool = True, source_revision: int | None = None) -> None:
        """Initial list or relist: the whole state, atomically."""
        with self._lock:
            if source_revision is not None:
                self._source_revision = source_revision
            self._objects = _copy(objects)
            self._rejected = {_error_key(e, i): str(e) for i, e in enumerate(rejected or [])}
            self._synced = self._synced or synced
            self._bump()

    def upsert(self, obj: StoreObject) -> None:
        with self._lock:
            kind, key = object_key(obj)
            self._put(key, obj)
            self._rejected.pop((kind, key), None)
            self._bump()

    def delete(self, kind: str, key: str) -> None:
        with self._lock:
            self._remove(kind, key)
            self._rejected.pop((kind, key), None)
            self._bump()

    def reject(self, kind: str, key: str, error: MembraneError) -> None:
        """An object the source saw but validation refused: the previous version is
        dropped too (enforcing a stale policy would be silent), and the error is kept."""
        with self._lock:
            self._remove(kind, key)
            self._rejected[(kind, key)] = str(error)
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

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(self._revision, _copy(self._objects), self._source_revision,
                            self._changed_at,
                            tuple(sorted(self._rejected.values())), self._synced)

    def subscribe(self, listener: Callable[[int], None]) -> None:
        self._listeners.append(listener)

    # -- internals -----------------------------------------------------------------
    def _put(self, key: str, obj: StoreObject) -> None:
        objects = self._objects
        match obj:
            case Namespace():
                objects.namespaces[key] = obj
            case Pod():
                objects.pods[key] = obj
            case NetworkPolicy():
                objects.policies[key] = obj
            case Service():
                objects.services[key] = obj
            case Node():
                objects.nodes[key] = obj
            case TieredPolicy():
                objects.cluster_policies[obj.key] = obj

    def _remove(self, kind: str, key: str) -> None:
        objects = self._objects
        match kind:
            case "Namespace":
                objects.namespaces.pop(key, None)
            case "Pod":
                objects.pods.pop(key, None)
            case "NetworkPolicy":
                objects.policies.pop(key, None)
            case "Service":
                objects.services.pop(key, None)
            case "Node":
                objects.nodes.pop(key, None)
            case kind if kind in TIER_KINDS:
                objects.cluster_policies.pop(f"{kind}/{key}", None)
            case _:
                raise KeyError(f"store: no kind {kind!r}")

    def _bump(self) -> None:
        self._revision += 1
        self._changed_at = time.monotonic()
        self._lock.notify_all()
        for listener in self._listeners:
            listener(self._revision)


def _error_key(error: MembraneError, index: int) -> tuple[str, str]:
    """Rejections are keyed like objects, so a fixed object's upsert clears its error."""
    if isinstance(error, InvalidObject):
        return error.kind, error.name
    return "?", str(index)


def _copy(objects: ClusterObjects) -> ClusterObjects:
    return replace(objects, namespaces=dict(objects.namespaces), pods=dict(objects.pods),
                   policies=dict(objects.policies), services=dict(objects.services),
                   nodes=dict(objects.nodes), cluster_policies=dict(objects.cluster_policies))
