"""The allocator interface: one number per label set, the same on every node.

Allocators: `identity.local.LocalAllocator` (a state directory, one node; the embedded
default), `identity.etcd.EtcdAllocator` (many nodes: `identity.cluster.ClusterAllocator`
over the etcd backend) and `identity.cidr.CidrAllocator` (CIDR identities, node-local).
Each module checks with mypy that its allocator is an `Allocator`.

Reserved identities are never allocated: `LabelAllocator`, the base of the label
allocators, answers them with their fixed numbers and refuses what no label allocator
may number (the empty set, CIDR labels, reserved labels mixed with others).

References: `allocate` takes one reference for the caller, `release` drops one. An
identity nobody references is kept for a grace period (a pod being replaced keeps its
number), then `collect_garbage` frees it.

Durability: `flush()` makes every number handed out so far survive a restart; a caller
must call it before writing new numbers into the pinned BPF maps (a restarted agent must
give every label set the number those maps hold).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol

from core.errors import AllocationError
from identity.labels import SOURCE_CIDR, SOURCE_RESERVED, LabelSet
from identity.reserved import ReservedIdentity


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
        """Makes every allocation and free so far durable. Allocators that persist as they
        go (etcd, a local allocator with persist="immediate") do nothing here; a local
        allocator with persist="on_flush" writes its state file. Call it after a batch of
        allocations and before any new number is written where it outlives the process
        (the pinned BPF maps). Raises AllocationError when the state cannot be saved."""

    def close(self) -> None: ...


def reserved_identity(identity_id: int) -> Identity | None:
    """The reserved identity with this number, None for any other number."""
    try:
        reserved = ReservedIdentity(identity_id)
    except ValueError:
        return None
    return Identity(int(reserved), reserved.labels)


def reserved_identity_of(labels: LabelSet) -> Identity | None:
    """The reserved identity these labels name, None when they name none.

    Raises AllocationError when reserved labels are mixed with others: no allocator may
    hand out a number for such a set, or a pod could pass itself off as the host.
    """
    if not any(label.source == SOURCE_RESERVED for label in labels):
        return None
    for reserved in ReservedIdentity:
        if labels == reserved.labels:
            return Identity(int(reserved), reserved.labels)
    raise AllocationError(f"labels {labels.key()!r}: reserved labels cannot be combined with "
                          "others or invented; reserved identities are fixed (identity/reserved.py)")


class LabelAllocator(ABC):
    """The part every allocator of label identities shares, around its own numbering.

    Reserved label sets and numbers are answered here with their fixed identities (never
    counted, never freed); the empty set and CIDR labels are refused. Subclasses number
    everything else in `_allocate`, `_release`, `_lookup` and `_lookup_labels`.
    """

    def allocate(self, labels: LabelSet) -> Identity:
        reserved = reserved_identity_of(labels)
        if reserved is not None:
            return reserved  # fixed numbers: nothing to count or free
        if not labels:
            raise AllocationError("cannot allocate an identity for an empty label set")
        if any(label.source == SOURCE_CIDR for label in labels):
            raise AllocationError(f"labels {labels.key()!r}: CIDR labels get node-local "
                                  "identities from identity.cidr.CidrAllocator")
        return self._allocate(labels)

    def release(self, identity: Identity) -> None:
        if reserved_identity(identity.id) is None:
            self._release(identity)

    def lookup(self, identity_id: int) -> Identity | None:
        return reserved_identity(identity_id) or self._lookup(identity_id)

    def lookup_labels(self, labels: LabelSet) -> Identity | None:
        if any(label.source == SOURCE_RESERVED for label in labels):
            try:
                return reserved_identity_of(labels)
            except AllocationError:
                return None
        return self._lookup_labels(labels)

    @abstractmethod
    def _allocate(self, labels: LabelSet) -> Identity:
        """allocate() for a label set that is neither reserved nor refused."""

    @abstractmethod
    def _release(self, identity: Identity) -> None:
        """release() of an identity that is not reserved."""

    @abstractmethod
    def _lookup(self, identity_id: int) -> Identity | None:
        """lookup() of a number that is not reserved."""

    @abstractmethod
    def _lookup_labels(self, labels: LabelSet) -> Identity | None:
        """lookup_labels() of a label set without reserved labels."""
