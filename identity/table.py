"""A numbered table of label sets, kept in a state file: what the node-local allocators
(`identity.local`, `identity.cidr`) are made of.

Numbers are handed out lowest-free-first within [first, last]; a number becomes free
again only when `collect_garbage` frees its identity after the grace period. The table
(number <-> label set, not the reference counts, which belong to the running process) is
written as JSON with tmp + fsync + rename, so a crash leaves either the old file or the
new one, and a restarted agent gives every label set the number it had: the pinned BPF
maps still hold those numbers. After a restart every loaded identity is unreferenced
until the agent allocates it again, so the grace period protects it while the agent
catches up. A lock file keeps a second process off the same table.

When the table is written: `persist="immediate"` (the default) writes it inside every
allocate that adds a number and every collect_garbage that frees some, so a number is
on disk before allocate returns it. That is one whole-file write + fsync per new
identity, O(I^2) for an initial list of I identities (1,103 identities: 8.8 s).
`persist="on_flush"` only marks the table dirty; `flush()` writes it once. The caller
must then call flush() after a batch of allocations and *before* any of the new numbers
is used where it outlives the process (the pinned BPF maps): the agent flushes after
each engine.update and before it writes the datapath.
"""

from __future__ import annotations

import fcntl
import heapq
import json
import os
import threading
from pathlib import Path
from typing import IO, Self

from core.errors import AllocationError
from identity.allocator import Identity
from identity.gc import Clock, RefTable
from identity.labels import LabelSet, decode_labels, encode_labels

FORMAT_VERSION = 1
PERSIST_MODES = ("immediate", "on_flush")


def write_atomically(path: Path, data: bytes) -> None:
    """Replaces path with data so that a crash leaves either the old or the new content."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The rename itself is only durable once the directory entry is on disk.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class NumberTable:
    """Label sets <-> numbers in [first, last], lowest free first, optionally persisted.

    Thread-safe: one lock covers the table, the reference counts and the file, so the file
    always matches a state the table really had.

    persist: "immediate" writes the file on every change of the table; "on_flush" marks
    it dirty and `flush()` writes it (see the module docstring for when to call it).
    """

    def __init__(self, state_file: Path | None, first: int, last: int, what: str,
                 grace_seconds: float, clock: Clock, persist: str = "immediate") -> None:
        if persist not in PERSIST_MODES:
            raise ValueError(f"persist must be one of {PERSIST_MODES}, not {persist!r}")
        self._file = state_file
        self._persist_mode = persist
        self._dirty = False                 # the table changed since the file was written
        self._first = first
        self._last = last
        self._what = what                   # "label identity", "CIDR identity": for messages
        self._lock = threading.RLock()
        self._refs: RefTable[int] = RefTable(grace_seconds, clock)
        self._by_id: dict[int, LabelSet] = {}
        self._by_key: dict[str, int] = {}
        self._next = first                  # one past the highest number ever in the table
        self._freed: list[int] = []         # heap of numbers below _next that are free
        self._lock_file: IO[bytes] | None = None
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            self._lock_file = self._take_lock(state_file)
            self._load(state_file)

    # -- persistence ------------------------------------------------------------------
    @staticmethod
    def _take_lock(state_file: Path) -> IO[bytes]:
        # Two agents writing one table would hand out one number twice.
        lock_path = state_file.with_name(state_file.name + ".lock")
        handle = open(lock_path, "ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AllocationError(f"{state_file}: identity state is in use by another process "
                                  "(another agent on this node?); stop it or use another "
                                  "state directory") from None
        return handle

    def _load(self, state_file: Path) -> None:
        if not state_file.exists():
            return
        try:
            doc = json.loads(state_file.read_text())
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"unknown format version {doc.get('version')!r}")
            entries = [(int(e["id"]), decode_labels(e["labels"])) for e in doc["identities"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise AllocationError(f"{state_file}: identity state cannot be read ({err}); move it "
                                  "away to start afresh (pods then get new numbers)") from None
        for number, labels in entries:
            if not self._first <= number <= self._last or labels.key() in self._by_key:
                raise AllocationError(f"{state_file}: {self._what} {number} ({labels.key()!r}) "
                                      "is out of range or duplicated; the file was edited or "
                                      "corrupted: move it away to start afresh")
            self._by_id[number] = labels
            self._by_key[labels.key()] = number
            self._refs.track_unused(number)
        if self._by_id:
            self._next = max(self._by_id) + 1
            self._freed = [n for n in range(self._first, self._next) if n not in self._by_id]
            heapq.heapify(self._freed)

    def _persist(self) -> None:
        if self._file is None:
            return
        # One identity per line: small diffs, and readable with `less` on a node.
        entries = ",\n  ".join(json.dumps({"id": n, "labels": encode_labels(labels)})
                               for n, labels in sorted(self._by_id.items()))
        text = f'{{"version": {FORMAT_VERSION}, "identities": [\n  {entries}\n]}}\n'
        write_atomically(self._file, text.encode())

    # -- the table ----------------------------------------------------------------------
    def _free_number(self) -> int:
        if self._freed:
            return heapq.heappop(self._freed)
        if self._next > self._last:
            raise AllocationError(
                f"no free {self._what}: all {self._last - self._first + 1} numbers from "
                f"{self._first} to {self._last} are in use or within their grace period; "
                "release unused ones (collect_garbage) or shorten the grace period")
        number = self._next
        self._next += 1
        return number

    def _changed(self) -> bool:
        """Marks the table changed; True when the caller must write the file now."""
        self._dirty = self._file is not None
        return self._dirty and self._persist_mode == "immediate"

    def flush(self) -> None:
        """Writes the table if it changed since the last write (atomically, fsync): after
        it returns, every number handed out so far survives a crash or restart."""
        with self._lock:
            if not self._dirty:
                return
            try:
                self._persist()
            except OSError as err:
                # Still dirty: the next flush tries again. The caller must not use the
                # new numbers anywhere that outlives this process until one succeeds.
                raise AllocationError(f"{self._file}: cannot save {self._what} table: "
                                      f"{err}") from None
            self._dirty = False

    @property
    def dirty(self) -> bool:
        """Whether the table holds changes the file does not (flush() writes them)."""
        with self._lock:
            return self._dirty

    def allocate(self, labels: LabelSet) -> Identity:
        with self._lock:
            number = self._by_key.get(labels.key())
            if number is None:
                number = self._free_number()
                self._by_id[number] = labels
                self._by_key[labels.key()] = number
                was_dirty = self._dirty
                if self._changed():   # immediate: on disk before the caller sees it
                    try:
                        self._persist()
                        self._dirty = False
                    except OSError as err:
                        del self._by_id[number], self._by_key[labels.key()]
                        heapq.heappush(self._freed, number)
                        self._dirty = was_dirty
                        raise AllocationError(f"{self._file}: cannot save {self._what} "
                                              f"{number} for {labels.key()!r}: {err}") from None
            self._refs.take(number)
            return Identity(number, self._by_id[number])

    def release(self, identity: Identity) -> None:
        with self._lock:
            if self._by_id.get(identity.id) != identity.labels:
                raise AllocationError(f"{self._what} {identity.id} ({identity.labels.key()!r}) "
                                      "is not allocated here: released twice or never allocated")
            try:
                self._refs.drop(identity.id)
            except KeyError:
                raise AllocationError(f"{self._what} {identity.id}: released more often than "
                                      "allocated") from None

    def lookup(self, number: int) -> Identity | None:
        with self._lock:
            labels = self._by_id.get(number)
            return Identity(number, labels) if labels is not None else None

    def lookup_labels(self, labels: LabelSet) -> Identity | None:
        with self._lock:
            number = self._by_key.get(labels.key())
            return Identity(number, self._by_id[number]) if number is not None else None

    def identities(self) -> list[Identity]:
        with self._lock:
            return [Identity(n, labels) for n, labels in sorted(self._by_id.items())]

    def references(self, number: int) -> int:
        return self._refs.count(number)

    def collect_garbage(self) -> list[Identity]:
        with self._lock:
            freed = []
            for number in sorted(self._refs.expired()):
                labels = self._by_id.pop(number)
                del self._by_key[labels.key()]
                self._refs.forget(number)
                heapq.heappush(self._freed, number)
                freed.append(Identity(number, labels))
            if freed and self._changed():
                try:
                    self._persist()
                    self._dirty = False
                except OSError as err:
                    # The numbers stay free in memory and the table dirty: the next write
                    # (or flush) catches the file up.
                    raise AllocationError(f"{self._file}: cannot save freed identities: "
                                          f"{err}") from None
            return freed

    def close(self) -> None:
        """Writes pending changes (on_flush), then lets go of the state file's lock."""
        with self._lock:
            try:
                if self._lock_file is not None:
                    self.flush()
            finally:
                if self._lock_file is not None:
                    self._lock_file.close()
                    self._lock_file = None


class TableAllocator:
    """What the local and CIDR allocators share: the Allocator protocol's bookkeeping
    (identities, references, garbage collection, flush, close) over a NumberTable. The
    subclasses decide which label sets they number, and how."""

    _table: NumberTable

    def identities(self) -> list[Identity]:
        """Allocated identities (referenced or in grace); reserved ones are in reserved.py."""
        return self._table.identities()

    def references(self, identity_id: int) -> int:
        """References this process holds (0 while in grace)."""
        return self._table.references(identity_id)

    def collect_garbage(self) -> list[Identity]:
        return self._table.collect_garbage()

    def flush(self) -> None:
        """Writes the state file if anything changed since the last write (on_flush mode;
        in immediate mode it only retries a write that failed in collect_garbage)."""
        self._table.flush()

    @property
    def dirty(self) -> bool:
        return self._table.dirty

    def close(self) -> None:
        self._table.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
