"""List-then-watch for one kind, as client-go's reflector does, with the `kubernetes` client.

    list in pages of `page_size` (limit/continue, one consistent snapshot at R)
                             -> sink.listed(all documents)
    watch from R, allowWatchBookmarks, timeoutSeconds
        ADDED/MODIFIED/DELETED -> sink.changed(...); R = the object's resourceVersion
        BOOKMARK               -> R = the bookmark's resourceVersion (nothing to apply)
        clean end (timeout)    -> watch again from R at once
        dropped / error        -> watch again from R after a capped, jittered backoff
        410 Gone               -> list again: history after R is gone, only a relist
                                  can say what was deleted meanwhile
    an optional kind (a CRD: ClusterNetworkPolicy, AdminNetworkPolicy, ...) answering
    404 Not Found is not served by this cluster: it lists as empty (so the store still
    syncs), and is looked for again every `absent_recheck` seconds; once its CRD is
    installed it is listed and watched like any kind, and a 404 later (the CRD removed)
    empties it again

Pages keep one response (and the API server's and etcd's work per request) bounded in a
large cluster, as client-go's reflector pages its lists; a continue token that expired
mid-list (410 Expired) restarts the list from its first page at once.

Documents reach the sink as the API server sent them (camelCase dicts, `kind` and
`apiVersion` filled in: list items come without them). The client's model classes are
bypassed on purpose: they validate strictly, so one object they refuse would abort the
whole list or stream, while our loader rejects just that object and names the field.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

Doc = dict[str, Any]

# A watch that ends cleanly this fast with no event is treated as a failure, so a
# misbehaving server or proxy cannot make us spin.
_MIN_HEALTHY_WATCH = 1.0


class Sink(Protocol):
    def listed(self, kind: str, docs: list[Doc]) -> None:
        """Every object of `kind` (an initial list or a relist)."""

    def changed(self, kind: str, event_type: str, doc: Doc) -> None:
        """One ADDED, MODIFIED or DELETED event."""


@dataclass(frozen=True)
class KindSpec:
    kind: str                       # "Pod"
    api_version: str                # "v1", "networking.k8s.io/v1"
    list_call: Callable[..., Any]   # a bound list method, e.g. list_pod_for_all_namespaces
    optional: bool = False          # a CRD the cluster may not have: 404 lists as empty


@dataclass
class Backoff:
    """Capped exponential backoff with "equal jitter" (half fixed, half random): grows
    so a down API server is not hammered, jitters so many agents reconnecting to a
    recovering one do not arrive in lockstep."""

    initial: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return ceiling * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        self.failures = 0


@dataclass
class WatchSettings:
    watch_timeout: int = 300         # timeoutSeconds asked of the server, randomized up to 2x
    connect_timeout: float = 10.0
    read_grace: float = 30.0         # read timeout = timeoutSeconds + this: a server that
                                     # goes silent without closing is noticed
    backoff_initial: float = 0.5
    backoff_cap: float = 30.0
    page_size: int = 500             # objects per list request (client-go's default)
    absent_recheck: float = 30.0     # seconds between looks for an optional kind's CRD


class KindWatcher:
    """Keeps one kind current in the sink until `stop` is set. One thread each."""

    def __init__(self, spec: KindSpec, sink: Sink, stop: threading.Event,
                 settings: WatchSettings | None = None) -> None:
        self.spec = spec
        self.sink = sink
        self.stop = stop
        self.settings = settings or WatchSettings()
        self.backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_cap)
        self.resource_version = ""   # the last one seen: where a reconnect resumes
        self.lists = 0               # initial list + relists, for status and tests
        self.absent = False          # an optional kind the server does not serve (404)
        self._watch: watch.Watch | None = None

    # -- thread body -----------------------------------------------------------------
    def run(self) -> None:
        kind = self.spec.kind
        while not self.stop.is_set():
            try:
                docs, self.resource_version = self._list()
            except ApiException as e:
                if e.status == 404 and self.spec.optional:
                    self._not_served()
                    continue
                if self._retry_later(e):
                    return
                continue
            except Exception as e:  # noqa: BLE001 (any failure: retry, never die)
                if self._retry_later(e):
                    return
                continue
            if self.absent:
                log.info("kubernetes: %s is served now; following it", kind)
                self.absent = False
            self.backoff.reset()
            self.lists += 1
            log.info("kubernetes: listed %d %ss at resourceVersion %s%s", len(docs), kind,
                     self.resource_version, " (relist)" if self.lists > 1 else "")
            self.sink.listed(kind, docs)
            if not self._follow():
                return

    def _not_served(self) -> None:
        """An optional kind answered 404: empty until its CRD appears."""
        self.backoff.reset()   # the server answered: it is not a failure to back off from
        if not self.absent:
            log.info("kubernetes: %s is not served (its CRD is not installed): none "
                     "enforced; looking again every %.0fs", self.spec.kind,
                     self.settings.absent_recheck)
            self.absent = True
            self.sink.listed(self.spec.kind, [])
        self.stop.wait(self.settings.absent_recheck)

    def _retry_later(self, e: Exception) -> bool:
        """Waits out the backoff after a failed list; True when stopping instead."""
        if self.stop.is_set():
            return True
        delay = self.backoff.next_delay()
        log.warning("kubernetes: listing %ss failed (%s); retrying in %.1fs",
                    self.spec.kind, _describe(e), delay)
        self.stop.wait(delay)
        return self.stop.is_set()

    def interrupt(self) -> None:
        """Unblocks a watch waiting for data (the client shuts its socket down)."""
        current = self._watch
        if current is not None:
            current.stop()  # type: ignore[no-untyped-call]  # the client is untyped

    # -- internals -------------------------------------------------------------------
    def _list(self) -> tuple[list[Doc], str]:
        """Every page of one list; restarts from the first page when the snapshot the
        continue token points at has been compacted away (410 Expired)."""
        while True:
            try:
                return self._list_pages()
            except ApiException as e:
                if e.status != 410 or self.stop.is_set():
                    raise
                log.info("kubernetes: %s list continue token expired; listing again",
                         self.spec.kind)

    def _list_pages(self) -> tuple[list[Doc], str]:
        docs: list[Doc] = []
        token = ""
        while True:
            extra = {"_continue": token} if token else {}
            resp = self.spec.list_call(limit=self.settings.page_size, _preload_content=False,
                                       _request_timeout=(self.settings.connect_timeout,
                                                         self.settings.connect_timeout
                                                         + self.settings.read_grace),
                                       **extra)
            try:
                body = json.loads(resp.data)
            finally:
                resp.release_conn()
            docs += [self._document(item) for item in body.get("items") or []]
            metadata = body.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return docs, str(metadata["resourceVersion"])

    def _document(self, obj: Doc) -> Doc:
        return {**obj, "kind": self.spec.kind, "apiVersion": self.spec.api_version}

    def _follow(self) -> bool:
        """Watches until stop (False) or until history is gone and a relist is due (True)."""
        kind = self.spec.kind
        while not self.stop.is_set():
            # return_type "object": events arrive as plain dicts (see the module docstring).
            self._watch = watch.Watch(return_type="object")  # type: ignore[no-untyped-call]
            timeout = random.randint(self.settings.watch_timeout, 2 * self.settings.watch_timeout)
            began, events = time.monotonic(), 0
            stream: Any = None
            try:
                stream = self._watch.stream(  # type: ignore[no-untyped-call]
                    self.spec.list_call, resource_version=self.resource_version,
                    allow_watch_bookmarks=True, timeout_seconds=timeout,
                    _request_timeout=(self.settings.connect_timeout,
                                      timeout + self.settings.read_grace))
                for event in stream:
                    events += 1
                    self._handle(event)
                    if self.stop.is_set():
                        return False
            except ApiException as e:
                # With timeoutSeconds set the client does not retry a 410 itself: it
                # raises it, whether it came as an ERROR event or as the HTTP status.
                if e.status == 410:
                    log.info("kubernetes: %s watch from resourceVersion %s expired (410 "
                             "Gone); relisting", kind, self.resource_version)
                    return True
                if e.status == 404 and self.spec.optional:
                    return True   # the CRD went away: the relist finds it empty
                error: Exception = e
            except Exception as e:  # noqa: BLE001 (dropped connection, timeout, ...)
                error = e
            else:
                if events or time.monotonic() - began >= _MIN_HEALTHY_WATCH:
                    self.backoff.reset()
                    continue  # timeoutSeconds reached: resume at once
                error = RuntimeError("watch ended at once with no event")
            finally:
                self._watch = None
                if stream is not None:
                    stream.close()  # releases the connection now, not at garbage collection
            if self.stop.is_set():
                return False
            if events:
                self.backoff.reset()  # the connection worked: start the backoff small
            delay = self.backoff.next_delay()
            log.warning("kubernetes: %s watch from resourceVersion %s broke (%s); "
                        "reconnecting in %.1fs", kind, self.resource_version,
                        _describe(error), delay)
            self.stop.wait(delay)
        return False

    def _handle(self, event: Doc) -> None:
        obj = event.get("raw_object") or event.get("object") or {}
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
            self.sink.changed(self.spec.kind, event["type"], self._document(obj))
        # Only after the change is applied: a reconnect must not skip an unapplied one.
        if rv:
            self.resource_version = str(rv)


def _describe(e: BaseException) -> str:
    if isinstance(e, ApiException):
        return f"HTTP {e.status} {e.reason}".strip()
    return f"{type(e).__name__}: {e}"[:300]
