"""An in-memory Backend: the cluster allocator's store without a server, for tests.

    store = MemoryStore()                        # what every node shares
    a = ClusterAllocator(MemoryBackend(store, "a"), start=False)
    b = ClusterAllocator(MemoryBackend(store, "b"), start=False)
    store.reachable = False                      # an outage: every call raises
    store.expire_lease(a.backend.lease_id)       # a lease running out: a's references go

It keeps the records and guards of identity/backend.py exactly as the etcd backend does
(one lock makes each method atomic; versions are store revisions), so the algorithm in
identity/cluster.py can be tested here, deterministically, and against etcd in
tests/k8s. Leases never expire on their own: a test expires one when it wants to.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Generic, TypeVar

from identity.backend import (Backend, Claim, NodeState, OwnershipLost, StoredIdentity,
                              StoreUnreachable, UnusedMarker, Version)
from identity.labels import LabelSet

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


@dataclass
class Versioned(Generic[V]):
    value: V
    created: int           # store revision that created it
    modified: int          # store revision of its last change


@dataclass
class MemoryStore:
    """The shared store: identities, claims (by LabelSet.key()), markers, and references
    per number and node with the lease each lives on. `reachable = False` is an outage."""

    reachable: bool = True
    identities: dict[int, Versioned[LabelSet]] = field(default_factory=dict)
    claims: dict[str, Versioned[int]] = field(default_factory=dict)
    markers: dict[int, Versioned[float]] = field(default_factory=dict)
    references: dict[int, dict[str, int]] = field(default_factory=dict)  # n -> node -> lease
    leases: set[int] = field(default_factory=set)
    revision: int = 0
    leases_granted: int = 0
    requests: int = 0       # every call a backend made, answered or not
    lock: threading.RLock = field(default_factory=threading.RLock)

    def grant_lease(self) -> int:
        self.leases_granted += 1
        self.leases.add(self.leases_granted)
        return self.leases_granted

    def expire_lease(self, lease: int | None) -> None:
        """The lease ends (a dead node, or one cut off too long): its references go."""
        with self.lock:
            self.leases.discard(lease or 0)
            for holders in self.references.values():
                for node in [n for n, held in holders.items() if held == lease]:
                    del holders[node]

    def bump(self) -> int:
        self.revision += 1
        return self.revision

    def put(self, table: dict[K, Versioned[V]], key: K, value: V) -> None:
        revision = self.bump()
        old = table.get(key)
        table[key] = Versioned(value, old.created if old else revision, revision)

    def referenced(self, number: int) -> bool:
        return bool(self.references.get(number))


class MemoryBackend(NodeState[int]):
    """One node's Backend on a MemoryStore."""

    name = "memory"
    keep_alive_interval = 1.0

    def __init__(self, store: MemoryStore, node: str) -> None:
        super().__init__(node)
        self.store = store

    @property
    def lease_id(self) -> int | None:
        return self._lease

    def describe(self) -> str:
        return "memory store"

    def _call(self, fn: Callable[[MemoryStore], T]) -> T:
        """fn atomically on the store, or StoreUnreachable while it is 'down'."""
        with self.store.lock:
            self.store.requests += 1
            if not self.store.reachable:
                self._reachable = False
                raise StoreUnreachable("memory store is down")
            self._reachable = True
            return fn(self.store)

    # -- ownership ------------------------------------------------------------------------
    def _lease_for_refs(self, store: MemoryStore) -> int:
        if self._lease is not None and self._lease not in store.leases:
            self._lease = None
            raise OwnershipLost(f"node {self._node}: lease expired")
        if self._lease is None:
            self._lease, self._new_lease = store.grant_lease(), True
        return self._lease

    def keep_alive(self) -> bool:
        def renew(store: MemoryStore) -> bool:
            if self._lease is not None and self._lease not in store.leases:
                self._lease = None
            self._lease_for_refs(store)
            return self._lease_is_new()
        return self._call(renew)

    def close(self, revoke: bool = True) -> None:
        if revoke and self._lease is not None:
            lease, self._lease = self._lease, None
            if self.store.reachable:
                self.store.expire_lease(lease)

    # -- reads ----------------------------------------------------------------------------
    def claim_of(self, labels: LabelSet) -> Claim | None:
        def read(store: MemoryStore) -> Claim | None:
            claim = store.claims.get(labels.key())
            return Claim(labels, claim.value, str(claim.created)) if claim else None
        return self._call(read)

    def identity(self, number: int) -> LabelSet | None:
        def read(store: MemoryStore) -> LabelSet | None:
            stored = store.identities.get(number)
            return stored.value if stored else None
        return self._call(read)

    def numbers(self) -> set[int]:
        return {stored.number for stored in self.identities()}

    def identities(self) -> list[StoredIdentity]:
        def read(store: MemoryStore) -> list[StoredIdentity]:
            return [StoredIdentity(number, stored.value, str(stored.modified))
                    for number, stored in store.identities.items()]
        return self._call(read)

    def referenced(self) -> set[int]:
        return self._call(lambda store: {n for n, holders in store.references.items()
                                         if holders})

    def own_references(self) -> set[int]:
        return self._call(lambda store: {n for n, holders in store.references.items()
                                         if self._node in holders})

    def unused_markers(self) -> list[UnusedMarker]:
        def read(store: MemoryStore) -> list[UnusedMarker]:
            return [UnusedMarker(number, marker.value, str(marker.modified))
                    for number, marker in store.markers.items()]
        return self._call(read)

    # -- writes ---------------------------------------------------------------------------
    def _take_reference(self, store: MemoryStore, number: int) -> None:
        store.references.setdefault(number, {})[self._node] = self._lease_for_refs(store)
        if store.markers.pop(number, None) is not None:
            store.bump()

    def create(self, number: int, labels: LabelSet) -> bool:
        def write(store: MemoryStore) -> bool:
            if labels.key() in store.claims or number in store.identities:
                return False
            self._lease_for_refs(store)   # a lost lease fails the whole write, as in etcd
            store.put(store.claims, labels.key(), number)
            store.put(store.identities, number, labels)
            self._take_reference(store, number)
            return True
        return self._call(write)

    def acquire(self, claim: Claim) -> bool:
        def write(store: MemoryStore) -> bool:
            current = store.claims.get(claim.labels.key())
            if current is None or str(current.created) != claim.version:
                return False
            return self._take_if_holding(store, claim.number, claim.labels)
        return self._call(write)

    def reacquire(self, number: int, labels: LabelSet) -> bool:
        return self._call(lambda store: self._take_if_holding(store, number, labels))

    def _take_if_holding(self, store: MemoryStore, number: int, labels: LabelSet) -> bool:
        """Takes this node's reference on `number` if its identity holds exactly labels."""
        stored = store.identities.get(number)
        if stored is None or stored.value != labels:
            return False
        self._take_reference(store, number)
        return True

    def drop_reference(self, number: int) -> None:
        def write(store: MemoryStore) -> None:
            if store.references.get(number, {}).pop(self._node, None) is not None:
                store.bump()
        self._call(write)

    def mark_unused(self, number: int, since: float, version: Version | None = None) -> bool:
        def write(store: MemoryStore) -> bool:
            stored = store.identities.get(number)
            if (store.referenced(number) or number in store.markers or stored is None
                    or (version is not None and str(stored.modified) != version)):
                return False
            store.put(store.markers, number, float(since))
            return True
        return self._call(write)

    def free(self, identity: StoredIdentity, marker: UnusedMarker) -> bool:
        def write(store: MemoryStore) -> bool:
            number = identity.number
            stored, mark = store.identities.get(number), store.markers.get(number)
            if (store.referenced(number) or stored is None or mark is None
                    or str(stored.modified) != identity.version
                    or str(mark.modified) != marker.version):
                return False
            store.bump()
            del store.identities[number], store.markers[number]
            store.claims.pop(identity.labels.key(), None)
            return True
        return self._call(write)

    def drop_marker(self, marker: UnusedMarker) -> bool:
        def write(store: MemoryStore) -> bool:
            mark = store.markers.get(marker.number)
            if mark is None or str(mark.modified) != marker.version:
                return False
            store.bump()
            del store.markers[marker.number]
            return True
        return self._call(write)


_IS_A_BACKEND: type[Backend] = MemoryBackend   # mypy checks the Protocol here
