"""The Backend contract (tests/identity_backend_contract.py) on the in-memory backend."""

from __future__ import annotations

from typing import Iterator

import pytest

from identity.backend import Backend
from identity.memory import MemoryBackend, MemoryStore
from identity.labels import LabelSet
from tests.identity_backend_contract import BackendContract, Expire, Pair, Plant


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()

    @pytest.fixture
    def pair(self, store: MemoryStore) -> Iterator[Pair]:
        a, b = MemoryBackend(store, "a"), MemoryBackend(store, "b")
        yield a, b
        a.close()
        b.close()

    @pytest.fixture
    def expire(self, store: MemoryStore) -> Expire:
        def end_lease(backend: Backend) -> None:
            assert isinstance(backend, MemoryBackend)
            store.expire_lease(backend.lease_id)
        return end_lease

    @pytest.fixture
    def plant(self, store: MemoryStore) -> Plant:
        def write(labels: LabelSet, number: int) -> None:
            with store.lock:
                store.put(store.claims, labels.key(), number)
        return write
