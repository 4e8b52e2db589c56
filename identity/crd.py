"""Cluster-wide identities as Kubernetes objects (Cilium's "crd" mode): `CrdAllocator`.

`CrdAllocator(api_client, node=...)` is `identity.cluster.ClusterAllocator` (the
algorithm: retries, cache, grace, outages, resync) over `CrdBackend` (this module: which
objects, and the guard on each write; their shapes are in identity/crd_objects.py).
Nothing else runs in the cluster: no etcd, no operator. The CRDs are in
deploy/base/crds.yaml; the agent's RBAC grants exactly the verbs used here
(deploy/base/rbac.yaml; tests/k8s/test_crd_rbac.py checks the two agree).

The records of identity/backend.py, as objects (group membrane.io, version v1alpha1):

    MembraneIdentity "300"          cluster-scoped; the identity: number -> label set
        spec.labels                 ["k8s:app=web", ...], sorted (never changes)
        status.references           {node: uid of that node's Lease}: the references
        status.unused               {since, node, marker}: the grace marker
    MembraneIdentityClaim "<h>"     cluster-scoped; the claim: label set -> number. h is
        spec.labels, spec.identity  the SHA-256 of LabelSet.key(); metadata.ownerReferences
                                    names the MembraneIdentity by uid
    Lease "membrane-identities-<node>"   coordination.k8s.io, in the agent's namespace:
                                    this node's ownership. A reference counts while the
                                    Lease it names exists with that uid and was renewed
                                    within leaseDurationSeconds.

One label set, one object, even when two agents race. The API server has no transaction
over two objects, so allocation is two creates, each decided by the API server alone
(a name is created once; the second create gets 409 AlreadyExists):

    1. create MembraneIdentity <n> (with this node's reference): n is now taken;
    2. create the claim <h> owned by that identity's uid: the label set is now taken.

Agents racing for one number are decided at step 1 (the losers try the next number).
Agents racing for one label set with different numbers each pass step 1 and meet at
step 2: the claim's name is the label set's hash, so exactly one claim is created. The
losers see 409, delete their own identity again (uid precondition; should that fail,
their resync drops the reference) and, on the cluster algorithm's next read, acquire
the winner's. An identity is only ever handed out through
its claim (acquire and reacquire read the claim first and guard on the uid it names), so
an identity without a claim -- a loser's between steps 1 and 2, or one left by a crash
there -- is never used: it only keeps its number reserved until garbage collection
frees it like any unreferenced identity. A claim whose owner no longer exists (a crash
between the two deletes of a free, or an identity deleted by hand) is deleted by
Kubernetes' garbage collector, and before that by the first agent that meets it.

Each Backend write is one guarded write of one object (update and delete carry
preconditions; 409 Conflict means the object changed since it was read):

    create       steps 1 and 2 above; False when the number or the label set is taken
    acquire      update the identity the claim names, if its uid is still the claim's
                 and it holds exactly the claim's labels: add this node's reference,
                 remove the marker (a claim naming another label set's identity is
                 dropped like an orphan: it was written by hand)
    reacquire    the same, for the claim of `labels`, if that claim names `number`
    drop_reference, drop_marker   update: remove this node's reference / that marker
    mark_unused  update, if no reference counts and there is no marker: set the marker
                 (references left by ended Leases are dropped in the same write)
    free         delete with preconditions {uid, resourceVersion} as read and checked:
                 any reference taken since changed the resourceVersion, and of two agents
                 collecting at once one delete succeeds, the other gets 409; then the claim

Updates are read-modify-write with the resourceVersion read, retried on conflict.
Versions: a claim's and an identity's are the identity's uid, a marker's its random id.

The Lease: taken on first use; renewed every third of lease_seconds by keep_alive; a
new process for the node replaces it (new uid: the old process's references stop
counting at once; the new one re-takes what it uses, within the grace period). Expiry
compares renewTime with the reader's wall clock, as Kubernetes' leader election does:
node clocks must agree to well within lease_seconds.

Errors: 404 is "absent", 409 "the guard failed"; no answer, a timeout, 429 and 5xx are
StoreUnreachable; anything else the API server answers (401, 403 from RBAC, 422) is
StoreRefused.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from identity.allocator import Allocator
from identity.backend import (Backend, Claim, NodeState, OwnershipLost, StoredIdentity,
                              StoreRefused, StoreUnreachable, UnusedMarker, Version)
from identity.cluster import ClusterAllocator
from identity.crd_objects import (CLAIMS, GROUP, IDENTITIES, IDENTITY_KIND, LEASE_GROUP,
                                  LEASE_LABEL, LEASE_VERSION, LEASES, VERSION, Doc,
                                  claim_name, claim_object, counts, identity_object,
                                  label_texts, lease_alive, lease_name, lease_object,
                                  marker_id, owner_uid, parse_label_texts, parse_time,
                                  pod_namespace, references_of, status_of, uid_of,
                                  unused_marker)
from identity.gc import Clock
from identity.labels import LabelSet
from identity.reserved import MAX_LABEL_IDENTITY

log = logging.getLogger(__name__)

LIST_PAGE = 500          # objects per list request
UPDATE_ATTEMPTS = 16     # read-modify-write rounds lost to other writers before giving up


class _NotFound(Exception):
    """404: the object is not there."""


class _Conflict(Exception):
    """409: the name is taken (create) or the object changed (update, delete)."""


@dataclass(frozen=True)
class _HeldLease:
    uid: str
    resource_version: str
    acquired: str        # acquireTime, kept across renewals
    renewed: float       # the renewTime last written, by this node's clock


# -- the backend -------------------------------------------------------------------------

class CrdBackend(NodeState[_HeldLease]):
    """One node's Backend on the Kubernetes API (see the module docstring)."""

    name = "crd"

    def __init__(self, api_client: Any, node: str, namespace: str | None = None, *,
                 lease_seconds: int = 30, request_timeout: float = 5.0,
                 clock: Clock = time.time) -> None:
        if not node:
            raise ValueError("CrdAllocator needs this node's name")
        if lease_seconds < 1:
            raise ValueError(f"lease_seconds must be >= 1, not {lease_seconds}")
        super().__init__(node)
        self.namespace = namespace or pod_namespace()
        self.lease_seconds = lease_seconds
        self.request_timeout = request_timeout
        self._api = client.CustomObjectsApi(api_client)
        self._server = str(getattr(api_client.configuration, "host", "the API server"))
        self._clock = clock

    @property
    def lease_uid(self) -> str | None:
        """The uid of this node's Lease as last seen, None before one is taken."""
        return self._lease.uid if self._lease else None

    @property
    def keep_alive_interval(self) -> float:
        return self.lease_seconds / 3

    def describe(self) -> str:
        return f"the Kubernetes API ({IDENTITIES}.{GROUP})"

    # -- transport ------------------------------------------------------------------------
    def _call(self, fn: Callable[[], object]) -> Doc:
        """One request; its answer, a JSON object. Errors as the module docstring says."""
        try:
            result = fn()
        except ApiException as err:
            code = int(err.status or 0)
            self._reachable = code not in (0, 429) and code < 500
            if code == 404:
                raise _NotFound() from None
            if code == 409:
                raise _Conflict(_message(err)) from None
            if not self._reachable:
                raise StoreUnreachable(f"{self._server}: HTTP {code}: {_message(err)}") from None
            raise StoreRefused(f"{self._server}: HTTP {code}: {_message(err)}") from None
        except (urllib3.exceptions.HTTPError, OSError) as err:
            self._reachable = False
            raise StoreUnreachable(f"{self._server}: {err}") from None
        self._reachable = True
        if not isinstance(result, dict):
            raise StoreRefused(f"{self._server}: answered {type(result).__name__}, not an object")
        return result

    def _get(self, plural: str, name: str) -> Doc | None:
        try:
            return self._call(lambda: self._api.get_cluster_custom_object(
                GROUP, VERSION, plural, name, _request_timeout=self.request_timeout))
        except _NotFound:
            return None

    def _missing(self, what: str) -> StoreRefused:
        """404 for a collection: the CRD (or the Leases' namespace) is not there."""
        if what == LEASES:
            return StoreRefused(f"{self._server}: no namespace {self.namespace!r} for the "
                                "nodes' Leases (the agent's own, or the namespace option)")
        return StoreRefused(f"{self._server}: the CRD {what}.{GROUP} is not installed "
                            "(kubectl apply -k deploy/overlays/<yours>, or deploy/base/"
                            "crds.yaml alone)")

    def _list(self, plural: str) -> list[Doc]:
        items: list[Doc] = []
        token: str | None = None
        while True:
            try:
                page = self._call(lambda: self._api.list_cluster_custom_object(
                    GROUP, VERSION, plural, limit=LIST_PAGE, _continue=token,
                    _request_timeout=self.request_timeout))
            except _NotFound:
                raise self._missing(plural) from None
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def _create(self, plural: str, body: Doc) -> Doc:
        try:
            return self._call(lambda: self._api.create_cluster_custom_object(
                GROUP, VERSION, plural, body, _request_timeout=self.request_timeout))
        except _NotFound:
            raise self._missing(plural) from None

    def _replace(self, plural: str, doc: Doc) -> Doc:
        return self._call(lambda: self._api.replace_cluster_custom_object(
            GROUP, VERSION, plural, doc["metadata"]["name"], doc,
            _request_timeout=self.request_timeout))

    def _delete(self, plural: str, name: str, uid: str,
                resource_version: str | None = None) -> bool:
        """Deletes the object if it still has this uid (and resourceVersion); False if not."""
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(
            uid=uid, resource_version=resource_version))
        try:
            self._call(lambda: self._api.delete_cluster_custom_object(
                GROUP, VERSION, plural, name, body=options,
                _request_timeout=self.request_timeout))
        except (_NotFound, _Conflict):
            return False
        return True

    # -- the Lease ------------------------------------------------------------------------
    def _get_lease(self) -> Doc | None:
        try:
            return self._call(lambda: self._api.get_namespaced_custom_object(
                LEASE_GROUP, LEASE_VERSION, self.namespace, LEASES, lease_name(self._node),
                _request_timeout=self.request_timeout))
        except _NotFound:
            return None

    def _live_leases(self) -> dict[str, str]:
        """node -> uid of its Lease, for every Lease renewed within its duration."""
        try:
            page = self._call(lambda: self._api.list_namespaced_custom_object(
                LEASE_GROUP, LEASE_VERSION, self.namespace, LEASES, label_selector=LEASE_LABEL,
                _request_timeout=self.request_timeout))
        except _NotFound:
            raise self._missing(LEASES) from None
        now = self._clock()
        return {str((lease.get("spec") or {}).get("holderIdentity")): uid_of(lease)
                for lease in page.get("items") or [] if lease_alive(lease, now)}

    def _take_lease(self) -> None:
        """Creates this node's Lease, replacing one an earlier process left (whose
        references end with it: this process re-takes what it uses)."""
        for _ in range(3):
            now = self._clock()
            body = lease_object(self._node, self.namespace, self.lease_seconds, now)
            try:
                made = self._call(lambda: self._api.create_namespaced_custom_object(
                    LEASE_GROUP, LEASE_VERSION, self.namespace, LEASES, body,
                    _request_timeout=self.request_timeout))
            except _Conflict:
                old = self._get_lease()
                if old is not None:
                    self._delete_lease(uid_of(old))
                continue
            except _NotFound:
                raise self._missing(LEASES) from None
            self._lease = _HeldLease(uid_of(made), made["metadata"]["resourceVersion"],
                                     body["spec"]["acquireTime"], now)
            self._new_lease = True
            log.info("crd identities: node %s holds Lease %s/%s", self._node, self.namespace,
                     lease_name(self._node))
            return
        raise StoreRefused(f"Lease {self.namespace}/{lease_name(self._node)} is re-created "
                           "as fast as it is replaced: two agents with node name "
                           f"{self._node}?")

    def _delete_lease(self, uid: str) -> None:
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self._call(lambda: self._api.delete_namespaced_custom_object(
                LEASE_GROUP, LEASE_VERSION, self.namespace, LEASES, lease_name(self._node),
                body=options, _request_timeout=self.request_timeout))
        except (_NotFound, _Conflict):
            pass

    def _renew(self, held: _HeldLease) -> bool:
        """Renews the Lease this process holds; False when it ended (deleted, replaced,
        or expired before this renewal: others may have dropped its references)."""
        now = self._clock()
        if now > held.renewed + self.lease_seconds:
            return False
        body = lease_object(self._node, self.namespace, self.lease_seconds, now)
        body["metadata"].update(uid=held.uid, resourceVersion=held.resource_version)
        body["spec"]["acquireTime"] = held.acquired
        for _ in range(2):
            try:
                renewed = self._call(lambda: self._api.replace_namespaced_custom_object(
                    LEASE_GROUP, LEASE_VERSION, self.namespace, LEASES, lease_name(self._node),
                    body, _request_timeout=self.request_timeout))
            except _NotFound:
                return False
            except _Conflict:      # written by someone else since: still ours?
                current = self._get_lease()
                if current is None or uid_of(current) != held.uid or not lease_alive(current,
                                                                                   now):
                    return False
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                continue
            self._lease = _HeldLease(held.uid, renewed["metadata"]["resourceVersion"],
                                     held.acquired, now)
            return True
        return False

    def keep_alive(self) -> bool:
        held = self._lease
        if held is not None and not self._renew(held):
            log.warning("crd identities: Lease of node %s ended; taking a new one and "
                        "re-taking its references", self._node)
            self._lease = None
        if self._lease is None:
            self._take_lease()
        return self._lease_is_new()

    def _lease_for_refs(self) -> str:
        """The uid a new reference names. OwnershipLost when the Lease this process held
        ended (its references are gone); the next call takes a new one."""
        if self._lease is None:
            self._take_lease()
            assert self._lease is not None
            return self._lease.uid
        current = self._get_lease()
        if (current is None or uid_of(current) != self._lease.uid
                or not lease_alive(current, self._clock())):
            self._lease = None
            raise OwnershipLost(f"node {self._node}: its Lease "
                                f"{self.namespace}/{lease_name(self._node)} ended")
        return self._lease.uid

    def close(self, revoke: bool = True) -> None:
        held, self._lease = self._lease, None
        if revoke and held is not None:
            try:
                self._delete_lease(held.uid)
            except (StoreUnreachable, StoreRefused) as err:
                log.warning("crd identities: could not delete the Lease of %s: %s",
                            self._node, err)

    # -- reads ----------------------------------------------------------------------------
    def claim_of(self, labels: LabelSet) -> Claim | None:
        claim = self._get(CLAIMS, claim_name(labels))
        if claim is None:
            return None
        spec = claim.get("spec") or {}
        if spec.get("labels") != label_texts(labels):
            raise StoreRefused(f"{CLAIMS} {claim_name(labels)} holds {spec.get('labels')!r}, "
                               f"not {labels.key()!r}")
        try:
            return Claim(labels, int(spec["identity"]), owner_uid(claim))
        except (KeyError, TypeError, ValueError):
            raise StoreRefused(f"{CLAIMS} {claim_name(labels)}: no identity number") from None

    def identity(self, number: int) -> LabelSet | None:
        doc = self._get(IDENTITIES, str(number))
        if doc is None:
            return None
        try:
            return parse_label_texts((doc.get("spec") or {}).get("labels"))
        except ValueError as err:
            log.error("crd identities: ignoring malformed %s %d: %s", IDENTITY_KIND, number, err)
            return None

    def _identity_docs(self) -> list[tuple[int, Doc]]:
        found = []
        for doc in self._list(IDENTITIES):
            name = str(doc.get("metadata", {}).get("name", ""))
            if name.isdigit():
                found.append((int(name), doc))
        return found

    def numbers(self) -> set[int]:
        return {number for number, _ in self._identity_docs()}

    def identities(self) -> list[StoredIdentity]:
        found = []
        for number, doc in self._identity_docs():
            try:
                labels = parse_label_texts((doc.get("spec") or {}).get("labels"))
            except ValueError as err:
                log.error("crd identities: ignoring malformed %s %d: %s", IDENTITY_KIND,
                          number, err)
                continue
            found.append(StoredIdentity(number, labels, uid_of(doc)))
        return found

    def referenced(self) -> set[int]:
        live = self._live_leases()
        return {number for number, doc in self._identity_docs() if counts(doc, live)}

    def own_references(self) -> set[int]:
        mine = self._live_leases().get(self._node)
        if mine is None:
            return set()
        return {number for number, doc in self._identity_docs()
                if references_of(doc).get(self._node) == mine}

    def unused_markers(self) -> list[UnusedMarker]:
        found = []
        for number, doc in self._identity_docs():
            unused = status_of(doc).get("unused")
            if unused is None:
                continue
            try:
                found.append(UnusedMarker(number, parse_time(unused["since"]),
                                          str(unused["marker"])))
            except (KeyError, TypeError, ValueError) as err:
                log.error("crd identities: ignoring the malformed marker of %d: %s", number,
                          err)
        return found

    # -- writes ---------------------------------------------------------------------------
    def _update(self, number: int, uid: str | None, change: Callable[[Doc], bool]) -> bool:
        """Read-modify-write of identity `number`, guarded by the resourceVersion read and
        retried when someone else wrote first. change(doc) edits doc and returns False to
        leave it as it is. False when the identity is gone, has another uid than `uid`
        (None: any), or change declined."""
        for _ in range(UPDATE_ATTEMPTS):
            doc = self._get(IDENTITIES, str(number))
            if doc is None or (uid is not None and uid_of(doc) != uid) or not change(doc):
                return False
            try:
                self._replace(IDENTITIES, doc)
                return True
            except (_Conflict, _NotFound):
                continue    # changed or deleted since read: decide again on what is there
        raise StoreRefused(f"{IDENTITY_KIND} {number}: {UPDATE_ATTEMPTS} updates in a row "
                           "lost to other writers")

    def _take_reference(self, number: int, uid: str, lease: str,
                        labels: LabelSet | None = None) -> bool:
        """labels: take it only while the identity holds exactly these (acquire)."""
        def take(doc: Doc) -> bool:
            if labels is not None and (doc.get("spec") or {}).get("labels") != \
                    label_texts(labels):
                return False
            references_of(doc)[self._node] = lease
            status_of(doc).pop("unused", None)
            return True
        return self._update(number, uid, take)

    def create(self, number: int, labels: LabelSet) -> bool:
        lease = self._lease_for_refs()
        try:
            made = self._create(IDENTITIES, identity_object(number, labels,
                                                            {self._node: lease}))
        except _Conflict:
            return False        # the number is taken
        for _ in range(2):
            try:
                self._create(CLAIMS, claim_object(labels, number, uid_of(made)))
                return True
            except _Conflict:
                if not self._drop_orphan_claim(labels):
                    break
        # The label set has a number already: ours was never handed out; give it back.
        self._delete(IDENTITIES, str(number), uid_of(made))
        return False

    def _drop_orphan_claim(self, labels: LabelSet) -> bool:
        """Deletes the claim of labels if the identity it names is gone; True when there is
        no claim any more (deleted here or meanwhile), False when it is a live one."""
        claim = self._get(CLAIMS, claim_name(labels))
        if claim is None:
            return True
        owner = self._get(IDENTITIES, str((claim.get("spec") or {}).get("identity")))
        if owner is not None and uid_of(owner) == owner_uid(claim):
            return False
        log.info("crd identities: deleting claim %s of %s, whose identity is gone",
                 claim_name(labels), labels.key())
        self._delete(CLAIMS, claim_name(labels), uid_of(claim))
        return True

    def _drop_claim_owned_by(self, labels: LabelSet, identity_uid: str) -> None:
        claim = self._get(CLAIMS, claim_name(labels))
        if claim is not None and owner_uid(claim) == identity_uid:
            self._delete(CLAIMS, claim_name(labels), uid_of(claim))

    def acquire(self, claim: Claim) -> bool:
        if self._take_reference(claim.number, claim.version, self._lease_for_refs(),
                                claim.labels):
            return True
        # The identity the claim named is gone (freed, or never finished): so is the claim.
        self._drop_claim_owned_by(claim.labels, claim.version)
        return False

    def reacquire(self, number: int, labels: LabelSet) -> bool:
        lease = self._lease_for_refs()
        claim = self.claim_of(labels)
        if claim is None or claim.number != number:
            return False
        return self._take_reference(number, claim.version, lease)

    def drop_reference(self, number: int) -> None:
        def drop(doc: Doc) -> bool:
            return references_of(doc).pop(self._node, None) is not None
        self._update(number, None, drop)

    def mark_unused(self, number: int, since: float, version: Version | None = None) -> bool:
        live = self._live_leases()

        def mark(doc: Doc) -> bool:
            if marker_id(doc) is not None or counts(doc, live):
                return False
            status_of(doc).update(references={}, unused=unused_marker(since, self._node))
            return True
        return self._update(number, version, mark)

    def free(self, identity: StoredIdentity, marker: UnusedMarker) -> bool:
        live = self._live_leases()
        doc = self._get(IDENTITIES, str(identity.number))
        if (doc is None or uid_of(doc) != identity.version or counts(doc, live)
                or marker_id(doc) != marker.version):
            return False
        if not self._delete(IDENTITIES, str(identity.number), identity.version,
                            doc["metadata"]["resourceVersion"]):
            return False    # referenced, re-marked or freed by another agent since read
        try:
            self._drop_claim_owned_by(identity.labels, identity.version)
        except (StoreUnreachable, StoreRefused) as err:
            # Freed all the same: Kubernetes' garbage collector deletes the claim with its
            # owner, and an agent meeting it first deletes it too.
            log.warning("crd identities: claim of freed identity %d left: %s",
                        identity.number, err)
        return True

    def drop_marker(self, marker: UnusedMarker) -> bool:
        def drop(doc: Doc) -> bool:
            if marker_id(doc) != marker.version:
                return False
            del status_of(doc)["unused"]
            return True
        return self._update(marker.number, None, drop)


def _message(err: ApiException) -> str:
    try:
        return str(json.loads(err.body or "")["message"])
    except (ValueError, KeyError, TypeError):
        return str(err.reason or "no answer")


class CrdAllocator(ClusterAllocator):
    """The Allocator shared by every node of a cluster, as Kubernetes objects.

    api_client: a kubernetes.client.ApiClient (the caller configures it: in-cluster or a
    kubeconfig, and closes it); namespace: where the nodes' Leases live (default: the
    pod's own); lease_seconds: how long a dead agent's references outlive it. The other
    arguments are ClusterAllocator's; identities are re-listed every refresh_interval
    (30 s: each agent lists them, so this is the API server's load), numbers unknown here
    are looked up at once.
    """

    backend: CrdBackend

    def __init__(self, api_client: Any, node: str, namespace: str | None = None,
                 lease_seconds: int = 30, grace_seconds: float = 300.0, *,
                 refresh_interval: float = 30.0, request_timeout: float = 5.0,
                 clock: Clock = time.time, max_identity: int = MAX_LABEL_IDENTITY,
                 start: bool = True) -> None:
        backend = CrdBackend(api_client, node, namespace, lease_seconds=lease_seconds,
                             request_timeout=request_timeout, clock=clock)
        super().__init__(backend, grace_seconds, refresh_interval=refresh_interval,
                         clock=clock, max_identity=max_identity, start=start)


# mypy checks the Protocols here.
_IS_A_BACKEND: type[Backend] = CrdBackend
_IS_AN_ALLOCATOR: type[Allocator] = CrdAllocator
