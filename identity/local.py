"""The local identity allocator: one node, label identities from 256 in a state directory.

The numbers live in `<state_dir>/identities.json`, a `identity.table.NumberTable`: written
atomically, reloaded on start so a restarted agent gives every label set the number the
pinned BPF maps hold, and written either inside every change (`persist="immediate"`) or
by `flush()` (`persist="on_flush"`, which the agent uses: it flushes after each engine
update and before it writes the datapath). identity/table.py states the contract.
"""

from __future__ import annotations

import time
from pathlib import Path

from identity.allocator import Allocator, Identity, LabelAllocator
from identity.gc import Clock
from identity.labels import LabelSet
from identity.reserved import MAX_LABEL_IDENTITY, MIN_LABEL_IDENTITY
from identity.table import NumberTable, TableAllocator

STATE_FILE = "identities.json"


class LocalAllocator(LabelAllocator, TableAllocator):
    """The Allocator for one node: label identities from 256, kept in `state_dir`.

    `state_dir=None` keeps everything in memory (for `membrane identity list -f`).
    `persist`: "immediate" (default) writes the state file inside allocate and
    collect_garbage; "on_flush" writes it only in flush() (and close()), which the
    caller must call before using new numbers in the pinned maps.
    """

    def __init__(self, state_dir: Path | None, grace_seconds: float = 300.0,
                 clock: Clock = time.monotonic, *,
                 max_identity: int = MAX_LABEL_IDENTITY, persist: str = "immediate") -> None:
        state_file = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self._table = NumberTable(state_file, MIN_LABEL_IDENTITY, max_identity,
                                  "label identity", grace_seconds, clock, persist)

    def _allocate(self, labels: LabelSet) -> Identity:
        return self._table.allocate(labels)

    def _release(self, identity: Identity) -> None:
        self._table.release(identity)

    def _lookup(self, identity_id: int) -> Identity | None:
        return self._table.lookup(identity_id)

    def _lookup_labels(self, labels: LabelSet) -> Identity | None:
        return self._table.lookup_labels(labels)


_IS_AN_ALLOCATOR: type[Allocator] = LocalAllocator   # mypy checks the Protocol here
