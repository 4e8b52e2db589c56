"""Pods' identities allocated so that one that cannot be stops nothing else.

An identity that cannot be allocated (the identity store unreachable and a label set it
has not seen, or no number left) affects only the pods with that label set: they get
no identity, so they are in no ipcache and no selector (peers deny them), their own
endpoint keeps what it had (the regenerator shows it not-ready with the reason), and
the engine's update goes on for every other pod and policy. The pod is tried again at
every update.

After a failure, a label set is not tried again before a backoff (1 s, doubling up to
MAX_BACKOFF) unless the allocator already knows it (some pod of the engine holds it, or
`lookup_labels` finds it without asking the store, as the cluster allocator does from
its cache while the store is away): an unreachable store costs one timeout per backoff,
not one per pod per update, under the agent's lock.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping, Protocol

from core.errors import AllocationError
from identity.allocator import Identity
from identity.labels import LabelSet

log = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0    # seconds
MAX_BACKOFF = 5.0


class Allocates(Protocol):
    """The part of `identity.allocator.Allocator` the engine uses: one reference per pod
    (or per ipBlock prefix), taken with allocate and dropped with release."""

    def allocate(self, labels: LabelSet) -> Identity: ...

    def release(self, identity: Identity) -> None: ...

    def lookup_labels(self, labels: LabelSet) -> Identity | None: ...


class GuardedAllocation:
    def __init__(self, allocator: Allocates, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._alloc = allocator
        self._clock = clock
        self._failures = 0
        self._retry_at = float("-inf")
        self._last_error = ""
        self._problems: dict[str, str] = {}

    def allocate(self, pod_key: str, labels: LabelSet, held: bool) -> Identity | None:
        """The pod's identity, or None (the reason is kept). held: some pod of the
        engine already has an identity with these labels."""
        now = self._clock()
        if now < self._retry_at and not held and self._alloc.lookup_labels(labels) is None:
            self._problems[pod_key] = (f"its identity is not allocated yet: {self._last_error} "
                                       f"(next try in {self._retry_at - now:.1f}s)")
            return None
        try:
            identity = self._alloc.allocate(labels)
        except AllocationError as err:
            self._failures += 1
            backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (self._failures - 1))
            self._retry_at = now + backoff
            self._last_error = str(err)
            self._problems[pod_key] = f"its identity cannot be allocated: {err}"
            log.warning("pod %s: identity not allocated (%s); it stays fail-closed, new "
                        "label sets are tried again in %.0fs", pod_key, err, backoff)
            return None
        if not held:
            self._failures, self._retry_at = 0, float("-inf")
        self._problems.pop(pod_key, None)
        return identity

    def forget(self, pod_key: str) -> None:
        """The pod is gone (or needs no identity): nothing to wait for."""
        self._problems.pop(pod_key, None)

    def problems(self) -> Mapping[str, str]:
        """Pod key -> why it has no identity."""
        return self._problems
