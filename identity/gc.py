"""Reference counts with a grace period: when an unused identity may really be freed.

A pod being replaced drops its identity a moment before its successor takes it again;
freeing the number in between would give the successor a new number and churn every
policy map that mentions it. So an identity nobody references only becomes *expired*
after `grace_seconds`, and the owner frees it in `collect_garbage`.

The clock is injected (monotonic by default) so tests drive time by hand.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)

Clock = Callable[[], float]


class RefTable(Generic[K]):
    """Per-process reference counts; unreferenced keys remember since when.

    Thread-safe on its own, but owners usually hold their own lock around a sequence
    of calls so that counts and the owner's data change together.
    """

    def __init__(self, grace_seconds: float, clock: Clock) -> None:
        if grace_seconds < 0:
            raise ValueError(f"grace_seconds must be >= 0, not {grace_seconds}")
        self.grace_seconds = grace_seconds
        self._clock = clock
        self._counts: dict[K, int] = {}
        self._unused_since: dict[K, float] = {}
        self._lock = threading.Lock()

    def take(self, key: K) -> int:
        """One more reference; ends any grace period. Returns the new count."""
        with self._lock:
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
            self._unused_since.pop(key, None)
            return count

    def drop(self, key: K) -> int:
        """One reference less; at zero the grace period starts. Returns the new count."""
        with self._lock:
            count = self._counts.get(key, 0)
            if count <= 0:
                raise KeyError(key)
            if count == 1:
                del self._counts[key]
                self._unused_since[key] = self._clock()
                return 0
            self._counts[key] = count - 1
            return count - 1

    def count(self, key: K) -> int:
        with self._lock:
            return self._counts.get(key, 0)

    def track_unused(self, key: K) -> None:
        """A key known but unreferenced (e.g. loaded from disk): its grace starts now."""
        with self._lock:
            if key not in self._counts:
                self._unused_since.setdefault(key, self._clock())

    def expired(self) -> list[K]:
        """Unreferenced keys whose grace period is over."""
        now = self._clock()
        with self._lock:
            return [k for k, since in self._unused_since.items()
                    if now - since >= self.grace_seconds]

    def forget(self, key: K) -> None:
        with self._lock:
            self._counts.pop(key, None)
            self._unused_since.pop(key, None)

    def referenced(self) -> dict[K, int]:
        with self._lock:
            return dict(self._counts)
