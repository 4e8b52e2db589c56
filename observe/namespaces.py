"""The namespaces GetNamespaces reports: those of pods in flows seen in the last hour.

Told about one flow per kind of flow (FlowObserver counts a batch by kind), so the cost
is per kind, not per packet. Thread-safe.
"""

from __future__ import annotations

import threading
import time

from observe.gen.flow import flow_pb2 as fpb

WINDOW_S = 3600.0   # Hubble's: namespaces of flows in the last hour


class NamespaceTracker:
    def __init__(self, window_s: float = WINDOW_S) -> None:
        self.window_s = window_s
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def saw(self, flow: fpb.Flow, now: float | None = None) -> None:
        when = time.monotonic() if now is None else now
        with self._lock:
            for ep in (flow.source, flow.destination):
                if ep.namespace:
                    self._seen[ep.namespace] = when

    def names(self, now: float | None = None) -> list[str]:
        """Sorted; namespaces not seen within the window are forgotten."""
        when = time.monotonic() if now is None else now
        with self._lock:
            for ns in [ns for ns, t in self._seen.items() if when - t > self.window_s]:
                del self._seen[ns]
            return sorted(self._seen)
