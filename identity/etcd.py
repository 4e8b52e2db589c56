"""Cluster-wide identities in etcd v3: the etcd Backend, and `EtcdAllocator` built on it.

`EtcdAllocator(endpoints, node=..., grace_seconds=..., prefix=...)` is
`identity.cluster.ClusterAllocator` (the algorithm: retries, cache, grace, outages,
resync) over `EtcdBackend` (this module: keys, transactions, the lease, transport).

Keys under `prefix` (default /membrane/identities), one per record of identity/backend.py:

    labels/<sha256 of LabelSet.key()>  -> "<id>"                       the claim
    ids/<id>                           -> {"labels": [[src,key,val]]}   the identity
    refs/<id>/<node>                   -> ""  (on the node's lease)      a reference
    unused/<id>                        -> {"since": t, "by": node}       the grace marker

Each Backend write is one etcd transaction; its compares are the method's guards:

    create       labels/.. and ids/<id> both absent (create_revision 0) -> put both, take ref
    acquire      labels/.. still has the create_revision read, and ids/<id>
                 holds exactly these labels                            -> take ref
    reacquire    ids/<id> holds exactly these labels                   -> take ref
    mark_unused  no key under refs/<id>/, no marker, ids/<id> exists (at the mod_revision
                 read, when given)                                     -> put marker
    free         no key under refs/<id>/, ids/<id> and the marker at the mod_revisions
                 read                                    -> delete ids, labels, marker
    drop_marker  the marker at the mod_revision read                   -> delete it

where "take ref" is: put refs/<id>/<node> on this node's lease, delete unused/<id>.
Versions are those revisions as strings (create_revision for a claim, mod_revision else).

Transport: etcd's v3 JSON gateway through etcd3gw, one client per endpoint. A request
that cannot reach the endpoint in use is tried on the next, each once, before
StoreUnreachable; an HTTP error from etcd is StoreRefused, except "lease not found",
which is OwnershipLost (the lease is forgotten; the next reference takes a new one). The
lease (lease_ttl seconds) is granted on first use and renewed by keep_alive, every third
of its TTL. Every client is made by `_connect`.

Security (`EtcdAccess`): an https:// endpoint is verified against `ca_file` (else the
system's CAs) and, with `cert_file`/`key_file`, presents a client certificate (etcd's
--client-cert-auth), on a requests session `_connect` makes (and hands etcd3gw) that
ignores the environment (REQUESTS_CA_BUNDLE would replace the CA). etcd3gw has no
user/password support, but the gateway has (etcd >= 3.3): POST /v3/auth/authenticate {name, password}
returns a token, sent as the Authorization header of every request on that client's
session. A token etcd no longer accepts ("invalid auth token": it expires after
--auth-token-ttl idle seconds, or the member restarted) is replaced once and the
request retried. The gateway cannot map a client certificate's CN to a user (etcd's
docs), so with etcd auth enabled a password is needed even with client certificates.
Why etcd3gw still, not a gRPC client: it is the maintained one (OpenStack's), small,
typed and packaged in Debian; python-etcd3 (gRPC) is unmaintained, aetcd is asyncio.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as etcd_errors
from etcd3gw.lease import Lease
from etcd3gw.types import KeyValue

from identity.allocator import Allocator
from identity.backend import (Backend, Claim, NodeState, OwnershipLost, StoredIdentity,
                              StoreRefused, StoreUnreachable, UnusedMarker, Version)
from identity.cluster import ClusterAllocator
from identity.gc import Clock
from identity.labels import LabelSet, decode_labels, encode_labels
from identity.reserved import MAX_LABEL_IDENTITY

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "/membrane/identities"

# Errors that mean "etcd is not there right now", as opposed to a refused request.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    etcd_errors.ConnectionFailedError,
    etcd_errors.ConnectionTimeoutError,
    requests.RequestException,
)

T = TypeVar("T")
Op = dict[str, object]   # one compare or request of a transaction, as the gateway wants it


@dataclass(frozen=True)
class EtcdAccess:
    """How to talk to etcd safely. TLS files are paths (read by requests at each new
    connection, so renewed files take effect without a restart); `password` is the
    secret itself (the agent reads it from --etcd-password-file)."""

    ca_file: str | None = None      # CA that signed etcd's serving certificate
    cert_file: str | None = None    # client certificate (etcd --client-cert-auth)
    key_file: str | None = None
    user: str | None = None         # etcd user (etcd auth enabled), with password
    password: str | None = None

    def check(self, endpoints: Sequence[str]) -> None:
        """ValueError for options that cannot work together."""
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("etcd client certificate and key go together: give both "
                             "--etcd-cert and --etcd-key, or neither")
        if bool(self.user) != (self.password is not None):
            raise ValueError("etcd user and password go together: give --etcd-user and "
                             "--etcd-password-file, or neither")
        if self.ca_file or self.cert_file:
            plain = [e for e in endpoints if not e.startswith("https://")]
            if plain:
                raise ValueError(f"etcd endpoints {plain}: TLS options need https:// "
                                 "endpoints")


def _connect(endpoint: str, timeout: float, access: EtcdAccess) -> etcd3gw.Etcd3Client:
    url = urlsplit(endpoint if "://" in endpoint else "http://" + endpoint)
    if not url.hostname or url.scheme not in ("http", "https"):
        raise ValueError(f"etcd endpoint {endpoint!r}: expected http(s)://HOST:PORT")
    session = requests.Session()
    # Not the environment's: REQUESTS_CA_BUNDLE would replace the CA given here, and a
    # proxy variable would route identity traffic through a proxy.
    session.trust_env = False
    session.verify = access.ca_file or True
    if access.cert_file and access.key_file:
        session.cert = (access.cert_file, access.key_file)
    # api_path given: etcd >= 3.4 serves /v3/, and discovery would be one more request.
    return etcd3gw.Etcd3Client(host=url.hostname, port=url.port or 2379,
                               protocol=url.scheme, timeout=timeout, api_path="/v3/",
                               session=session)


def _authenticate(client: etcd3gw.Etcd3Client, access: EtcdAccess) -> None:
    """Gets a token for access.user and puts it on the client's session (see above)."""
    client.session.headers.pop("Authorization", None)
    answer = client.post(client.get_url("/auth/authenticate"),
                         json={"name": access.user, "password": access.password})
    token = answer.get("token") if isinstance(answer, dict) else None
    if not token:
        raise etcd_errors.Etcd3Exception(f"authenticating as {access.user!r} returned no "
                                         "token")
    client.session.headers["Authorization"] = str(token)


# -- transaction building blocks (the v3 JSON gateway wants base64 keys and values) ------

def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _range_end(prefix: str) -> str:
    """The key just after every key starting with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _created(key: str, revision: int) -> Op:
    """Compare: key's create_revision equals revision (0: the key does not exist)."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL",
            "create_revision": revision}


def _exists(key: str) -> Op:
    return {"key": _b64(key), "target": "CREATE", "result": "GREATER", "create_revision": 0}


def _none_under(prefix: str) -> Op:
    """Compare: no key starts with prefix (every existing key has create_revision > 0)."""
    return {"key": _b64(prefix), "range_end": _b64(_range_end(prefix)), "target": "CREATE",
            "result": "EQUAL", "create_revision": 0}


def _modified(key: str, revision: int) -> Op:
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": revision}


def _holds(key: str, value: str) -> Op:
    """Compare: key exists and holds exactly value (etcd fails it for a missing key)."""
    return {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}


def _put(key: str, value: str, lease: int | None = None) -> Op:
    request: dict[str, object] = {"key": _b64(key), "value": _b64(value)}
    if lease is not None:
        request["lease"] = lease
    return {"request_put": request}


def _delete(key: str) -> Op:
    return {"request_delete_range": {"key": _b64(key)}}


def _labels_value(labels: LabelSet) -> str:
    return json.dumps({"labels": encode_labels(labels)}, sort_keys=True)


def _last_number(key: str, from_end: int = 1) -> int:
    """The number in a key: `.../ids/300` -> 300; from_end=2: `.../refs/300/n1` -> 300."""
    return int(key.split("/")[-from_end])


class EtcdBackend(NodeState[int]):
    """One node's Backend on etcd (see the module docstring for keys and guards)."""

    name = "etcd"

    def __init__(self, endpoints: Sequence[str], node: str, prefix: str = DEFAULT_PREFIX, *,
                 lease_ttl: int = 15, request_timeout: float = 3.0,
                 access: EtcdAccess = EtcdAccess()) -> None:
        if not endpoints:
            raise ValueError("EtcdAllocator needs at least one etcd endpoint")
        if not node or "/" in node:
            raise ValueError(f"node name {node!r} must be non-empty and contain no '/'")
        access.check(endpoints)
        self.endpoints = list(endpoints)
        self.prefix = prefix.rstrip("/")
        self.lease_ttl = lease_ttl
        super().__init__(node)
        self._access = access
        self._clients = [_connect(e, request_timeout, access) for e in self.endpoints]
        self._authenticated = [False] * len(self._clients)
        self._current = 0                  # index of the endpoint in use

    @property
    def lease_id(self) -> int | None:
        """This node's lease, None before the first one is granted (or after close)."""
        return self._lease

    @property
    def keep_alive_interval(self) -> float:
        return self.lease_ttl / 3

    def describe(self) -> str:
        return f"etcd ({self.prefix})"

    # -- transport ------------------------------------------------------------------------
    def _call(self, fn: Callable[[etcd3gw.Etcd3Client], T]) -> T:
        """Runs fn on the endpoint in use, failing over to the others once each."""
        last: BaseException | None = None
        for _ in range(len(self._clients)):
            try:
                result = self._call_authenticated(fn, self._current)
            except _UNREACHABLE as err:
                last = err
                self._current = (self._current + 1) % len(self._clients)
                continue
            except etcd_errors.Etcd3Exception as err:
                self._reachable = True
                detail = str(err.detail_text or err)
                if "lease not found" in detail:
                    self._lease = None
                    raise OwnershipLost(f"node {self._node}: lease expired in etcd") from None
                raise StoreRefused(f"{self.endpoints[self._current]}: {detail}") from None
            self._reachable = True
            return result
        self._reachable = False
        # etcd3gw's connection errors carry their text in detail_text, not in str().
        reason = getattr(last, "detail_text", None) or str(last) or type(last).__name__
        raise StoreUnreachable(f"{', '.join(self.endpoints)}: {reason}")

    def _call_authenticated(self, fn: Callable[[etcd3gw.Etcd3Client], T], index: int) -> T:
        """fn on one client, with a token when a user is configured; a token etcd
        refuses is replaced once (expired, or the member restarted)."""
        client = self._clients[index]
        if not self._access.user:
            return fn(client)
        if not self._authenticated[index]:
            _authenticate(client, self._access)
            self._authenticated[index] = True
        try:
            return fn(client)
        except etcd_errors.Etcd3Exception as err:
            if "invalid auth token" not in str(err.detail_text or ""):
                raise
        log.info("etcd identities: token for %s expired; authenticating again",
                 self.endpoints[index])
        _authenticate(client, self._access)
        return fn(client)

    def _txn(self, compare: list[Op], success: list[Op]) -> bool:
        result = self._call(lambda c: c.transaction(
            {"compare": compare, "success": success, "failure": []}))
        # The gateway omits false booleans: no "succeeded" key means the compare failed.
        return bool(result.get("succeeded", False))

    def _get(self, key: str) -> tuple[str, KeyValue] | None:
        found = self._call(lambda c: c.get(key, metadata=True))
        if not found:
            return None
        value, meta = found[0]
        return value.decode(), meta

    def _scan(self, prefix: str, keys_only: bool = False) -> list[tuple[str, str, int]]:
        """(key, value, mod_revision) of every key under prefix."""
        found = self._call(lambda c: c.get(prefix, metadata=True, range_end=_range_end(prefix),
                                           keys_only=keys_only or None))
        return [(meta["key"].decode(), value.decode(), int(meta.get("mod_revision", 0)))
                for value, meta in found]

    # -- keys -----------------------------------------------------------------------------
    def _labels_key(self, labels: LabelSet) -> str:
        return f"{self.prefix}/labels/{hashlib.sha256(labels.key().encode()).hexdigest()}"

    def _id_key(self, number: int) -> str:
        return f"{self.prefix}/ids/{number}"

    def _refs_prefix(self, number: int) -> str:
        return f"{self.prefix}/refs/{number}/"

    def _ref_key(self, number: int) -> str:
        return f"{self._refs_prefix(number)}{self._node}"

    def _unused_key(self, number: int) -> str:
        return f"{self.prefix}/unused/{number}"

    # -- the lease ------------------------------------------------------------------------
    def _lease_for_refs(self) -> int:
        if self._lease is None:
            granted = self._call(lambda c: c.lease(self.lease_ttl))
            self._lease, self._new_lease = granted.id, True
            log.info("etcd identities: node %s holds lease %x", self._node, granted.id)
        return self._lease

    def keep_alive(self) -> bool:
        lease = self._lease
        if lease is not None and self._call(lambda c: Lease(lease, c).refresh()) <= 0:
            log.warning("etcd identities: lease of node %s expired; taking a new one and "
                        "re-creating its references", self._node)
            self._lease = None
        self._lease_for_refs()
        return self._lease_is_new()

    def close(self, revoke: bool = True) -> None:
        lease = self._lease
        if revoke and lease is not None:
            self._lease = None
            try:
                self._call(lambda c: Lease(lease, c).revoke())
            except (StoreUnreachable, StoreRefused, OwnershipLost) as err:
                log.warning("etcd identities: could not revoke lease: %s", err)
        for client in self._clients:
            client.session.close()

    # -- reads ----------------------------------------------------------------------------
    def claim_of(self, labels: LabelSet) -> Claim | None:
        key = self._labels_key(labels)
        found = self._get(key)
        if found is None:
            return None
        value, meta = found
        try:
            number = int(value)
        except ValueError:
            raise StoreRefused(f"{key}: {value!r} is not an identity number") from None
        return Claim(labels, number, meta.get("create_revision", "0"))

    def identity(self, number: int) -> LabelSet | None:
        key = self._id_key(number)
        found = self._get(key)
        if found is None:
            return None
        try:
            return decode_labels(json.loads(found[0])["labels"])
        except (ValueError, KeyError, TypeError) as err:
            log.error("etcd identities: ignoring malformed %s: %s", key, err)
            return None

    def numbers(self) -> set[int]:
        return {_last_number(key) for key, _, _ in self._scan(f"{self.prefix}/ids/", True)
                if key.rsplit("/", 1)[1].isdigit()}

    def identities(self) -> list[StoredIdentity]:
        found = []
        for key, value, revision in self._scan(f"{self.prefix}/ids/"):
            try:
                labels = decode_labels(json.loads(value)["labels"])
                found.append(StoredIdentity(_last_number(key), labels, str(revision)))
            except (ValueError, KeyError, TypeError) as err:
                log.error("etcd identities: ignoring malformed %s: %s", key, err)
        return found

    def _reference_keys(self) -> list[str]:
        return [key for key, _, _ in self._scan(f"{self.prefix}/refs/", keys_only=True)
                if key.split("/")[-2].isdigit()]

    def referenced(self) -> set[int]:
        return {_last_number(key, 2) for key in self._reference_keys()}

    def own_references(self) -> set[int]:
        return {_last_number(key, 2) for key in self._reference_keys()
                if key.rsplit("/", 1)[1] == self._node}

    def unused_markers(self) -> list[UnusedMarker]:
        found = []
        for key, value, revision in self._scan(f"{self.prefix}/unused/"):
            try:
                since = float(json.loads(value)["since"])
                found.append(UnusedMarker(_last_number(key), since, str(revision)))
            except (ValueError, KeyError, TypeError) as err:
                log.error("etcd identities: ignoring malformed %s: %s", key, err)
        return found

    # -- writes ---------------------------------------------------------------------------
    def _take_reference(self, number: int) -> list[Op]:
        return [_put(self._ref_key(number), "", self._lease_for_refs()),
                _delete(self._unused_key(number))]

    def create(self, number: int, labels: LabelSet) -> bool:
        labels_key, id_key = self._labels_key(labels), self._id_key(number)
        return self._txn([_created(labels_key, 0), _created(id_key, 0)],
                         [_put(labels_key, str(number)), _put(id_key, _labels_value(labels)),
                          *self._take_reference(number)])

    def acquire(self, claim: Claim) -> bool:
        # The identity compare makes a claim planted by hand (labels/<X> = number of Y)
        # worthless: X never gets Y's number.
        return self._txn([_created(self._labels_key(claim.labels), int(claim.version)),
                          _holds(self._id_key(claim.number), _labels_value(claim.labels))],
                         self._take_reference(claim.number))

    def reacquire(self, number: int, labels: LabelSet) -> bool:
        return self._txn([_holds(self._id_key(number), _labels_value(labels))],
                         self._take_reference(number))

    def drop_reference(self, number: int) -> None:
        self._call(lambda c: c.delete(self._ref_key(number)))

    def mark_unused(self, number: int, since: float, version: Version | None = None) -> bool:
        id_key, unused_key = self._id_key(number), self._unused_key(number)
        exists = _exists(id_key) if version is None else _modified(id_key, int(version))
        marker = json.dumps({"since": since, "by": self._node})
        return self._txn([_none_under(self._refs_prefix(number)), _created(unused_key, 0),
                          exists], [_put(unused_key, marker)])

    def free(self, identity: StoredIdentity, marker: UnusedMarker) -> bool:
        number = identity.number
        return self._txn([_none_under(self._refs_prefix(number)),
                          _modified(self._id_key(number), int(identity.version)),
                          _modified(self._unused_key(number), int(marker.version))],
                         [_delete(self._id_key(number)), _delete(self._labels_key(identity.labels)),
                          _delete(self._unused_key(number))])

    def drop_marker(self, marker: UnusedMarker) -> bool:
        key = self._unused_key(marker.number)
        return self._txn([_modified(key, int(marker.version))], [_delete(key)])


class EtcdAllocator(ClusterAllocator):
    """The Allocator shared by every node of a cluster, backed by etcd v3 (etcd3gw).

    lease_ttl: seconds a dead node's references outlive it; request_timeout: per etcd
    request; access: TLS files and user/password (EtcdAccess). The other arguments are
    ClusterAllocator's.
    """

    backend: EtcdBackend

    def __init__(self, endpoints: list[str], node: str, prefix: str = DEFAULT_PREFIX,
                 lease_ttl: int = 15, grace_seconds: float = 300.0, *,
                 refresh_interval: float = 5.0, request_timeout: float = 3.0,
                 clock: Clock = time.time, max_identity: int = MAX_LABEL_IDENTITY,
                 start: bool = True, access: EtcdAccess = EtcdAccess()) -> None:
        backend = EtcdBackend(endpoints, node, prefix, lease_ttl=lease_ttl,
                              request_timeout=request_timeout, access=access)
        super().__init__(backend, grace_seconds, refresh_interval=refresh_interval,
                         clock=clock, max_identity=max_identity, start=start)

    @property
    def endpoints(self) -> list[str]:
        return self.backend.endpoints

    @property
    def prefix(self) -> str:
        return self.backend.prefix


# mypy checks the Protocols here.
_IS_A_BACKEND: type[Backend] = EtcdBackend
_IS_AN_ALLOCATOR: type[Allocator] = EtcdAllocator
