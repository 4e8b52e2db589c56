"""The agent's threads: each runs one part's loop until the agent's stop event is set.

Every thread registers its own liveness check ("thread <name>": alive, or the agent is
stopping), so /healthz fails the moment one dies; a thread that dies with an exception
is logged with its traceback and kept in the error history, never silent.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from agent.health import ErrorHistory, HealthChecks

log = logging.getLogger("membrane.agent")

JOIN_TIMEOUT = 3.0   # seconds per thread at stop; the threads are daemons either way


class Workers:
    def __init__(self, stop: threading.Event, health: HealthChecks, errors: ErrorHistory) -> None:
        self._stop = stop
        self._health = health
        self._errors = errors
        self._threads: list[threading.Thread] = []

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(name, target), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        self._health.add_liveness(f"thread {name}",
                                  lambda: thread.is_alive() or self._stop.is_set())

    def _guarded(self, name: str, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as err:  # a dead thread must be visible in status, not silent
                log.exception("thread %s died", name)
                self._errors.record(f"thread {name} died: {err}")
        return run

    def join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=JOIN_TIMEOUT)
