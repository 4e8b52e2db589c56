"""Garbage collection: expired conntrack entries, and identities nobody references.

Conntrack entries past their expiry are deleted every `conntrack_interval` seconds (the
datapath's LRU would evict them only under pressure). Identities unreferenced for longer
than the allocator's grace period are freed every `identity_interval` seconds: they left
every map at their last regeneration, and may now be handed out again. Both under the
agent's state lock, as every datapath and allocator change is.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Sequence

from agent.datapath.interface import Datapath
from identity.allocator import Allocator

log = logging.getLogger("membrane.agent")


class GarbageCollector:
    def __init__(self, datapath: Datapath, allocators: Sequence[Allocator],
                 lock: threading.RLock, stop: threading.Event, *,
                 conntrack_interval: float, identity_interval: float) -> None:
        self._datapath = datapath
        self._allocators = tuple(allocators)
        self._lock = lock
        self._stop = stop
        self._conntrack_interval = conntrack_interval
        self._identity_interval = identity_interval

    def run(self) -> None:
        last_identity_gc = time.monotonic()
        while not self._stop.wait(self._conntrack_interval):
            with self._lock:
                removed = self._datapath.collect_conntrack_garbage()
            if removed:
                log.debug("conntrack gc: %d expired entries removed", removed)
            if time.monotonic() - last_identity_gc > self._identity_interval:
                last_identity_gc = time.monotonic()
                self.collect_identities()

    def collect_identities(self) -> None:
        with self._lock:
            freed = []
            for allocator in self._allocators:
                freed += allocator.collect_garbage()
            for allocator in self._allocators:
                allocator.flush()
        for ident in freed:
            log.info("identity %d released after its grace period", ident.id)
