"""The etcd identity allocator: every node gets the same number for the same labels.

Keys under `prefix` (default /membrane/identities):

    labels/<sha256 of LabelSet.key()>  -> "<id>"                       who owns these labels
    ids/<id>                           -> {"labels": [[src,key,val]]}   what an id means
    refs/<id>/<node>                   -> ""  (on the node's lease)      who uses it
    unused/<id>                        -> {"since": t, "by": node}       grace period start

Allocation is one transaction that creates `labels/..` and `ids/<id>` together, guarded by
both not existing (create_revision == 0), and puts the caller's ref in the same breath: two
agents racing for the same labels get one number, and two label sets never share one (the
loser re-reads and retries with the next free number). Refs live on a lease per node kept
alive by a background thread, so a dead node's refs vanish with its lease. An identity with
no refs gets an `unused` marker; once the marker is older than the grace period any node's
`collect_garbage` deletes the three keys in a transaction that re-checks "still no refs"
(a range compare over refs/<id>/) and "marker unchanged", so a node re-taking the identity
meanwhile always wins.

When etcd is unreachable the agent keeps enforcing: lookups answer from the cache, and
allocating labels already known returns the cached number (the ref is written when etcd is
back). Only brand-new label sets fail. On reconnection, and whenever the lease was lost,
the background thread re-creates this node's refs (restoring an identity with its old
number if it was freed meanwhile). A periodic refresh, plus a direct read on a cache miss,
makes identities allocated by other nodes known here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.lease import Lease

from core.errors import AllocationError
from identity.allocator import Identity
from identity.gc import Clock
from identity.labels import SOURCE_CIDR, SOURCE_RESERVED, LabelSet
from identity.local import decode_labels, encode_labels, reserved_identity, reserved_identity_of
from identity.reserved import MAX_LABEL_IDENTITY, MIN_LABEL_IDENTITY

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/membrane/identities"
MAX_ATTEMPTS = 64   # transaction retries under contention before giving up

# Errors that mean "etcd is not there right now", as opposed to a refused request.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    etcd_errors.ConnectionFailedError,
    etcd_errors.ConnectionTimeoutError,
    requests.RequestException,
)


class EtcdUnreachable(Exception):
    """Internal: an etcd call could not be made. Callers turn it into fallback behaviour."""


class LeaseLost(Exception):
    """Internal: etcd no longer knows this node's lease (it expired)."""


# -- transaction building blocks (the v3 JSON gateway wants base64 keys and values) ------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _range_end(prefix: str) -> str:
    """The key just after every key starting with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _created(key: str, revision: int) -> dict[str, Any]:
    """Compare: key's create_revision equals revision (0: the key does not exist)."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL",
            "create_revision": revision}


def _none_under(prefix: str) -> dict[str, Any]:
    """Compare: no key starts with prefix (every existing key has create_revision > 0)."""
    return {"key": _b64(prefix), "range_end": _b64(_range_end(prefix)), "target": "CREATE",
            "result": "EQUAL", "create_revision": 0}


def _modified(key: str, revision: int) -> dict[str, Any]:
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision}


def _put(key: str, value: str, lease: int | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
    if lease is not None:
        request["lease"] = lease
    return {"request_put": request}


def _delete(key: str) -> dict[str, Any]:
    return {"request_delete_range": {"key": _b64(key)}}


def _labels_value(labels: LabelSet) -> str:
    return json.dumps({"labels": encode_labels(labels)}, sort_keys=True)


class EtcdAllocator:
    """The Allocator shared by every node of a cluster, backed by etcd v3 (etcd3gw)."""

    def __init__(self, endpoints: list[str], node: str, prefix: str = DEFAULT_PREFIX,
                 lease_ttl: int = 15, grace_seconds: float = 300.0, *,
                 refresh_interval: float = 5.0, request_timeout: float = 3.0,
                 clock: Clock = time.time, max_identity: int = MAX_LABEL_IDENTITY,
                 start: bool = True) -> None:
        if not endpoints:
            raise ValueError("EtcdAllocator needs at least one etcd endpoint")
        if not node or "/" in node:
            raise ValueError(f"node name {node!r} must be non-empty and contain no '/'")
        self.endpoints = list(endpoints)
        self.node = node
        self.prefix = prefix.rstrip("/")
        self.lease_ttl = lease_ttl
        self.grace_seconds = grace_seconds
        self.refresh_interval = refresh_interval
        self._clock = clock                # wall clock: markers are compared across nodes
        self._max_identity = max_identity
        self._clients = [self._make_client(e, request_timeout) for e in self.endpoints]
        self._current = 0                  # index of the endpoint in use

        # _io serialises every etcd conversation of this process (and protects _lease,
        # _dirty); _lock guards the cache and counts for the fast, never-blocking readers.
        self._io = threading.RLock()
        self._lock = threading.Lock()
        self._by_id: dict[int, LabelSet] = {}
        self._by_key: dict[str, int] = {}
        self._refs: dict[int, int] = {}    # this process's references
        self._lease: Lease | None = None
        self._dirty = True                 # etcd's refs may not match _refs: resync
        self._connected = False
        self._last_refresh = float("-inf")

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._heartbeat()                  # connect now if etcd is there; never raises
        if start:
            self._thread = threading.Thread(target=self._run, name=f"etcd-identities-{node}",
                                            daemon=True)
            self._thread.start()

    # -- connection -------------------------------------------------------------------
    @staticmethod
    def _make_client(endpoint: str, timeout: float) -> etcd3gw.Etcd3Client:
        url = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
        if not url.hostname:
            raise ValueError(f"etcd endpoint {endpoint!r}: expected http://HOST:PORT")
        # api_path given: etcd >= 3.4 serves /v3/, and discovery would be one more request.
        return etcd3gw.Etcd3Client(host=url.hostname, port=url.port or 2379,
                                   protocol=url.scheme or "http", timeout=timeout,
                                   api_path="/v3/")

    @property
    def connected(self) -> bool:
        """Whether the last conversation with etcd succeeded."""
        return self._connected

    def _call(self, fn: Callable[[etcd3gw.Etcd3Client], Any]) -> Any:
        """Runs fn on the current endpoint, failing over to the others once each."""
        last: BaseException | None = None
        for _ in range(len(self._clients)):
            try:
                result = fn(self._clients[self._current])
                self._connected = True
                return result
            except _UNREACHABLE as err:
                last = err
                self._current = (self._current + 1) % len(self._clients)
        self._connected = False
        self._dirty = True   # a write may or may not have landed: check everything later
        # etcd3gw's connection errors carry their text in detail_text, not in str().
        reason = getattr(last, "detail_text", None) or str(last) or type(last).__name__
        raise EtcdUnreachable(f"{', '.join(self.endpoints)}: {reason}")

    def _txn(self, compare: list[dict[str, Any]], success: list[dict[str, Any]]) -> bool:
        try:
            result = self._call(lambda c: c.transaction(
                {"compare": compare, "success": success, "failure": []}))
        except etcd_errors.Etcd3Exception as err:
            if "lease not found" in str(err.detail_text):
                raise LeaseLost() from None
            raise
        # The gateway omits false booleans: no "succeeded" key means the compare failed.
        return bool(result.get("succeeded", False))

    def _get(self, key: str) -> tuple[str, dict[str, Any]] | None:
        found = self._call(lambda c: c.get(key, metadata=True))
        if not found:
            return None
        value, meta = found[0]
        return value.decode(), dict(meta)

    def _scan(self, prefix: str, keys_only: bool = False) -> Iterator[tuple[str, str, int]]:
        """(key, value, mod_revision) of every key under prefix."""
        found = self._call(lambda c: c.get(prefix, metadata=True, range_end=_range_end(prefix),
                                           keys_only=keys_only or None))
        for value, meta in found:
            yield meta["key"].decode(), value.decode(), int(meta.get("mod_revision", 0))

    # -- keys -------------------------------------------------------------------------
    def _labels_key(self, labels: LabelSet) -> str:
        return f"{self.prefix}/labels/{hashlib.sha256(labels.key().encode()).hexdigest()}"

    def _id_key(self, number: int) -> str:
        return f"{self.prefix}/ids/{number}"

    def _refs_prefix(self, number: int) -> str:
        return f"{self.prefix}/refs/{number}/"

    def _ref_key(self, number: int) -> str:
        return f"{self._refs_prefix(number)}{self.node}"

    def _unused_key(self, number: int) -> str:
        return f"{self.prefix}/unused/{number}"

    # -- lease ------------------------------------------------------------------------
    def _lease_id(self) -> int:
        if self._lease is None:
            self._lease = self._call(lambda c: c.lease(self.lease_ttl))
            self._dirty = True   # refs on the old lease (if any) are gone
            log.info("etcd identities: node %s holds lease %x", self.node, self._lease.id)
        return int(self._lease.id)

    def _keep_lease_alive(self) -> None:
        if self._lease is None:
            self._lease_id()
            return
        lease = self._lease
        ttl = self._call(lambda c: lease.refresh())
        if ttl <= 0:
            log.warning("etcd identities: lease of node %s expired; taking a new one and "
                        "re-creating its references", self.node)
            self._lease = None
            self._lease_id()

    # -- allocation in etcd -----------------------------------------------------------
    def _take_ref_ops(self, number: int) -> list[dict[str, Any]]:
        return [_put(self._ref_key(number), "", self._lease_id()),
                _delete(self._unused_key(number))]

    def _allocate_remote(self, labels: LabelSet) -> int:
        """The cluster's number for labels, allocating one if needed; puts this node's ref."""
        labels_key = self._labels_key(labels)
        tried: set[int] = set()
        for _ in range(MAX_ATTEMPTS):
            found = self._get(labels_key)
            if found is not None:
                value, meta = found
                number = int(value)
                # Guarded by the labels key still being the one we read: not freed meanwhile.
                if self._txn([_created(labels_key, int(meta["create_revision"]))],
                             self._take_ref_ops(number)):
                    return number
                continue
            number = self._next_free(tried)
            tried.add(number)
            if self._txn([_created(labels_key, 0), _created(self._id_key(number), 0)],
                         [_put(labels_key, str(number)),
                          _put(self._id_key(number), _labels_value(labels)),
                          *self._take_ref_ops(number)]):
                log.info("etcd identities: %s allocated %d for %s", self.node, number,
                         labels.key())
                return number
            # Someone else took the labels (next read finds them) or the number (try the next).
        raise AllocationError(f"labels {labels.key()!r}: gave up after {MAX_ATTEMPTS} "
                              "conflicting transactions in etcd; too many agents racing?")

    def _next_free(self, skip: set[int]) -> int:
        used = {int(key.rsplit("/", 1)[1])
                for key, _, _ in self._scan(f"{self.prefix}/ids/", keys_only=True)}
        used |= skip
        number = MIN_LABEL_IDENTITY
        while number in used:
            number += 1
        if number > self._max_identity:
            raise AllocationError(
                f"no free label identity in etcd ({self.prefix}): all numbers from "
                f"{MIN_LABEL_IDENTITY} to {self._max_identity} are in use or within their "
                "grace period")
        return number

    def _with_lease(self, fn: Callable[[], Any]) -> Any:
        """Runs fn; if the lease vanished under it, takes a new one and runs it again."""
        try:
            return fn()
        except LeaseLost:
            self._lease = None
            self._dirty = True
            return fn()

    # -- the Allocator protocol -------------------------------------------------------
    def allocate(self, labels: LabelSet) -> Identity:
        reserved = reserved_identity_of(labels)
        if reserved is not None:
            return reserved
        if not labels:
            raise AllocationError("cannot allocate an identity for an empty label set")
        if any(label.source == SOURCE_CIDR for label in labels):
            raise AllocationError(f"labels {labels.key()!r}: CIDR labels get node-local "
                                  "identities from identity.cidr.CidrAllocator")
        with self._lock:
            # Fast path: already referenced here, so our ref is (or will be) in etcd.
            number = self._by_key.get(labels.key())
            if number is not None and self._refs.get(number, 0) > 0:
                self._refs[number] += 1
                return Identity(number, self._by_id[number])
        with self._io:
            try:
                number = self._with_lease(lambda: self._allocate_remote(labels))
            except EtcdUnreachable as err:
                return self._allocate_offline(labels, err)
            except etcd_errors.Etcd3Exception as err:
                raise AllocationError(f"etcd refused allocating {labels.key()!r}: "
                                      f"{err.detail_text or err}") from None
            with self._lock:
                self._remember(number, labels)
                self._refs[number] = self._refs.get(number, 0) + 1
                return Identity(number, labels)

    def _allocate_offline(self, labels: LabelSet, err: EtcdUnreachable) -> Identity:
        with self._lock:
            number = self._by_key.get(labels.key())
            if number is None:
                raise AllocationError(
                    f"etcd is unreachable ({err}): cannot allocate a new identity for "
                    f"{labels.key()!r}; known identities keep working and the agent catches "
                    "up when etcd is back") from None
            # The ref is written by the resync once etcd answers again (_dirty is set).
            self._refs[number] = self._refs.get(number, 0) + 1
            log.warning("etcd identities: etcd unreachable, using cached identity %d for %s",
                        number, labels.key())
            return Identity(number, self._by_id[number])

    def release(self, identity: Identity) -> None:
        if reserved_identity(identity.id) is not None:
            return
        with self._io:
            with self._lock:
                count = self._refs.get(identity.id, 0)
                if count <= 0:
                    raise AllocationError(f"identity {identity.id} ({identity.labels.key()!r}): "
                                          "released more often than allocated on this node")
                if count > 1:
                    self._refs[identity.id] = count - 1
                    return
                del self._refs[identity.id]
            try:
                self._drop_ref(identity.id)
            except EtcdUnreachable:
                pass  # _dirty is set: the resync deletes the ref when etcd is back

    def _drop_ref(self, number: int) -> None:
        self._call(lambda c: c.delete(self._ref_key(number)))
        # Last user anywhere? Start the grace period now rather than at the next GC.
        self._txn([_none_under(self._refs_prefix(number)), _created(self._unused_key(number), 0),
                   {"key": _b64(self._id_key(number)), "target": "CREATE", "result": "GREATER",
                    "create_revision": 0}],
                  [_put(self._unused_key(number), self._marker())])

    def _marker(self) -> str:
        return json.dumps({"since": self._clock(), "by": self.node})

    def lookup(self, identity_id: int) -> Identity | None:
        reserved = reserved_identity(identity_id)
        if reserved is not None:
            return reserved
        with self._lock:
            labels = self._by_id.get(identity_id)
        if labels is not None:
            return Identity(identity_id, labels)
        if not self._connected:
            return None
        # Allocated by another node since the last refresh: ask etcd directly.
        with self._io:
            try:
                found = self._get(self._id_key(identity_id))
            except EtcdUnreachable:
                return None
        if found is None:
            return None
        labels = decode_labels(json.loads(found[0])["labels"])
        with self._lock:
            self._remember(identity_id, labels)
        return Identity(identity_id, labels)

    def lookup_labels(self, labels: LabelSet) -> Identity | None:
        if any(label.source == SOURCE_RESERVED for label in labels):
            try:
                return reserved_identity_of(labels)
            except AllocationError:
                return None
        with self._lock:
            number = self._by_key.get(labels.key())
        if number is not None:
            return Identity(number, labels)
        if not self._connected:
            return None
        with self._io:
            try:
                found = self._get(self._labels_key(labels))
            except EtcdUnreachable:
                return None
        if found is None:
            return None
        number = int(found[0])
        with self._lock:
            self._remember(number, labels)
        return Identity(number, labels)

    def identities(self) -> list[Identity]:
        """Every identity of the cluster as of the last refresh (or the cache, offline)."""
        with self._lock:
            return [Identity(n, labels) for n, labels in sorted(self._by_id.items())]

    def references(self, identity_id: int) -> int:
        with self._lock:
            return self._refs.get(identity_id, 0)

    def _remember(self, number: int, labels: LabelSet) -> None:
        # Caller holds _lock.
        old = self._by_id.get(number)
        if old is not None and old != labels:
            self._by_key.pop(old.key(), None)
        self._by_id[number] = labels
        self._by_key[labels.key()] = number

    # -- garbage collection -----------------------------------------------------------
    def collect_garbage(self) -> list[Identity]:
        """Marks unreferenced identities, frees those marked longer than the grace period.

        Any node may run it at any time: every delete re-checks its conditions in etcd.
        Returns [] when etcd is unreachable (nothing can be freed without it).
        """
        with self._io:
            try:
                return self._collect()
            except EtcdUnreachable as err:
                log.warning("etcd identities: garbage collection skipped: %s", err)
                return []

    def _collect(self) -> list[Identity]:
        ids = {int(key.rsplit("/", 1)[1]): (value, rev)
               for key, value, rev in self._scan(f"{self.prefix}/ids/")}
        referenced = {int(key.split("/")[-2])
                      for key, _, _ in self._scan(f"{self.prefix}/refs/", keys_only=True)}
        markers = {int(key.rsplit("/", 1)[1]): (value, rev)
                   for key, value, rev in self._scan(f"{self.prefix}/unused/")}
        now = self._clock()
        freed: list[Identity] = []
        for number, (value, id_rev) in sorted(ids.items()):
            if number in referenced:
                continue
            unused_key = self._unused_key(number)
            guards = [_none_under(self._refs_prefix(number)), _modified(self._id_key(number), id_rev)]
            marker = markers.get(number)
            if marker is None:
                self._txn(guards + [_created(unused_key, 0)], [_put(unused_key, self._marker())])
                continue
            since = float(json.loads(marker[0]).get("since", now))
            if now - since < self.grace_seconds:
                continue
            labels = decode_labels(json.loads(value)["labels"])
            if self._txn(guards + [_modified(unused_key, marker[1])],
                         [_delete(self._id_key(number)), _delete(self._labels_key(labels)),
                          _delete(unused_key)]):
                log.info("etcd identities: %s freed %d (%s)", self.node, number, labels.key())
                freed.append(Identity(number, labels))
                with self._lock:
                    if not self._refs.get(number):
                        self._forget(number)
        for number, (_, rev) in markers.items():
            if number not in ids:   # an identity deleted by hand: drop its marker too
                self._txn([_modified(self._unused_key(number), rev)],
                          [_delete(self._unused_key(number))])
        return freed

    def _forget(self, number: int) -> None:
        # Caller holds _lock.
        labels = self._by_id.pop(number, None)
        if labels is not None and self._by_key.get(labels.key()) == number:
            del self._by_key[labels.key()]

    # -- keeping up with etcd ---------------------------------------------------------
    def refresh(self) -> None:
        """Reloads every identity from etcd (raises AllocationError when unreachable)."""
        with self._io:
            try:
                self._refresh()
            except EtcdUnreachable as err:
                raise AllocationError(f"etcd is unreachable: {err}") from None

    def _refresh(self) -> None:
        fresh: dict[int, LabelSet] = {}
        for key, value, _ in self._scan(f"{self.prefix}/ids/"):
            try:
                fresh[int(key.rsplit("/", 1)[1])] = decode_labels(json.loads(value)["labels"])
            except (ValueError, KeyError, TypeError) as err:
                log.error("etcd identities: ignoring malformed %s: %s", key, err)
        with self._lock:
            # Identities this node still uses stay, even if freed in etcd: the resync
            # restores them, and the datapath keeps enforcing with them meanwhile.
            for number in list(self._by_id):
                if number not in fresh and not self._refs.get(number):
                    self._forget(number)
            for number, labels in fresh.items():
                self._remember(number, labels)
        self._last_refresh = time.monotonic()

    def _resync(self) -> None:
        """Makes etcd's refs of this node match what this process references."""
        with self._lock:
            wanted = {n: self._by_id[n] for n, count in self._refs.items() if count > 0}
        for number, labels in wanted.items():
            self._with_lease(lambda: self._restore_ref(number, labels))
        mine = f"/{self.node}"
        for key, _, _ in self._scan(f"{self.prefix}/refs/", keys_only=True):
            if key.endswith(mine) and int(key.split("/")[-2]) not in wanted:
                self._drop_ref(int(key.split("/")[-2]))
        self._dirty = False

    def _restore_ref(self, number: int, labels: LabelSet) -> None:
        id_key, value = self._id_key(number), _labels_value(labels)
        same = {"key": _b64(id_key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}
        if self._txn([same], self._take_ref_ops(number)):
            return
        # Freed while we could not keep our ref alive: bring it back with the same number,
        # which the pinned maps and the other nodes' caches still hold.
        labels_key = self._labels_key(labels)
        if self._txn([_created(id_key, 0), _created(labels_key, 0)],
                     [_put(labels_key, str(number)), _put(id_key, value),
                      *self._take_ref_ops(number)]):
            log.warning("etcd identities: restored identity %d (%s) freed during an outage",
                        number, labels.key())
            return
        log.error("etcd identities: identity %d (%s) was freed and its number or labels "
                  "reused while node %s was away; endpoints keep %d until they are "
                  "re-allocated", number, labels.key(), self.node, number)

    def sync(self) -> bool:
        """One round of the background work now; returns whether etcd answered."""
        self._heartbeat()
        return self._connected

    def _heartbeat(self) -> None:
        """One round of the background work: lease, resync, refresh. Never raises."""
        with self._io:
            try:
                self._keep_lease_alive()
                if self._dirty:
                    self._resync()
                if time.monotonic() - self._last_refresh >= self.refresh_interval:
                    self._refresh()
            except EtcdUnreachable as err:
                log.debug("etcd identities: %s", err)
            except LeaseLost:
                self._lease = None
                self._dirty = True
            except (etcd_errors.Etcd3Exception, ValueError, KeyError) as err:
                self._dirty = True
                log.error("etcd identities: background sync failed: %s", err)

    def flush(self) -> None:
        """Nothing to do: a new number is in etcd before allocate returns it (refs taken
        while etcd is unreachable are re-written by the background sync, which flush
        cannot hasten)."""

    def _run(self) -> None:
        tick = max(0.1, min(self.lease_ttl / 3, self.refresh_interval))
        while not self._stop.wait(tick):
            self._heartbeat()

    def close(self, revoke: bool = True) -> None:
        """Stops the background thread; revokes the lease (dropping this node's refs)
        unless revoke=False, which leaves them to expire as a crashed node's would."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if revoke and self._lease is not None:
            with self._io:
                lease, self._lease = self._lease, None
                try:
                    self._call(lambda c: lease.revoke())
                except (EtcdUnreachable, etcd_errors.Etcd3Exception) as err:
                    log.warning("etcd identities: could not revoke lease: %s", err)

    def __enter__(self) -> "EtcdAllocator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
