"""The source's thread: a Source (the lab's store directory, the Kubernetes watch)
filling the Store until the agent stops.

The feed owns the readiness check "synced": the source's initial list is in the store.
Until then the regenerator enforces nothing new (agent.regeneration).
"""

from __future__ import annotations

import threading

from agent.health import HealthChecks
from agent.sources.base import Source
from agent.store import Store


class SourceFeed:
    def __init__(self, source: Source, store: Store, stop: threading.Event,
                 health: HealthChecks) -> None:
        self.source = source
        self._store = store
        self._stop = stop
        health.add_readiness("synced", lambda: store.synced)

    @property
    def name(self) -> str:
        return self.source.name

    def run(self) -> None:
        self.source.run(self._store, self._stop)
