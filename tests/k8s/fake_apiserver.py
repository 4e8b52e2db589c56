"""A fake Kubernetes API server that speaks the real wire protocol, on loopback.

The real `kubernetes` client talks to it over HTTP/1.1 exactly as it talks to a
kube-apiserver: discovery (/version, /api, /apis), `*List` responses carrying
metadata.resourceVersion, and `?watch=1` answered with a chunked stream of
newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR). Tests drive
the cluster through a Python API that emits events to open watches, and inject the
faults an agent must survive:

    server.apply(doc) / server.delete(kind, name, namespace)   changes, as events
    server.send_bookmark()         BOOKMARK to watches that allowed them
    server.drop_watches()          cut every watch connection without a final chunk
    server.expire_watches()        ERROR event, Status code 410 "Expired", then close
    server.compact(rv)             history up to rv forgotten: older watches get 410,
                                   and so do list continue tokens of older snapshots
    server.stop() / start()        the server goes away and comes back (state kept)
    server.fail(path, code)        requests on a path answer a Status error until heal(path)
    server.requests                every request, for asserting what the client asked
    server.install_crds() / uninstall_crds()   the Network Policy API's custom resources
                                   (ClusterNetworkPolicy v1alpha2, AdminNetworkPolicy and
                                   BaselineAdminNetworkPolicy v1alpha1): not served (404,
                                   absent from discovery) until installed, as on a cluster
                                   without their CRDs; uninstalling deletes their objects

One global, increasing resourceVersion orders every change, as etcd's revision does.
Watches from resourceVersion N replay the history after N, then follow live changes;
from "" or "0" they start with synthetic ADDED events for what exists.
Lists honour `limit` and `continue` as the API server does: each page comes from the
snapshot the first page was cut from, with `metadata.continue` (an opaque token) and
`remainingItemCount` while more remain.
"""

from __future__ import annotations

import base64
import copy
import json
import queue
import select
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Doc = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    kind: str
    group_version: str  # "v1" or "networking.k8s.io/v1"
    plural: str
    namespaced: bool
    crd: bool = False   # a custom resource: served only once its CRD is installed

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"


RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("Namespace", "v1", "namespaces", False),
    Resource("Pod", "v1", "pods", True),
    Resource("Node", "v1", "nodes", False),
    Resource("Service", "v1", "services", True),
    Resource("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True),
    Resource("ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2",
             "clusternetworkpolicies", False, crd=True),
    Resource("AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1",
             "adminnetworkpolicies", False, crd=True),
    Resource("BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1",
             "baselineadminnetworkpolicies", False, crd=True),
)}
GROUP_VERSIONS = sorted({r.group_version for r in RESOURCES.values()})
_BY_PATH = {(r.prefix, r.plural): r for r in RESOURCES.values()}


@dataclass(frozen=True)
class Event:
    rv: int
    type: str             # ADDED | MODIFIED | DELETED
    kind: str
    obj: Doc              # the object after the change (before it, for DELETED)
    old: Doc | None       # the object before a MODIFIED, for field-selector transitions


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; params hold the last value of each query key."""

    method: str
    path: str
    params: dict[str, str]
    time: float

    @property
    def is_watch(self) -> bool:
        return self.params.get("watch") in ("1", "true", "True")

    @property
    def resource_version(self) -> str | None:
        return self.params.get("resourceVersion")


def status(code: int, reason: str, message: str) -> Doc:
    """A metav1.Status, the body of every error the API server returns."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def _field(obj: Doc, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def _field_selector_matches(selector: str, obj: Doc) -> bool:
    """`a.b=v,c!=w` on dotted paths: what pods' spec.nodeName selectors need."""
    for term in filter(None, selector.split(",")):
        if "!=" in term:
            path, value = term.split("!=", 1)
            if _field(obj, path.strip()) == value.strip():
                return False
        else:
            path, value = term.replace("==", "=").split("=", 1)
            if _field(obj, path.strip()) != value.strip():
                return False
    return True


@dataclass(eq=False)
class _Watch:
    resource: Resource
    namespace: str | None
    field_selector: str
    bookmarks: bool
    queue: "queue.Queue[tuple[str, Doc | None]]" = field(default_factory=queue.Queue)

    def selects(self, kind: str, obj: Doc | None) -> bool:
        if obj is None or kind != self.resource.kind:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return _field_selector_matches(self.field_selector, obj)

    def offer(self, event: Event) -> None:
        """Queues what this watch sees of a change: a MODIFIED that moves an object
        into or out of the selection is an ADDED or a DELETED, as the API server does."""
        now, before = self.selects(event.kind, event.obj), self.selects(event.kind, event.old)
        if event.type == "MODIFIED" and now != before:
            kind = "ADDED" if now else "DELETED"
        elif now:
            kind = event.type
        else:
            return
        self.queue.put((kind, event.obj))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: "FakeApiServer"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked encoding, like the real server
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.api._connections.add(self.connection)

    def finish(self) -> None:
        self.server.api._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # a dropped connection has nothing left to flush

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.api._serve(self)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request log is kept in FakeApiServer.requests instead

    def send_json(self, code: int, body: Doc) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


class FakeApiServer:
    """See the module docstring. `gone_mode` is how a watch from a compacted
    resourceVersion is refused: "event" (HTTP 200 then an ERROR event, as the watch
    cache does) or "http" (HTTP 410 with a Status body)."""

    def __init__(self, port: int = 0, gone_mode: Literal["event", "http"] = "event",
                 default_watch_timeout: int = 1800) -> None:
        self.port = port or _free_port()
        self.gone_mode = gone_mode
        self.default_watch_timeout = default_watch_timeout
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Doc] = {}
        self._history: list[Event] = []
        self._rv = 1
        self._compacted = 0  # watches from a resourceVersion below this get 410
        self._watches: set[_Watch] = set()
        self._requests: list[Request] = []
        self._connections: set[socket.socket] = set()
        self._failing: dict[str, int] = {}
        self._snapshots: dict[str, tuple[int, list[Doc]]] = {}   # paged lists in progress
        self._crds = False                                        # custom resources served
        self._http: _HTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeApiServer":
        http = _HTTPServer(("127.0.0.1", self.port), _Handler)
        http.api = self
        self._http = http
        threading.Thread(target=http.serve_forever, name="fake-apiserver",
                         kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Closes the listener and every connection, kept-alive ones included, so the
        client really finds nobody there. The cluster state survives a restart."""
        http, self._http = self._http, None
        if http is None:
            return
        self.drop_watches()
        http.shutdown()
        http.server_close()
        for conn in list(self._connections):
            _hard_close(conn)

    def __enter__(self) -> "FakeApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the cluster's truth ---------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def objects(self, kind: str) -> list[Doc]:
        with self._lock:
            return [copy.deepcopy(d) for (k, _, _), d in sorted(self._objects.items())
                    if k == kind]

    def get(self, kind: str, name: str, namespace: str | None = None) -> Doc | None:
        with self._lock:
            doc = self._objects.get(self._key(kind, name, namespace))
            return copy.deepcopy(doc) if doc else None

    def apply(self, doc: Doc) -> Doc:
        """Creates or replaces an object (ADDED or MODIFIED); returns it as stored."""
        doc = copy.deepcopy(doc)
        resource = RESOURCES[doc["kind"]]
        if not self.serves(resource):
            raise RuntimeError(f"no {doc['kind']} without its CRD: install_crds() first")
        doc.setdefault("apiVersion", resource.group_version)
        meta = doc.setdefault("metadata", {})
        if resource.namespaced:
            meta.setdefault("namespace", "default")
        key = self._key(doc["kind"], meta["name"], meta.get("namespace"))
        with self._lock:
            old = self._objects.get(key)
            meta["uid"] = old["metadata"]["uid"] if old else str(uuid.uuid4())
            meta.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                               time.gmtime()))
            self._emit("MODIFIED" if old else "ADDED", key, doc, old)
            return copy.deepcopy(doc)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> bool:
        """Deletes an object (DELETED, carrying its last state); False if absent."""
        key = self._key(kind, name, namespace)
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                return False
            self._emit("DELETED", key, copy.deepcopy(old), None)
            return True

    # -- faults and protocol events --------------------------------------------------
    def compact(self, upto: int | None = None) -> None:
        """Forgets history up to `upto` (default: now), as etcd compaction does."""
        with self._lock:
            self._compacted = self._rv if upto is None else upto
            self._history = [e for e in self._history if e.rv > self._compacted]
            self._snapshots = {k: v for k, v in self._snapshots.items()
                               if v[0] >= self._compacted}

    def send_bookmark(self) -> int:
        """BOOKMARK at the current resourceVersion to every watch that asked for them;
        returns that resourceVersion."""
        with self._lock:
            for w in self._watches:
                if w.bookmarks:
                    w.queue.put(("BOOKMARK", {
                        "kind": w.resource.kind, "apiVersion": w.resource.group_version,
                        "metadata": {"resourceVersion": str(self._rv)}}))
            return self._rv

    def expire_watches(self) -> None:
        """Ends every watch with an ERROR event carrying a 410 Expired Status."""
        with self._lock:
            for w in self._watches:
                w.queue.put(("ERROR", status(
                    410, "Expired", f"too old resource version (current {self._rv})")))

    def drop_watches(self) -> None:
        """Cuts every watch connection mid-stream: no terminating chunk, no error."""
        with self._lock:
            for w in self._watches:
                w.queue.put(("DROP", None))

    def install_crds(self) -> None:
        """The Network Policy API's CRDs appear: their kinds are served from now on."""
        with self._lock:
            self._crds = True

    def uninstall_crds(self) -> None:
        """The CRDs go away, and every object of their kinds with them (DELETED events
        first, as the API server's garbage collection of custom resources does)."""
        with self._lock:
            for key, doc in sorted(self._objects.items()):
                if RESOURCES[key[0]].crd:
                    self._emit("DELETED", key, copy.deepcopy(doc), None)
            self._crds = False
            for w in self._watches:
                if w.resource.crd:
                    w.queue.put(("DROP", None))

    def serves(self, resource: Resource) -> bool:
        with self._lock:
            return self._crds or not resource.crd

    def fail(self, path: str, code: int = 503) -> None:
        """Lists and watches on `path` (e.g. "/api/v1/pods") answer `code` until healed."""
        with self._lock:
            self._failing[path] = code

    def heal(self, path: str) -> None:
        with self._lock:
            self._failing.pop(path, None)

    @property
    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_watches >= count:
                return True
            time.sleep(0.01)
        return False

    @property
    def requests(self) -> list[Request]:
        with self._lock:
            return list(self._requests)

    # -- internals: state --------------------------------------------------------------
    @staticmethod
    def _key(kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
        ns = (namespace or "default") if RESOURCES[kind].namespaced else ""
        return kind, ns, name

    def _emit(self, type_: str, key: tuple[str, str, str], doc: Doc, old: Doc | None) -> None:
        # Called under the lock: the order of resourceVersions is the order watches see.
        self._rv += 1
        doc["metadata"]["resourceVersion"] = str(self._rv)
        if type_ == "DELETED":
            del self._objects[key]
        else:
            self._objects[key] = doc
        event = Event(self._rv, type_, key[0], copy.deepcopy(doc), old)
        self._history.append(event)
        for w in self._watches:
            w.offer(event)

    # -- internals: HTTP ---------------------------------------------------------------
    def _serve(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        request = Request("GET", url.path, params, time.monotonic())
        with self._lock:
            self._requests.append(request)
        path = url.path.rstrip("/")
        with self._lock:
            failing = self._failing.get(path)
        if failing is not None:
            h.send_json(failing, status(failing, "ServiceUnavailable" if failing == 503
                                        else "InternalError", f"injected failure on {path}"))
            return
        discovery = self._discovery(path)
        if discovery is not None:
            h.send_json(200, discovery)
            return
        route = _route(path)
        if route is None:
            h.send_json(404, status(404, "NotFound", f"the server could not find {path}"))
            return
        resource, namespace, name = route
        if not self.serves(resource):
            h.send_json(404, status(404, "NotFound", f"the server could not find the "
                                    f"requested resource ({resource.plural})"))
            return
        if name is not None:
            doc = self.get(resource.kind, name, namespace)
            if doc is None:
                h.send_json(404, status(404, "NotFound",
                                        f'{resource.plural} "{name}" not found'))
            else:
                h.send_json(200, doc)
        elif request.is_watch:
            self._watch(h, resource, namespace, params)
        else:
            token = params.get("continue", "")
            try:
                rv, items, start = (self._continued(token) if token else
                                    self._snapshot(resource, namespace,
                                                   params.get("fieldSelector", "")))
            except KeyError:
                h.send_json(410, status(410, "Expired", "The provided continue parameter is "
                                        "too old to display a consistent list result."))
                return
            limit = int(params.get("limit") or 0)
            h.send_json(200, self._page(resource, rv, items, start, limit))

    def _snapshot(self, resource: Resource, namespace: str | None,
                  selector: str) -> tuple[int, list[Doc], int]:
        probe = _Watch(resource, namespace, selector, False)
        with self._lock:
            items = [copy.deepcopy(d) for (k, _, _), d in sorted(self._objects.items())
                     if probe.selects(k, d)]
            rv = self._rv
        for item in items:
            # The API server leaves kind and apiVersion off list items.
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return rv, items, 0

    def _continued(self, token: str) -> tuple[int, list[Doc], int]:
        """The snapshot a continue token points at; KeyError when compacted or unknown."""
        try:
            ref = json.loads(base64.urlsafe_b64decode(token))
            snapshot_id, start = str(ref["snapshot"]), int(ref["start"])
        except (ValueError, KeyError, TypeError):
            raise KeyError(token) from None
        with self._lock:
            rv, items = self._snapshots[snapshot_id]
        return rv, items, start

    def _page(self, resource: Resource, rv: int, items: list[Doc], start: int,
              limit: int) -> Doc:
        end = len(items) if limit <= 0 else min(len(items), start + limit)
        metadata: Doc = {"resourceVersion": str(rv)}
        snapshot_id = f"{rv}-{id(items)}"
        if end == len(items):
            with self._lock:
                self._snapshots.pop(snapshot_id, None)   # the last page: list complete
        else:
            with self._lock:
                self._snapshots[snapshot_id] = (rv, items)
            ref = json.dumps({"snapshot": snapshot_id, "start": end}).encode()
            metadata["continue"] = base64.urlsafe_b64encode(ref).decode()
            metadata["remainingItemCount"] = len(items) - end
        return {"kind": f"{resource.kind}List", "apiVersion": resource.group_version,
                "metadata": metadata, "items": copy.deepcopy(items[start:end])}

    def _watch(self, h: _Handler, resource: Resource, namespace: str | None,
               params: dict[str, str]) -> None:
        w = _Watch(resource, namespace, params.get("fieldSelector", ""),
                   params.get("allowWatchBookmarks") in ("1", "true", "True"))
        since = params.get("resourceVersion", "")
        timeout = float(params.get("timeoutSeconds") or self.default_watch_timeout)
        with self._lock:
            # Replay and registration under one lock: no change falls between them.
            if since in ("", "0"):
                for (kind, _, _), doc in sorted(self._objects.items()):
                    if w.selects(kind, doc):
                        w.queue.put(("ADDED", copy.deepcopy(doc)))
            elif int(since) < self._compacted:
                gone = status(410, "Expired", f"too old resource version: {since} "
                                              f"({self._compacted})")
                if self.gone_mode == "http":
                    h.send_json(410, gone)
                    return
                w.queue.put(("ERROR", gone))
            else:
                for event in self._history:
                    if event.rv > int(since):
                        w.offer(event)
            self._watches.add(w)
        try:
            self._stream(h, w, time.monotonic() + timeout)
        finally:
            with self._lock:
                self._watches.discard(w)

    def _stream(self, h: _Handler, w: _Watch, deadline: float) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.flush()
        h.close_connection = True  # one watch per connection keeps the bookkeeping simple
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    type_, obj = w.queue.get(timeout=min(left, 0.1))
                except queue.Empty:
                    if _peer_closed(h.connection):
                        return
                    continue
                if type_ == "DROP":
                    _hard_close(h.connection)
                    return
                h.send_chunk(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
                if type_ == "ERROR":
                    break  # the API server ends a watch after an error
            h.wfile.write(b"0\r\n\r\n")  # timeoutSeconds reached: a clean end
            h.wfile.flush()
        except OSError:
            pass  # the client went away

    def _discovery(self, path: str) -> Doc | None:
        if path == "/version":
            return {"major": "1", "minor": "31", "gitVersion": "v1.31.0-membrane-fake",
                    "gitCommit": "0" * 40, "gitTreeState": "clean",
                    "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
                    "compiler": "gc", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]}
        served = [gv for gv in GROUP_VERSIONS if gv != "v1" and any(
            r.group_version == gv and self.serves(r) for r in RESOURCES.values())]
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for gv in served:
                groups.setdefault(gv.split("/")[0], []).append(gv)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": group,
                "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}
                             for gv in versions],
                "preferredVersion": {"groupVersion": versions[-1],
                                     "version": versions[-1].split("/")[1]},
            } for group, versions in groups.items()]}
        for gv in ["v1", *served]:
            prefix = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            if path == prefix:
                return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                        "resources": [{"name": r.plural, "singularName": r.kind.lower(),
                                       "namespaced": r.namespaced, "kind": r.kind,
                                       "verbs": ["get", "list", "watch"]}
                                      for r in RESOURCES.values() if r.group_version == gv
                                      and self.serves(r)]}
        return None


def _route(path: str) -> tuple[Resource, str | None, str | None] | None:
    """path -> (resource, namespace, name) for the collection and object paths."""
    for prefix in ["/api/v1", *(f"/apis/{gv}" for gv in GROUP_VERSIONS if gv != "v1")]:
        if not path.startswith(prefix + "/"):
            continue
        parts = path[len(prefix) + 1:].split("/")
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        resource = _BY_PATH.get((prefix, parts[0]))
        if resource is None or len(parts) > 2:
            return None
        if namespace is not None and not resource.namespaced:
            return None
        return resource, namespace, parts[1] if len(parts) == 2 else None
    return None


def _peer_closed(conn: socket.socket) -> bool:
    """True when the client hung up (readable with nothing to read)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def _hard_close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
