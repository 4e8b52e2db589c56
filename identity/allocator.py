"""The allocator interface: one number per label set, the same on every node.

Backends: `identity.local.LocalAllocator` (a state directory, one node; the embedded
default) and `identity.etcd.EtcdAllocator` (many nodes). Reserved identities are never
allocated; CIDR identities are node-local and handed out by `CidrAllocator`.

References: `allocate` takes one reference for the caller, `release` drops one. An
identity nobody references is kept for a grace period (a pod being replaced keeps its
number), then `collect_garbage` frees it.

Durability: `flush()` makes every number handed out so far survive a restart; a caller
must call it before writing new numbers into the pinned BPF maps (a restarted agent must
give every label set the number those maps hold).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from identity.labels import LabelSet


@dataclass(frozen=True)
class Identity:
    id: int
    labels: LabelSet


class Allocator(Protocol):
    def allocate(self, labels: LabelSet) -> Identity:
        """The identity for these labels, allocating one if none exists; takes a reference."""

    def release(self, identity: Identity) -> None:
        """Drops a reference taken by allocate; unreferenced identities start their grace period."""

    def lookup(self, identity_id: int) -> Identity | None: ...

    def lookup_labels(self, labels: LabelSet) -> Identity | None: ...

    def identities(self) -> list[Identity]:
        """Every identity this allocator knows, referenced or within its grace period."""

    def collect_garbage(self) -> list[Identity]:
        """Frees identities unreferenced for longer than the grace period; returns them."""

    def flush(self) -> None:
        """Makes every allocation and free so far durable. Backends that persist as they
        go (etcd, a local allocator with persist="immediate") do nothing here; a local
        allocator with persist="on_flush" writes its state file. Call it after a batch of
        allocations and before any new number is written where it outlives the process
        (the pinned BPF maps). Raises AllocationError when the state cannot be saved."""

    def close(self) -> None: ...
