"""Helpers the identity allocator tests share (unit, CRD and etcd alike): label sets in
the default namespace, a clock the test moves, nodes racing in threads, and waiting for
what another thread or process does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from identity.cluster import ClusterAllocator
from identity.labels import LabelSet

W = TypeVar("W")
R = TypeVar("R")


def labels(*texts: str) -> LabelSet:
    """A pod's label set in namespace default."""
    return LabelSet.parse(["k8s:io.kubernetes.pod.namespace=default", *texts])


class FakeClock:
    """time.time as the test says: starts at `now`, moves by advance()."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def shared_and_own(agent: ClusterAllocator) -> tuple[int, int]:
    """What a racing node allocates: app=shared, the same on every node, then a label
    set of its own. Their numbers."""
    shared = agent.allocate(labels("app=shared"))
    return shared.id, agent.allocate(labels(f"app=own-{agent.node}")).id


def race(workers: Sequence[W], run: Callable[[W], R]) -> list[R]:
    """run(worker) for every worker, each in its own thread, released together by a
    barrier; their results in the workers' order. Fails with whatever a thread raised."""
    barrier = threading.Barrier(len(workers))
    results: dict[int, R] = {}
    errors: list[BaseException] = []

    def one(index: int, worker: W) -> None:
        try:
            barrier.wait()
            results[index] = run(worker)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=one, args=(i, w)) for i, w in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [results[i] for i in range(len(workers))]


def wait_for(condition: Callable[[], bool], timeout: float = 8.0, what: str = "") -> None:
    """Polls condition until it holds; fails after timeout seconds, saying `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
