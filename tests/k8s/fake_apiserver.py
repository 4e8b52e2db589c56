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
                                   BaselineAdminNetworkPolicy v1alpha1, NETWORK_POLICY_API):
                                   not served (404) until installed, as on a cluster
                                   without their CRDs; uninstalling deletes their objects
    server.before(method, path, f) f() runs once, just before the next such request is
                                   answered: the interleaving a race test wants

Clients also write, as they would to the real server: POST creates (201, or 409
AlreadyExists when the name is taken), PUT replaces (409 Conflict when the body's
metadata.resourceVersion or uid is not the stored one; custom resources must carry a
resourceVersion, as apiextensions requires), DELETE deletes (409 Conflict when the
DeleteOptions' preconditions uid / resourceVersion do not hold). `register_crd(doc)`
serves the resource a CustomResourceDefinition manifest defines, and validates every
object written to it against the CRD's openAPIV3Schema (422 Invalid), with unknown fields
refused where the real server would silently prune them: a field the schema forgets is a
test failure, not a lost write. Lists and watches honour `labelSelector` (`key`, `!key`,
`key=value`, `key!=value`) as well as `fieldSelector`.

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
from typing import Any, Callable, Literal
from urllib.parse import parse_qs, urlsplit

import jsonschema

Doc = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    kind: str
    group_version: str  # "v1" or "networking.k8s.io/v1"
    plural: str
    namespaced: bool
    # A custom resource's openAPIV3Schema (register_crd), None for built-in kinds.
    schema: Doc | None = field(default=None, compare=False)

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"

    @property
    def group(self) -> str:
        return self.group_version.rpartition("/")[0]

    @property
    def qualified(self) -> str:
        """`pods`, `leases.coordination.k8s.io`: how the API server names it in errors."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES: dict[str, Resource] = {r.kind: r for r in (
    Resource("Namespace", "v1", "namespaces", False),
    Resource("Pod", "v1", "pods", True),
    Resource("Node", "v1", "nodes", False),
    Resource("Service", "v1", "services", True),
    Resource("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True),
    Resource("Lease", "coordination.k8s.io/v1", "leases", True),
)}
# The Network Policy API's kinds, served by install_crds() (their schemas are not
# checked here: the agent's own validation of them is under test).
NETWORK_POLICY_API = (
    Resource("ClusterNetworkPolicy", "policy.networking.k8s.io/v1alpha2",
             "clusternetworkpolicies", False),
    Resource("AdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1",
             "adminnetworkpolicies", False),
    Resource("BaselineAdminNetworkPolicy", "policy.networking.k8s.io/v1alpha1",
             "baselineadminnetworkpolicies", False),
)


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


def _label_selector_matches(selector: str, obj: Doc) -> bool:
    """Equality and existence terms, comma-separated: `a`, `!a`, `a=v`, `a==v`, `a!=v`."""
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


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
    label_selector: str = ""
    queue: "queue.Queue[tuple[str, Doc | None]]" = field(default_factory=queue.Queue)

    def selects(self, kind: str, obj: Doc | None) -> bool:
        if obj is None or kind != self.resource.kind:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return (_field_selector_matches(self.field_selector, obj)
                and _label_selector_matches(self.label_selector, obj))

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
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body
    # until the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True
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
        self.server.api._serve(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.server.api._serve(self, "POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.server.api._serve(self, "PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.server.api._serve(self, "DELETE")

    def read_json(self) -> Doc | None:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return None
        body = json.loads(self.rfile.read(length))
        return body if isinstance(body, dict) else None

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
        self._before: dict[tuple[str, str], Callable[[], object]] = {}
        self._snapshots: dict[str, tuple[int, list[Doc]]] = {}   # paged lists in progress
        self._http: _HTTPServer | None = None
        self.resources: dict[str, Resource] = dict(RESOURCES)   # kind -> resource

    def register_crd(self, crd: Doc) -> Resource:
        """Serves the custom resource a CustomResourceDefinition manifest defines (its
        storage version), validating what is written against that version's schema."""
        spec = crd["spec"]
        (version,) = [v for v in spec["versions"] if v.get("storage")]
        resource = Resource(spec["names"]["kind"], f"{spec['group']}/{version['name']}",
                            spec["names"]["plural"], spec["scope"] == "Namespaced",
                            schema=_no_unknown_fields(version["schema"]["openAPIV3Schema"]))
        with self._lock:
            self.resources[resource.kind] = resource
        return resource

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
        resource = self.resources[doc["kind"]]
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

    def install_crds(self) -> None:
        """The Network Policy API's CRDs appear: their kinds are served from now on."""
        with self._lock:
            for resource in NETWORK_POLICY_API:
                self.resources[resource.kind] = resource

    def uninstall_crds(self) -> None:
        """The CRDs go away, and every object of their kinds with them (DELETED events
        first, as the API server's garbage collection of custom resources does); their
        watches end."""
        kinds = {r.kind for r in NETWORK_POLICY_API}
        with self._lock:
            for key, doc in sorted(self._objects.items()):
                if key[0] in kinds:
                    self._emit("DELETED", key, copy.deepcopy(doc), None)
            for kind in kinds:
                self.resources.pop(kind, None)
            for w in self._watches:
                if w.resource.kind in kinds:
                    w.queue.put(("DROP", None))

    def drop_watches(self) -> None:
        """Cuts every watch connection mid-stream: no terminating chunk, no error."""
        with self._lock:
            for w in self._watches:
                w.queue.put(("DROP", None))

    def fail(self, path: str, code: int = 503) -> None:
        """Requests on `path` (e.g. "/api/v1/pods": lists, watches, creates) answer `code`
        until healed."""
        with self._lock:
            self._failing[path] = code

    def before(self, method: str, path: str, action: Callable[[], object]) -> None:
        """Runs action once, when the next `method` request on `path` arrives, before it
        is answered (action may itself call the server)."""
        with self._lock:
            self._before[(method, path.rstrip("/"))] = action

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
    def _key(self, kind: str, name: str, namespace: str | None) -> tuple[str, str, str]:
        ns = (namespace or "default") if self.resources[kind].namespaced else ""
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
    def _serve(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        request = Request(method, url.path, params, time.monotonic())
        body = h.read_json() if method in ("POST", "PUT", "DELETE") else None
        with self._lock:
            self._requests.append(request)
        path = url.path.rstrip("/")
        with self._lock:
            action = self._before.pop((method, path), None)
        if action is not None:
            action()
        with self._lock:
            failing = self._failing.get(path)
        if failing is not None:
            h.send_json(failing, status(failing, "ServiceUnavailable" if failing == 503
                                        else "InternalError", f"injected failure on {path}"))
            return
        discovery = self._discovery(path) if method == "GET" else None
        if discovery is not None:
            h.send_json(200, discovery)
            return
        route = self._route(path)
        if route is None:
            h.send_json(404, status(404, "NotFound", f"the server could not find {path}"))
            return
        resource, namespace, name = route
        if method != "GET":
            code, answer = self._write(method, resource, namespace, name, body)
            h.send_json(code, answer)
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
                                                   params.get("fieldSelector", ""),
                                                   params.get("labelSelector", "")))
            except KeyError:
                h.send_json(410, status(410, "Expired", "The provided continue parameter is "
                                        "too old to display a consistent list result."))
                return
            limit = int(params.get("limit") or 0)
            h.send_json(200, self._page(resource, rv, items, start, limit))

    def _snapshot(self, resource: Resource, namespace: str | None, selector: str,
                  label_selector: str = "") -> tuple[int, list[Doc], int]:
        probe = _Watch(resource, namespace, selector, False, label_selector)
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
                   params.get("allowWatchBookmarks") in ("1", "true", "True"),
                   params.get("labelSelector", ""))
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
        with self._lock:
            resources = list(self.resources.values())
        if path == "/apis":
            versions = sorted({r.group_version for r in resources if r.group})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
                "name": gv.split("/")[0],
                "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]},
            } for gv in versions]}
        for gv in {r.group_version for r in resources}:
            prefix = "/api/v1" if gv == "v1" else f"/apis/{gv}"
            if path == prefix:
                return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                        "resources": [{"name": r.plural, "singularName": r.kind.lower(),
                                       "namespaced": r.namespaced, "kind": r.kind,
                                       "verbs": ["create", "delete", "get", "list",
                                                 "update", "watch"]}
                                      for r in resources if r.group_version == gv]}
        return None

    def _route(self, path: str) -> tuple[Resource, str | None, str | None] | None:
        """path -> (resource, namespace, name) for the collection and object paths."""
        parts = path.split("/")[1:]
        if parts[:2] == ["api", "v1"]:
            prefix, parts = "/api/v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            prefix, parts = f"/apis/{parts[1]}/{parts[2]}", parts[3:]
        else:
            return None
        namespace = None
        if len(parts) >= 3 and parts[0] == "namespaces":
            namespace, parts = parts[1], parts[2:]
        with self._lock:
            by_path = {(r.prefix, r.plural): r for r in self.resources.values()}
        resource = by_path.get((prefix, parts[0])) if parts else None
        if resource is None or len(parts) > 2:
            return None
        if namespace is not None and not resource.namespaced:
            return None
        return resource, namespace, parts[1] if len(parts) == 2 else None

    # -- internals: writes -------------------------------------------------------------
    def _write(self, method: str, resource: Resource, namespace: str | None,
               name: str | None, body: Doc | None) -> tuple[int, Doc]:
        """POST, PUT or DELETE, answered as the API server does: (HTTP code, body)."""
        if resource.namespaced and namespace is None:
            return 405, status(405, "MethodNotAllowed", f"{resource.plural} are namespaced")
        if method == "POST":
            if name is not None or body is None:
                return 405, status(405, "MethodNotAllowed", "POST goes to the collection")
            return self._create(resource, namespace, body)
        if name is None:
            return 405, status(405, "MethodNotAllowed", f"{method} needs an object name")
        if method == "PUT":
            if body is None:
                return 400, status(400, "BadRequest", "PUT needs the object")
            return self._replace(resource, namespace, name, body)
        return self._remove(resource, namespace, name, body or {})

    def _create(self, resource: Resource, namespace: str | None,
                doc: Doc) -> tuple[int, Doc]:
        doc = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            return 422, status(422, "Invalid", "metadata.name: Required value")
        if resource.namespaced:
            meta["namespace"] = namespace
        doc.setdefault("kind", resource.kind)
        doc.setdefault("apiVersion", resource.group_version)
        invalid = _invalid(resource, doc)
        if invalid:
            return 422, invalid
        key = self._key(resource.kind, name, namespace)
        with self._lock:
            if key in self._objects:
                return 409, status(409, "AlreadyExists",
                                   f'{resource.qualified} "{name}" already exists')
            meta.update(uid=str(uuid.uuid4()), generation=1,
                        creationTimestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            self._emit("ADDED", key, doc, None)
            return 201, copy.deepcopy(doc)

    def _replace(self, resource: Resource, namespace: str | None, name: str,
                 doc: Doc) -> tuple[int, Doc]:
        doc = copy.deepcopy(doc)
        meta = doc.setdefault("metadata", {})
        if meta.get("name", name) != name:
            return 400, status(400, "BadRequest", "the name in the body is not the URL's")
        meta["name"] = name
        if resource.namespaced:
            meta["namespace"] = namespace
        doc.setdefault("kind", resource.kind)
        doc.setdefault("apiVersion", resource.group_version)
        invalid = _invalid(resource, doc)
        if invalid:
            return 422, invalid
        key = self._key(resource.kind, name, namespace)
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                return 404, status(404, "NotFound", f'{resource.qualified} "{name}" not found')
            rv = meta.get("resourceVersion")
            if not rv and resource.schema is not None:
                # apiextensions allows no unconditional update of a custom resource
                return 422, status(422, "Invalid", f'{resource.qualified} "{name}" is '
                                   "invalid: metadata.resourceVersion: Invalid value: 0x0: "
                                   "must be specified for an update")
            stale = rv and rv != old["metadata"]["resourceVersion"]
            if stale or meta.get("uid", old["metadata"]["uid"]) != old["metadata"]["uid"]:
                return 409, _conflict(resource, name, "the object has been modified; please "
                                      "apply your changes to the latest version and try again")
            meta["uid"] = old["metadata"]["uid"]
            meta["creationTimestamp"] = old["metadata"]["creationTimestamp"]
            generation = int(old["metadata"].get("generation", 1))
            meta["generation"] = generation + (doc.get("spec") != old.get("spec"))
            self._emit("MODIFIED", key, doc, old)
            return 200, copy.deepcopy(doc)

    def _remove(self, resource: Resource, namespace: str | None, name: str,
                options: Doc) -> tuple[int, Doc]:
        key = self._key(resource.kind, name, namespace)
        want = options.get("preconditions") or {}
        with self._lock:
            old = self._objects.get(key)
            if old is None:
                return 404, status(404, "NotFound", f'{resource.qualified} "{name}" not found')
            for field_name in ("uid", "resourceVersion"):
                have = old["metadata"][field_name]
                if want.get(field_name) is not None and want[field_name] != have:
                    label = "UID" if field_name == "uid" else "ResourceVersion"
                    return 409, _conflict(resource, name, (
                        f"Precondition failed: {label} in precondition: {want[field_name]}, "
                        f"{label} in object meta: {have}"))
            self._emit("DELETED", key, copy.deepcopy(old), None)
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                         "status": "Success", "details": {
                             "name": name, "group": resource.group,
                             "kind": resource.plural, "uid": old["metadata"]["uid"]}}


def _conflict(resource: Resource, name: str, why: str) -> Doc:
    return status(409, "Conflict", f'Operation cannot be fulfilled on {resource.qualified} '
                                   f'"{name}": {why}')


def _invalid(resource: Resource, doc: Doc) -> Doc | None:
    """A 422 Status when doc breaks the resource's schema (custom resources only)."""
    if resource.schema is None:
        return None
    errors = sorted(jsonschema.Draft7Validator(resource.schema).iter_errors(doc),
                    key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    causes = [{"field": ".".join(str(p) for p in e.absolute_path), "message": e.message}
              for e in errors]
    return status(422, "Invalid", f'{resource.kind} "{doc["metadata"].get("name")}" is '
                  "invalid: " + "; ".join(f"{c['field']}: {c['message']}" for c in causes))


def _no_unknown_fields(schema: Doc) -> Doc:
    """The schema with unknown fields refused wherever the API server would prune them
    (objects with `properties` and no x-kubernetes-preserve-unknown-fields)."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.get("properties", {}).values():
            walk(value)
        walk(node.get("items"))
        walk(node.get("additionalProperties"))

    walk(out)
    return out


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
