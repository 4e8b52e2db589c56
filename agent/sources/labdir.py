"""The lab's API server stand-in: a directory holding the cluster's objects.

`lab apply/delete/label` write it (LabStoreDir); each node's agent follows it
(LabDirSource), as an agent follows the Kubernetes API. Layout:

    <dir>/objects.json   {"revision": N, "objects": [<Kubernetes JSON documents>]}
    <dir>/lock           flock'd by writers for read-modify-write

Writes are atomic (temporary file + rename), so a reader never sees half a state.
Documents are re-validated by the agent: the same path as objects from a cluster. A
document that fails (edited by hand, say) is rejected alone, with its stand-in if it is
a NetworkPolicy; its warnings and rejection reach the store beside the objects, and
each is logged once, when it first appears.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


from agent.k8s.loader import CLUSTER_SCOPED_KINDS, objects_from_documents
from agent.k8s.objects import ClusterObjects
from agent.k8s.validation.fields import ValidationWarning
from core.errors import MembraneError
from agent.store import Store

log = logging.getLogger(__name__)

Doc = dict[str, Any]


def doc_key(doc: Doc) -> tuple[str, str, str]:
    meta = doc.get("metadata") or {}
    kind = str(doc.get("kind", ""))
    ns = "" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or "default")
    return kind, ns, str(meta.get("name", ""))


class LabStoreDir:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.file = self.path / "objects.json"

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if not self.file.exists():
            self._write(0, [])

    def read(self) -> tuple[int, list[Doc]]:
        try:
            data = json.loads(self.file.read_text())
        except FileNotFoundError:
            return 0, []
        return int(data["revision"]), list(data["objects"])

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _write(self, revision: int, docs: list[Doc]) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"revision": revision, "objects": docs}, indent=1))
        os.replace(tmp, self.file)

    def update(self, change: Callable[[list[Doc]], list[Doc]]) -> int:
        """Applies change to the documents under the lock; returns the new revision."""
        with self._locked():
            revision, docs = self.read()
            docs = change(docs)
            self._write(revision + 1, docs)
            return revision + 1

    def apply(self, new_docs: list[Doc]) -> int:
        """Creates or replaces documents by (kind, namespace, name)."""
        def change(docs: list[Doc]) -> list[Doc]:
            index = {doc_key(d): i for i, d in enumerate(docs)}
            for doc in new_docs:
                k = doc_key(doc)
                if k in index:
                    docs[index[k]] = doc
                else:
                    index[k] = len(docs)
                    docs.append(doc)
            return docs
        return self.update(change)

    def delete(self, keys: list[tuple[str, str, str]]) -> int:
        gone = set(keys)
        return self.update(lambda docs: [d for d in docs if doc_key(d) not in gone])


class LabDirSource:
    """Follows a LabStoreDir by polling its revision (cheap: one stat per tick)."""

    def __init__(self, path: str | Path, poll_interval: float = 0.05) -> None:
        self.dir = LabStoreDir(path)
        self.name = f"lab:{self.dir.path}"
        self.poll_interval = poll_interval

    def load(self) -> tuple[int, ClusterObjects, list[MembraneError], list[ValidationWarning]]:
        revision, docs = self.dir.read()
        warnings: list[ValidationWarning] = []
        objects, errors = objects_from_documents(docs, source=str(self.dir.file),
                                                 warnings=warnings)
        return revision, objects, errors, warnings

    def run(self, store: Store, stop: threading.Event) -> None:
        seen_mtime = -1
        logged: set[str] = set()
        while not stop.is_set():
            try:
                mtime = self.dir.file.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if mtime != seen_mtime:
                seen_mtime = mtime
                revision, objects, errors, warnings = self.load()
                logged = _log_new(errors, warnings, logged)
                store.replace_all(objects, errors, synced=True, source_revision=revision,
                                  warnings=warnings)
            stop.wait(self.poll_interval)


def _log_new(errors: list[MembraneError], warnings: list[ValidationWarning],
             logged: set[str]) -> set[str]:
    """Logs what was not there at the last read (the whole store is re-read on every
    change); returns what is there now."""
    now = {f"rejected {e}" for e in errors} | {f"warning: {w}" for w in warnings}
    for message in sorted(now - logged):
        log.warning("lab store: %s", message)
    return now
