"""Node-local identities for ipBlock prefixes (`cidr:10.0.0.0/24`, `cidr:fd00--0/8`), from
1<<24.

They never leave the node: the resolver allows a CIDR identity per (except-free) prefix
and the datapath finds it with an LPM lookup on the peer address. They live in pinned BPF
maps, so with a `state_dir` the numbers survive an agent restart just like label
identities do.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import AllocationError
from identity.allocator import Allocator, Identity
from identity.gc import Clock
from identity.labels import SOURCE_CIDR, LabelSet
from identity.reserved import MAX_CIDR_IDENTITY, MIN_CIDR_IDENTITY
from identity.security import cidr_labels
from identity.table import NumberTable, TableAllocator

STATE_FILE = "cidr-identities.json"


class CidrAllocator(TableAllocator):
    """The Allocator protocol for CIDR label sets, plus `allocate_prefix("10.0.0.0/24")`."""

    def __init__(self, state_dir: Path | None = None, grace_seconds: float = 300.0,
                 clock: Clock = time.monotonic, *,
                 max_identity: int = MAX_CIDR_IDENTITY, persist: str = "immediate") -> None:
        """persist: "immediate" (default) or "on_flush", as for LocalAllocator: with
        "on_flush" the state file is written only by flush() (and close())."""
        state_file = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self._table = NumberTable(state_file, MIN_CIDR_IDENTITY, max_identity,
                                  "CIDR identity", grace_seconds, clock, persist)

    def allocate_prefix(self, prefix: str) -> Identity:
        try:
            labels = cidr_labels(prefix)
        except ValueError as err:
            raise AllocationError(f"ipBlock {prefix!r}: not an IP prefix: {err}") from None
        return self._table.allocate(labels)

    def lookup_prefix(self, prefix: str) -> Identity | None:
        try:
            return self._table.lookup_labels(cidr_labels(prefix))
        except ValueError:
            return None

    def allocate(self, labels: LabelSet) -> Identity:
        # Normalised through cidr_labels so "10.0.0.1/24" and "10.0.0.0/24" share a number.
        if len(labels) != 1 or next(iter(labels)).source != SOURCE_CIDR:
            raise AllocationError(f"labels {labels.key()!r}: a CIDR identity has exactly one "
                                  "cidr: label; pod labels go to the label allocator")
        return self.allocate_prefix(next(iter(labels)).key)

    def release(self, identity: Identity) -> None:
        self._table.release(identity)

    def lookup(self, identity_id: int) -> Identity | None:
        return self._table.lookup(identity_id)

    def lookup_labels(self, labels: LabelSet) -> Identity | None:
        return self._table.lookup_labels(labels)


_IS_AN_ALLOCATOR: type[Allocator] = CidrAllocator   # mypy checks the Protocol here
