"""What the Kubernetes source knows, per kind, and how it reaches the store.

Before every kind has been listed once, nothing reaches the store: enforcing from a
half-known cluster (policies without their pods, pods without their namespaces) would
drop or allow traffic by accident. Changes seen meanwhile update the mirror only. When
the last initial list arrives the store gets the whole mirror in one replace_all
(synced). After that, each event is one upsert/delete/reject, and a relist of one kind
(after 410 Gone) replaces the store's state, again in one replace_all, so objects
deleted while the watch was away disappear and nothing is applied twice.

A document validation refuses goes to the store as a rejection with what stands in its
place (a NetworkPolicy's fail-closed stand-in, from the loader); the store keeps the
last good version. Validation warnings travel with each object (and are logged once,
when its event or list arrives).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterable

from core.errors import InvalidObject, MembraneError
from agent.k8s.loader import parse_document, stand_in_for
from agent.k8s.objects import TIER_KINDS, ClusterObjects
from agent.k8s.rejection import Rejection
from agent.k8s.validation.fields import ValidationWarning, printable
from agent.store import Store, StoreObject, object_key

log = logging.getLogger(__name__)

Doc = dict[str, Any]
Parsed = tuple[StoreObject, ...] | MembraneError

NAMESPACED = {"Pod", "NetworkPolicy", "Service"}
_FIELDS = {"Namespace": "namespaces", "Pod": "pods", "NetworkPolicy": "policies",
           "Service": "services", "Node": "nodes",
           **{kind: "cluster_policies" for kind in TIER_KINDS}}


def doc_key(kind: str, doc: Doc) -> str:
    """The store's key for a document: "ns/name", "name", or "Kind/name" for the
    cluster-wide tier kinds (they share one table: agent.store)."""
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    if kind in TIER_KINDS:
        return f"{kind}/{name}"
    return f"{meta.get('namespace') or 'default'}/{name}" if kind in NAMESPACED else name


def source_of(doc: Doc) -> str:
    rv = (doc.get("metadata") or {}).get("resourceVersion", "?")
    return printable(f"kubernetes API, resourceVersion {rv}")


def parse(kind: str, doc: Doc, warnings: list[ValidationWarning] | None = None) -> Parsed:
    """The loader's verdict on one document; never raises. Its warnings go to
    `warnings` (logged when None)."""
    try:
        return tuple(parse_document(doc, source=source_of(doc), warnings=warnings))
    except MembraneError as e:
        return e
    except Exception as e:  # noqa: BLE001 (a loader bug must cost one object, not the watch)
        name = printable(doc_key(kind, doc))   # from the document: one line in the log
        log.exception("kubernetes: could not parse %s %s", kind, name)
        return InvalidObject(kind, name, "(document)", printable(f"could not be read: {e}"))


@dataclass(frozen=True)
class Accepted:
    objects: tuple[StoreObject, ...]       # usually one
    warnings: tuple[ValidationWarning, ...]


@dataclass(frozen=True)
class Refused:
    error: MembraneError
    stand_in: StoreObject | None           # enforced in its place (NetworkPolicy only)


def read(kind: str, doc: Doc) -> Accepted | Refused:
    """parse() with its warnings and, for a rejected document, its stand-in; warnings
    and rejections are logged here, once per event or list."""
    warnings: list[ValidationWarning] = []
    result = parse(kind, doc, warnings)
    for warning in warnings:
        log.warning("kubernetes: warning: %s", warning)
    if isinstance(result, MembraneError):
        log.warning("kubernetes: rejected %s", result)
        return Refused(result, stand_in_for(doc, source_of(doc), result))
    return Accepted(result, tuple(warnings))


class Mirror:
    """The source's sink (see k8s_watch.Sink); thread-safe, one per source."""

    def __init__(self, store: Store, kinds: Iterable[str],
                 synced: threading.Event | None = None) -> None:
        self.store = store
        self.kinds = frozenset(kinds)
        self.synced = synced or threading.Event()  # set after the first publish
        self._lock = threading.Lock()  # orders store writes across the kinds' threads
        self._listed: set[str] = set()
        # kind -> document key -> what it parsed into (usually one object)
        self._objects: dict[str, dict[str, tuple[StoreObject, ...]]] = {k: {} for k in kinds}
        self._rejected: dict[str, dict[str, Refused]] = {k: {} for k in kinds}
        self._warnings: dict[str, dict[str, tuple[ValidationWarning, ...]]] = {
            k: {} for k in kinds}

    # -- Sink --------------------------------------------------------------------------
    def listed(self, kind: str, docs: list[Doc]) -> None:
        parsed = {doc_key(kind, d): read(kind, d) for d in docs}
        with self._lock:
            self._objects[kind] = {k: p.objects for k, p in parsed.items()
                                   if isinstance(p, Accepted)}
            self._rejected[kind] = {k: p for k, p in parsed.items() if isinstance(p, Refused)}
            self._warnings[kind] = {k: p.warnings for k, p in parsed.items()
                                    if isinstance(p, Accepted) and p.warnings}
            self._listed.add(kind)
            if not self.kinds <= self._listed:
                log.info("kubernetes: %s listed; waiting for %s before enforcing", kind,
                         ", ".join(sorted(self.kinds - self._listed)))
                return
            self._publish()
        if not self.synced.is_set():
            log.info("kubernetes: initial sync complete (%s)", self._counts())
            self.synced.set()

    def changed(self, kind: str, event_type: str, doc: Doc) -> None:
        key = doc_key(kind, doc)
        result: Accepted | Refused = (Accepted((), ()) if event_type == "DELETED"
                                      else read(kind, doc))
        with self._lock:
            old = self._objects[kind].pop(key, ())
            was_rejected = self._rejected[kind].pop(key, None) is not None
            self._warnings[kind].pop(key, None)
            if isinstance(result, Refused):
                self._rejected[kind][key] = result
            elif result.objects:
                self._objects[kind][key] = result.objects
                if result.warnings:
                    self._warnings[kind][key] = result.warnings
            if self._listed >= self.kinds:
                self._apply(kind, key, old, was_rejected, result)

    # -- internals -----------------------------------------------------------------------
    def _apply(self, kind: str, key: str, old: tuple[StoreObject, ...], was_rejected: bool,
               result: Accepted | Refused) -> None:
        if isinstance(result, Refused):
            for obj in old:
                if object_key(obj) != (kind, key):
                    self.store.delete(*object_key(obj))
            # The store keeps the last good version and enforces the stand-in.
            self.store.reject(kind, key, result.error, result.stand_in)
            return
        new_keys = {object_key(obj) for obj in result.objects}
        for obj in old:
            if object_key(obj) not in new_keys:
                self.store.delete(*object_key(obj))
        if (kind, key) not in new_keys and was_rejected:
            self.store.delete(kind, key)  # forgets the rejection and its stand-in
        for obj in result.objects:
            warnings = result.warnings if object_key(obj) == (kind, key) else ()
            self.store.upsert(obj, warnings)

    def _publish(self) -> None:
        """The whole mirror into the store at once: objects, the stand-ins of rejected
        policies, the rejections keyed by document, the warnings."""
        objects = ClusterObjects()
        rejections: list[Rejection] = []
        for kind, by_key in self._objects.items():
            table = getattr(objects, _FIELDS[kind])
            for parsed in by_key.values():
                for obj in parsed:
                    table[object_key(obj)[1]] = obj
        for kind, refused in self._rejected.items():
            for key, why in refused.items():
                rejections.append(Rejection(kind, key, str(why.error)))
                if why.stand_in is not None:
                    getattr(objects, _FIELDS[kind])[key] = why.stand_in
        warnings = [w for by_key in self._warnings.values() for ws in by_key.values()
                    for w in ws]
        self.store.replace_all(objects, rejections, synced=True, warnings=warnings)

    def _counts(self) -> str:
        with self._lock:
            return ", ".join(f"{sum(len(p) for p in self._objects[k].values())} {k}s"
                             f" ({len(self._rejected[k])} rejected)"
                             for k in sorted(self.kinds))
