"""Where cluster-wide identities are stored: the interface `identity.cluster` is written against.

A Backend is one node's handle on a store shared by every node: a key-value store with
atomic create-if-absent and compare-and-delete, ownership (a lease) that takes this
node's references with it when the node dies, and listing by kind. The allocation
algorithm (which number to try, when to retry, the cache, the grace period, what to do
in an outage) lives in `identity.cluster.ClusterAllocator`; a backend only stores, and
makes each method below one atomic step.

What is stored, in these words (etcd keeps it under a key prefix, see identity/etcd.py):

    identity   number -> label set          what a number means
    claim      label set -> number          which number a label set has (one at most)
    reference  (number, node)               the node uses the number; owned by the node's
                                            lease: gone when the lease ends
    marker     number -> since              nobody used the number from `since` (wall
                                            clock, compared across nodes) on: its grace

Invariants the methods keep: an identity and its claim are created and deleted together;
two label sets never share a number, and a label set never has two; an identity with a
reference is never deleted. A claim is only believed with its identity: `acquire` takes
a reference only when the number's identity holds exactly the claimed labels, so a claim
written into the store by hand (`labels X -> the number of Y`) never gives X Y's number.

Versions (`Version`) are opaque strings the backend hands out with what it read and
compares for equality when handed back: a guard that the thing read has not changed.

Errors (internal to the identity package: ClusterAllocator turns them into fallbacks or
AllocationError, never lets them out):

    StoreUnreachable   the store could not be reached; a write may or may not have landed
    OwnershipLost      this node's lease is gone (and its references with it); the next
                       write that takes a reference obtains a new one
    StoreRefused       the store answered with an error

Methods are called one at a time (ClusterAllocator serialises them per backend); any of
them may raise StoreUnreachable, and StoreRefused for what the store refuses.

NodeState is what every backend keeps of its node between calls (its name, whether the
store answered, its lease and whether that lease is new): the backends derive from it,
so `node`, `reachable` and keep_alive's "new lease" answer have one home.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from identity.labels import LabelSet

Version = str
LeaseT = TypeVar("LeaseT")


class StoreUnreachable(Exception):
    """The store could not be reached (every endpoint tried)."""


class OwnershipLost(Exception):
    """The store no longer knows this node's lease: its references are gone."""


class StoreRefused(Exception):
    """The store answered a request with an error."""


@dataclass(frozen=True)
class Claim:
    """A label set's number as read, with the version of that claim."""

    labels: LabelSet
    number: int
    version: Version


@dataclass(frozen=True)
class StoredIdentity:
    number: int
    labels: LabelSet
    version: Version


@dataclass(frozen=True)
class UnusedMarker:
    number: int
    since: float      # wall-clock seconds (time.time) when the grace period started
    version: Version


class Backend(Protocol):
    @property
    def name(self) -> str:
        """The kind of store, for messages and logs: `etcd`."""

    @property
    def node(self) -> str:
        """This node's name: whose references and markers these are."""

    @property
    def reachable(self) -> bool:
        """Whether the last request reached the store."""

    def describe(self) -> str:
        """The store in a few words, for messages: `etcd (/membrane/identities)`."""

    # -- ownership ------------------------------------------------------------------------
    @property
    def keep_alive_interval(self) -> float:
        """Seconds between keep_alive calls that keep the lease alive."""

    def keep_alive(self) -> bool:
        """Renews this node's lease, obtaining one if it has none or it expired. Returns
        True when the lease is new since the last call: references made under the old
        one are gone and must be re-taken."""

    def close(self, revoke: bool = True) -> None:
        """Lets go of the store; with revoke the lease ends now, taking this node's
        references with it (as a dead node's expire)."""

    # -- reads ----------------------------------------------------------------------------
    def claim_of(self, labels: LabelSet) -> Claim | None:
        """The number this label set has, None when it has none."""

    def identity(self, number: int) -> LabelSet | None:
        """What a number means, None when nothing (or nothing readable) is stored."""

    def numbers(self) -> set[int]:
        """Every number an identity is stored under."""

    def identities(self) -> list[StoredIdentity]:
        """Every identity; records that cannot be read are logged and left out."""

    def referenced(self) -> set[int]:
        """Numbers some node (any) holds a reference on."""

    def own_references(self) -> set[int]:
        """Numbers this node holds a reference on in the store."""

    def unused_markers(self) -> list[UnusedMarker]:
        """Every grace-period marker; markers that cannot be read are logged and left out."""

    # -- writes, each atomic ----------------------------------------------------------------
    def create(self, number: int, labels: LabelSet) -> bool:
        """Stores identity `number` = labels with its claim and this node's reference, if
        neither the number nor the label set is taken. False when one of them is."""

    def acquire(self, claim: Claim) -> bool:
        """Takes this node's reference on claim.number and ends any grace period, if the
        claim is unchanged since it was read and identity claim.number holds exactly
        claim.labels. False when either is not so (freed, re-made, or a bad claim)."""

    def reacquire(self, number: int, labels: LabelSet) -> bool:
        """Takes this node's reference on `number` and ends any grace period, if the
        number still means exactly `labels`. False otherwise."""

    def drop_reference(self, number: int) -> None:
        """Removes this node's reference on `number` (nothing if it holds none)."""

    def mark_unused(self, number: int, since: float, version: Version | None = None) -> bool:
        """Starts the grace period of `number` at `since`, if no node references it, it
        has no marker yet and the identity exists (unchanged since `version`, if given)."""

    def free(self, identity: StoredIdentity, marker: UnusedMarker) -> bool:
        """Deletes the identity, its claim and its marker, if no node references it and
        neither the identity nor the marker changed since they were read."""

    def drop_marker(self, marker: UnusedMarker) -> bool:
        """Deletes a marker (of an identity already gone), if unchanged since read."""


class NodeState(Generic[LeaseT]):
    """One node's state in a backend, between calls: a base for the Backend classes,
    which set `_reachable` as requests go and `_lease` (with `_new_lease`) as they
    obtain one."""

    def __init__(self, node: str) -> None:
        self._node = node
        self._reachable = False               # whether the last request reached the store
        self._lease: LeaseT | None = None     # this node's lease, None before one is
                                              # granted (or after close)
        self._new_lease = False               # granted since the last keep_alive

    @property
    def node(self) -> str:
        return self._node

    @property
    def reachable(self) -> bool:
        return self._reachable

    def _lease_is_new(self) -> bool:
        """Whether a lease was obtained since the last call (keep_alive's answer)."""
        new, self._new_lease = self._new_lease, False
        return new
