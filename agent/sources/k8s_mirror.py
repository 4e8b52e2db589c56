"""What the Kubernetes source knows, per kind, and how it reaches the store.

Before every kind has been listed once, nothing reaches the store: enforcing from a
half-known cluster (policies without their pods, pods without their namespaces) would
drop or allow traffic by accident. Changes seen meanwhile update the mirror only. When
the last initial list arrives the store gets the whole mirror in one replace_all
(synced). After that, each event is one upsert/delete/reject, and a relist of one kind
(after 410 Gone) replaces the store's state, again in one replace_all, so objects
deleted while the watch was away disappear and nothing is applied twice.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Iterable

from core.errors import InvalidObject, MembraneError
from agent.k8s.loader import add_object, parse_document
from agent.k8s.objects import ClusterObjects
from agent.store import Store, StoreObject, object_key

log = logging.getLogger(__name__)

Doc = dict[str, Any]
Parsed = tuple[StoreObject, ...] | MembraneError

NAMESPACED = {"Pod", "NetworkPolicy", "Service"}


def doc_key(kind: str, doc: Doc) -> str:
    """The store's key for a document: "ns/name" or "name"."""
    meta = doc.get("metadata") or {}
    name = str(meta.get("name", ""))
    return f"{meta.get('namespace') or 'default'}/{name}" if kind in NAMESPACED else name


def parse(kind: str, doc: Doc) -> Parsed:
    """The loader's verdict on one document; never raises."""
    rv = (doc.get("metadata") or {}).get("resourceVersion", "?")
    try:
        return tuple(parse_document(doc, source=f"kubernetes API, resourceVersion {rv}"))
    except MembraneError as e:
        return e
    except Exception as e:  # noqa: BLE001 (a loader bug must cost one object, not the watch)
        log.exception("kubernetes: could not parse %s %s", kind, doc_key(kind, doc))
        return InvalidObject(kind, doc_key(kind, doc), "(document)", f"could not be read: {e}")


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
        self._rejected: dict[str, dict[str, MembraneError]] = {k: {} for k in kinds}

    # -- Sink --------------------------------------------------------------------------
    def listed(self, kind: str, docs: list[Doc]) -> None:
        parsed = {doc_key(kind, d): parse(kind, d) for d in docs}
        with self._lock:
            self._objects[kind] = {k: p for k, p in parsed.items()
                                   if not isinstance(p, MembraneError)}
            self._rejected[kind] = {k: p for k, p in parsed.items()
                                    if isinstance(p, MembraneError)}
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
        result: Parsed = () if event_type == "DELETED" else parse(kind, doc)
        with self._lock:
            old = self._objects[kind].pop(key, ())
            was_rejected = self._rejected[kind].pop(key, None) is not None
            if isinstance(result, MembraneError):
                self._rejected[kind][key] = result
                log.warning("kubernetes: rejected %s", result)
            elif result:
                self._objects[kind][key] = result
            if self._listed >= self.kinds:
                self._apply(kind, key, old, was_rejected, result)

    # -- internals -----------------------------------------------------------------------
    def _apply(self, kind: str, key: str, old: tuple[StoreObject, ...], was_rejected: bool,
               result: Parsed) -> None:
        if isinstance(result, MembraneError):
            for obj in old:
                if object_key(obj) != (kind, key):
                    self.store.delete(*object_key(obj))
            self.store.reject(kind, key, result)  # drops the previous version too
            return
        new_keys = {object_key(obj) for obj in result}
        for obj in old:
            if object_key(obj) not in new_keys:
                self.store.delete(*object_key(obj))
        if (kind, key) not in new_keys and was_rejected:
            self.store.delete(kind, key)  # forgets the rejection message
        for obj in result:
            self.store.upsert(obj)

    def _publish(self) -> None:
        """The whole mirror into the store at once. Rejections are re-recorded one by
        one: replace_all would file them under anonymous keys that a later fix of the
        object could not clear."""
        objects = ClusterObjects()
        for by_key in self._objects.values():
            for parsed in by_key.values():
                for obj in parsed:
                    add_object(objects, obj)
        self.store.replace_all(objects, None, synced=True)
        for kind, errors in self._rejected.items():
            for key, error in errors.items():
                self.store.reject(kind, key, error)

    def _counts(self) -> str:
        with self._lock:
            return ", ".join(f"{sum(len(p) for p in self._objects[k].values())} {k}s"
                             f" ({len(self._rejected[k])} rejected)"
                             for k in sorted(self.kinds))
