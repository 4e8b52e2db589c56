"""The cluster-wide identity allocator: every node gets the same number for the same labels.

The algorithm, written against `identity.backend.Backend` (whose methods are each one
atomic step in the store; `identity.etcd` is the etcd one, `identity.memory` an
in-memory one for tests):

allocate(labels)
  1. Reserved label sets get their fixed numbers; empty sets and CIDR labels are refused
     (`LabelAllocator`).
  2. Labels this process already references: count one more and return. This node's
     reference is in the store (or will be, after an outage: see the resync).
  3. Otherwise ask the store, at most MAX_ATTEMPTS times:
     a. the label set has a number (a claim): take this node's reference on it, guarded
        by the claim being the one read and by the number's identity holding exactly
        these labels. A changed claim (freed meanwhile) means: read again; a claim whose
        number means other labels (written by hand, or a corrupt store) is refused with
        AllocationError: the pods concerned fail closed, nobody gets another's number.
     b. it has none: take the lowest number the store does not use and this call has not
        tried, and create identity, claim and reference at once, guarded by neither the
        number nor the label set being taken. Two nodes racing for one label set get one
        number (the loser's next read finds the winner's claim); two label sets never
        share one (the loser tries the next number).
  4. This node's lease lost under the write: every reference is marked for resync, and
     the write is tried once more (it takes a new lease).
  5. Store unreachable: labels known here get their cached number (the reference is
     written by the resync when the store is back); a brand-new label set fails with
     AllocationError. Enforcement with known identities goes on.

release(identity)
  1. Reserved: nothing. 2. One reference less; at zero, drop this node's reference in the
  store and, if no node references the number any more, start its grace period (a marker
  with the wall-clock time). Store unreachable: the resync drops it later.

lookup / lookup_labels: the cache; on a miss while the store answers, the store
(identities other nodes made since the last refresh).

collect_garbage (any node, any time: the store re-checks every condition atomically)
  1. an identity nobody references and without a marker gets one: its grace starts;
  2. one whose marker is older than grace_seconds is freed (identity, claim, marker),
     guarded by "still nobody references it" and "identity and marker unchanged since
     read": a node taking it again meanwhile always wins;
  3. markers of identities that are gone (deleted by hand) are dropped.

Background work (a thread every min(keep-alive interval, refresh_interval), or `sync()`):
  1. keep the lease alive; a new lease means the references on the old one are gone;
  2. after an outage, a new lease or a failed write, resync: re-take every reference this
     process holds (an identity freed meanwhile is re-created with its old number, which
     the pinned maps and the other nodes' caches still hold), drop the store's references
     of this node that it no longer holds;
  3. every refresh_interval, reload every identity, so numbers made elsewhere are known.

Locks: `_io` serialises every conversation with the store (the backend is called one
method at a time, and a resync never interleaves with an allocation); `_lock` guards the
cache and the counts for the readers that never wait on the store.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Self, TypeVar

from core.errors import AllocationError
from identity.allocator import Allocator, Identity, LabelAllocator
from identity.backend import Backend, Claim, OwnershipLost, StoreRefused, StoreUnreachable
from identity.gc import Clock
from identity.labels import LabelSet
from identity.reserved import MAX_LABEL_IDENTITY, MIN_LABEL_IDENTITY

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 64   # conflicting writes under contention before allocate gives up

T = TypeVar("T")


class ClusterAllocator(LabelAllocator):
    """The Allocator shared by every node of a cluster, over a Backend.

    grace_seconds: how long an identity nobody references is kept (compared with the
    markers' wall-clock times, so `clock` is time.time, injectable for tests);
    refresh_interval: how often every identity is reloaded; start=False runs no
    background thread (call `sync()` instead).
    """

    def __init__(self, backend: Backend, grace_seconds: float = 300.0, *,
                 refresh_interval: float = 5.0, clock: Clock = time.time,
                 max_identity: int = MAX_LABEL_IDENTITY, start: bool = True) -> None:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, not {grace_seconds}")
        self.backend = backend
        self.node = backend.node
        self.grace_seconds = grace_seconds
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._max_identity = max_identity
        self._io = threading.RLock()
        self._lock = threading.Lock()
        self._by_id: dict[int, LabelSet] = {}
        self._by_key: dict[str, int] = {}
        self._refs: dict[int, int] = {}    # this process's references
        self._dirty = True                 # the store's references may not match _refs
        self._last_refresh = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat()                  # talk to the store now if it is there; never raises
        if start:
            self._thread = threading.Thread(target=self._run, daemon=True,
                                            name=f"{backend.name}-identities-{self.node}")
            self._thread.start()

    @property
    def connected(self) -> bool:
        """Whether the last conversation with the store succeeded."""
        return self.backend.reachable

    @contextmanager
    def _store(self) -> Iterator[Backend]:
        """One conversation with the store, under the I/O lock. When the store was not
        reached or the lease was lost, a write may or may not have landed: the references
        are marked for the resync."""
        with self._io:
            try:
                yield self.backend
            except (StoreUnreachable, OwnershipLost):
                self._dirty = True
                raise

    def _with_lease(self, fn: Callable[[], T]) -> T:
        """Runs fn; if the lease vanished under it, runs it again (under a new lease)."""
        try:
            return fn()
        except OwnershipLost:
            self._dirty = True
            return fn()

    def _log_name(self) -> str:
        return f"{self.backend.name} identities"

    # -- allocate -----------------------------------------------------------------------
    def _allocate(self, labels: LabelSet) -> Identity:
        with self._lock:
            # Already referenced here, so our reference is (or will be) in the store.
            number = self._by_key.get(labels.key())
            if number is not None and self._refs.get(number, 0) > 0:
                self._refs[number] += 1
                return Identity(number, self._by_id[number])
        with self._io:
            try:
                with self._store() as store:
                    number = self._with_lease(partial(self._allocate_in, store, labels))
            except StoreUnreachable as err:
                return self._allocate_offline(labels, err)
            except StoreRefused as err:
                raise AllocationError(f"{self.backend.describe()} refused allocating "
                                      f"{labels.key()!r}: {err}") from None
            except OwnershipLost:
                raise AllocationError(f"labels {labels.key()!r}: {self.backend.describe()} "
                                      "lost this node's lease twice in a row; the next "
                                      "update tries again") from None
            with self._lock:
                self._remember(number, labels)
                self._refs[number] = self._refs.get(number, 0) + 1
                return Identity(number, labels)

    def _allocate_in(self, store: Backend, labels: LabelSet) -> int:
        """Steps 3a and 3b: the cluster's number for labels, with this node's reference."""
        tried: set[int] = set()
        for _ in range(MAX_ATTEMPTS):
            claim = store.claim_of(labels)
            if claim is not None:
                if store.acquire(claim):
                    return claim.number
                self._refuse_if_foreign(store, claim)
                continue
            number = self._next_free(store, tried)
            tried.add(number)
            if store.create(number, labels):
                log.info("%s: %s allocated %d for %s", self._log_name(), self.node, number,
                         labels.key())
                return number
            # Someone else took the labels (next read finds them) or the number (try the next).
        raise AllocationError(f"labels {labels.key()!r}: gave up after {MAX_ATTEMPTS} "
                              f"conflicting transactions in {store.name}; too many agents "
                              "racing?")

    def _refuse_if_foreign(self, store: Backend, claim: Claim) -> None:
        """Raises AllocationError when claim.number's identity holds other labels than
        the claim's (step 3a); returns when it holds them or is gone (a race: read again)."""
        held = store.identity(claim.number)
        if held is None or held == claim.labels:
            return
        log.error("%s: the claim of %s names %d, which is %s: refused", self._log_name(),
                  claim.labels.key(), claim.number, held.key())
        raise AllocationError(
            f"labels {claim.labels.key()!r}: {store.describe()} claims number "
            f"{claim.number} for them, but identity {claim.number} holds other labels "
            f"({held.key()!r}); refusing to share it. The claim was written by hand or the "
            "store is corrupt: delete the claim (etcd: <prefix>/labels/<sha256 of the labels' "
            "key>) and the next update allocates anew")

    def _next_free(self, store: Backend, skip: set[int]) -> int:
        used = store.numbers() | skip
        number = MIN_LABEL_IDENTITY
        while number in used:
            number += 1
        if number > self._max_identity:
            raise AllocationError(
                f"no free label identity in {store.describe()}: all numbers from "
                f"{MIN_LABEL_IDENTITY} to {self._max_identity} are in use or within their "
                "grace period")
        return number

    def _allocate_offline(self, labels: LabelSet, err: StoreUnreachable) -> Identity:
        with self._lock:
            number = self._by_key.get(labels.key())
            if number is None:
                raise AllocationError(
                    f"{self.backend.name} is unreachable ({err}): cannot allocate a new "
                    f"identity for {labels.key()!r}; known identities keep working and the "
                    "agent catches up when it is back") from None
            # The reference is written by the resync once the store answers (_dirty is set).
            self._refs[number] = self._refs.get(number, 0) + 1
            log.warning("%s: store unreachable, using cached identity %d for %s",
                        self._log_name(), number, labels.key())
            return Identity(number, self._by_id[number])

    # -- release ------------------------------------------------------------------------
    def _release(self, identity: Identity) -> None:
        with self._io:
            with self._lock:
                count = self._refs.get(identity.id, 0)
                if count <= 0:
                    raise AllocationError(f"identity {identity.id} ({identity.labels.key()!r}): "
                                          "released more often than allocated on this node")
                if count > 1:
                    self._refs[identity.id] = count - 1
                    return
                del self._refs[identity.id]
            try:
                with self._store() as store:
                    self._drop_reference(store, identity.id)
            except StoreUnreachable:
                pass  # _dirty is set: the resync drops the reference when the store is back
            except StoreRefused as err:
                self._dirty = True
                log.warning("%s: dropping the reference on %d failed (%s); the resync "
                            "retries", self._log_name(), identity.id, err)

    def _drop_reference(self, store: Backend, number: int) -> None:
        store.drop_reference(number)
        # Last user anywhere? Start the grace period now rather than at the next GC.
        store.mark_unused(number, self._clock())

    # -- lookups ------------------------------------------------------------------------
    def _lookup(self, identity_id: int) -> Identity | None:
        with self._lock:
            labels = self._by_id.get(identity_id)
        if labels is not None:
            return Identity(identity_id, labels)
        if not self.backend.reachable:
            return None
        # Allocated by another node since the last refresh: ask the store directly.
        try:
            with self._store() as store:
                labels = store.identity(identity_id)
        except (StoreUnreachable, StoreRefused):
            return None
        if labels is None:
            return None
        with self._lock:
            self._remember(identity_id, labels)
        return Identity(identity_id, labels)

    def _lookup_labels(self, labels: LabelSet) -> Identity | None:
        with self._lock:
            number = self._by_key.get(labels.key())
        if number is not None:
            return Identity(number, labels)
        if not self.backend.reachable:
            return None
        try:
            with self._store() as store:
                claim = store.claim_of(labels)
                # A claim is believed only with its identity (step 3a).
                if claim is not None and store.identity(claim.number) != labels:
                    claim = None
        except (StoreUnreachable, StoreRefused):
            return None
        if claim is None:
            return None
        with self._lock:
            self._remember(claim.number, labels)
        return Identity(claim.number, labels)

    def identities(self) -> list[Identity]:
        """Every identity of the cluster as of the last refresh (or the cache, offline)."""
        with self._lock:
            return [Identity(n, labels) for n, labels in sorted(self._by_id.items())]

    def references(self, identity_id: int) -> int:
        with self._lock:
            return self._refs.get(identity_id, 0)

    def _remember(self, number: int, labels: LabelSet) -> None:
        # Caller holds _lock.
        old = self._by_id.get(number)
        if old is not None and old != labels:
            self._by_key.pop(old.key(), None)
        self._by_id[number] = labels
        self._by_key[labels.key()] = number

    def _forget(self, number: int) -> None:
        # Caller holds _lock.
        labels = self._by_id.pop(number, None)
        if labels is not None and self._by_key.get(labels.key()) == number:
            del self._by_key[labels.key()]

    # -- garbage collection -------------------------------------------------------------
    def collect_garbage(self) -> list[Identity]:
        """Marks unreferenced identities, frees those marked longer than the grace period.

        Returns [] when the store is unreachable or refuses (nothing can be freed then).
        """
        try:
            with self._store() as store:
                return self._collect(store)
        except (StoreUnreachable, StoreRefused) as err:
            log.warning("%s: garbage collection skipped: %s", self._log_name(), err)
            return []

    def _collect(self, store: Backend) -> list[Identity]:
        identities = sorted(store.identities(), key=lambda stored: stored.number)
        referenced = store.referenced()
        markers = {marker.number: marker for marker in store.unused_markers()}
        now = self._clock()
        freed: list[Identity] = []
        for stored in identities:
            if stored.number in referenced:
                continue
            marker = markers.get(stored.number)
            if marker is None:
                store.mark_unused(stored.number, now, stored.version)
                continue
            if now - marker.since < self.grace_seconds:
                continue
            if store.free(stored, marker):
                log.info("%s: %s freed %d (%s)", self._log_name(), self.node, stored.number,
                         stored.labels.key())
                freed.append(Identity(stored.number, stored.labels))
                with self._lock:
                    if not self._refs.get(stored.number):
                        self._forget(stored.number)
        present = {stored.number for stored in identities}
        for number, marker in markers.items():
            if number not in present:   # an identity deleted by hand: drop its marker too
                store.drop_marker(marker)
        return freed

    # -- keeping up with the store ------------------------------------------------------
    def refresh(self) -> None:
        """Reloads every identity from the store (AllocationError when it does not answer)."""
        try:
            with self._store() as store:
                self._refresh(store)
        except (StoreUnreachable, StoreRefused) as err:
            raise AllocationError(f"{self.backend.name} is unreachable: {err}") from None

    def _refresh(self, store: Backend) -> None:
        fresh = {stored.number: stored.labels for stored in store.identities()}
        with self._lock:
            # Identities this node still uses stay, even if freed in the store: the resync
            # restores them, and the datapath keeps enforcing with them meanwhile.
            for number in list(self._by_id):
                if number not in fresh and not self._refs.get(number):
                    self._forget(number)
            for number, labels in fresh.items():
                self._remember(number, labels)
        self._last_refresh = time.monotonic()

    def _resync(self, store: Backend) -> None:
        """Makes the store's references of this node match what this process references."""
        with self._lock:
            wanted = {n: self._by_id[n] for n, count in self._refs.items() if count > 0}
        for number, labels in wanted.items():
            self._with_lease(partial(self._restore_reference, store, number, labels))
        for number in sorted(store.own_references() - wanted.keys()):
            self._drop_reference(store, number)
        self._dirty = False

    def _restore_reference(self, store: Backend, number: int, labels: LabelSet) -> None:
        if store.reacquire(number, labels):
            return
        # Freed while we could not keep our reference alive: bring it back with the same
        # number, which the pinned maps and the other nodes' caches still hold.
        if store.create(number, labels):
            log.warning("%s: restored identity %d (%s) freed during an outage",
                        self._log_name(), number, labels.key())
            return
        log.error("%s: identity %d (%s) was freed and its number or labels reused while "
                  "node %s was away; endpoints keep %d until they are re-allocated",
                  self._log_name(), number, labels.key(), self.node, number)

    def sync(self) -> bool:
        """One round of the background work now; returns whether the store answered."""
        self._heartbeat()
        return self.backend.reachable

    def _heartbeat(self) -> None:
        """One round of the background work: lease, resync, refresh. Never raises."""
        try:
            with self._store() as store:
                if store.keep_alive():
                    self._dirty = True   # references on the old lease are gone
                if self._dirty:
                    self._resync(store)
                if time.monotonic() - self._last_refresh >= self.refresh_interval:
                    self._refresh(store)
        except StoreUnreachable as err:
            log.debug("%s: %s", self._log_name(), err)
        except OwnershipLost:
            pass   # _dirty is set; the next round takes a new lease and resyncs
        except (StoreRefused, ValueError, KeyError) as err:
            self._dirty = True
            log.error("%s: background sync failed: %s", self._log_name(), err)

    def flush(self) -> None:
        """Nothing to do: a new number is in the store before allocate returns it
        (references taken while the store is unreachable are re-written by the
        background sync, which flush cannot hasten)."""

    def _run(self) -> None:
        tick = max(0.1, min(self.backend.keep_alive_interval, self.refresh_interval))
        while not self._stop.wait(tick):
            self._heartbeat()

    def close(self, revoke: bool = True) -> None:
        """Stops the background thread and lets go of the store. revoke=True ends the
        lease (dropping this node's references); revoke=False leaves them to expire as a
        crashed node's would."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._io:
            self.backend.close(revoke)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_IS_AN_ALLOCATOR: type[Allocator] = ClusterAllocator   # mypy checks the Protocol here
