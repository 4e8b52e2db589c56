"""What a source is: something that fills a Store and keeps it current until stopped."""

from __future__ import annotations

import threading
from typing import Protocol

from agent.store import Store


class Source(Protocol):
    name: str  # "lab:<dir>" or "kubernetes"

    def run(self, store: Store, stop: threading.Event) -> None:
        """Lists everything (store.replace_all(..., synced=True)), then follows changes
        with store.upsert / delete / reject until stop is set. Survives disconnects."""
