"""Flows of several nodes in time order.

Histories: each node's answer is complete and in time order, so they are merged
exactly (`merge_histories`). Followed streams never end, so a `SortBuffer` holds what
arrives for a moment and lets the oldest out when

  1. it holds more than `max_len` entries (a flood: ordering within the last max_len),
  2. nothing arrived for `drain_s` (a lull: everything goes), or
  3. the oldest waited `max_wait_s` since it arrived (a slow node's peers are not held
     back longer than that).

A slow node's flow that arrives after newer ones went out is sent at once, out of order,
never dropped. Not thread-safe: one follower's merging thread owns it.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Iterable, Iterator

MAX_LEN = 10_000
DRAIN_SECONDS = 0.2
MAX_WAIT_SECONDS = 1.0

Entry = tuple[int, bytes]     # (time in ns, a serialized GetFlowsResponse)


def merge_histories(histories: Iterable[list[Entry]]) -> Iterator[bytes]:
    """Each list in time order -> one sequence in time order (stable between nodes)."""
    for _, data in heapq.merge(*histories, key=lambda e: e[0]):
        yield data


class SortBuffer:
    def __init__(self, max_len: int = MAX_LEN, drain_s: float = DRAIN_SECONDS,
                 max_wait_s: float = MAX_WAIT_SECONDS) -> None:
        self.max_len = max_len
        self.drain_s = drain_s
        self.max_wait_s = max_wait_s
        self._heap: list[tuple[int, int, float, bytes]] = []
        self._seq = itertools.count()
        self._last_arrival = time.monotonic()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, time_ns: int, data: bytes, now: float | None = None) -> None:
        arrived = time.monotonic() if now is None else now
        heapq.heappush(self._heap, (time_ns, next(self._seq), arrived, data))
        self._last_arrival = arrived

    def ready(self, now: float | None = None) -> list[bytes]:
        """What may go out now, oldest first."""
        now = time.monotonic() if now is None else now
        heap = self._heap
        if heap and now - self._last_arrival >= self.drain_s:
            return self.drain()
        out = []
        while heap and (len(heap) > self.max_len or now - heap[0][2] >= self.max_wait_s):
            out.append(heapq.heappop(heap)[3])
        return out

    def drain(self) -> list[bytes]:
        out = [item[3] for item in sorted(self._heap)]
        self._heap.clear()
        return out
