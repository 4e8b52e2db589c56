"""The agent's RBAC for identities is exactly what the crd allocator asks for: every request
a full identity life (allocate, share, release, garbage-collect, restart, exit) makes of
the fake API server is allowed by deploy/'s ClusterRole and Role, and every verb those
grant on identity objects and Leases is used."""

from __future__ import annotations

import time
from typing import Any

from crd_cluster import NAMESPACE, api_client, crd_server
from fake_apiserver import Request
from identity.crd import CrdAllocator
from identity.labels import LabelSet
from test_manifests import _grants, by_kind, render

IDENTITY_GROUPS = {"membrane.io", "coordination.k8s.io"}


def rbac_request(request: Request) -> tuple[str, str, str, str | None]:
    """(verb, apiGroup, resource, namespace) as RBAC sees an HTTP request."""
    parts = request.path.strip("/").split("/")
    assert parts[0] == "apis", request.path
    group, rest = parts[1], parts[3:]
    namespace = None
    if rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    named = len(rest) == 2
    verb = {"GET": "get" if named else ("watch" if request.is_watch else "list"),
            "POST": "create", "PUT": "update", "DELETE": "delete",
            "PATCH": "patch"}[request.method]
    return verb, group, rest[0], namespace


def identity_life() -> list[Request]:
    """Everything the allocators of two nodes do in a life, as requests."""
    web = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=web"])
    db = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=db"])
    with crd_server() as server, api_client(server) as api:
        a = CrdAllocator(api, "a", NAMESPACE, lease_seconds=2, grace_seconds=0.1, start=False)
        b = CrdAllocator(api, "b", NAMESPACE, lease_seconds=2, grace_seconds=0.1, start=False)
        web_a = a.allocate(web)
        assert b.allocate(web) == web_a
        assert not b.backend.create(web_a.id + 1, web)     # a lost race: gives it back
        gone = a.allocate(db)
        a.sync()                                          # the Lease renewed
        a.release(gone)
        a.collect_garbage()
        time.sleep(0.2)
        assert a.collect_garbage() == [gone]
        b.close(revoke=False)                             # b crashes...
        b = CrdAllocator(api, "b", NAMESPACE, lease_seconds=2, start=False)
        assert b.allocate(web) == web_a                   # ...and its next process
        a.refresh()
        a.close()
        b.close()
        return server.requests


def test_every_request_is_allowed_and_every_grant_is_used() -> None:
    docs = render("overlays/kind")
    (cluster_role,) = by_kind(docs, "ClusterRole")
    (role,) = by_kind(docs, "Role")
    allowed: dict[tuple[str, str, str | None], set[str]] = {}
    for (group, resource), verbs in _grants(cluster_role).items():
        allowed[(group, resource, None)] = verbs
    for (group, resource), verbs in _grants(role).items():
        allowed[(group, resource, role["metadata"]["namespace"])] = verbs

    used: dict[tuple[str, str, str | None], set[str]] = {}
    for request in identity_life():
        verb, group, resource, namespace = rbac_request(request)
        # A ClusterRole grants in every namespace; a Role only in its own.
        key = (group, resource, namespace)
        grant = allowed.get(key, set()) | allowed.get((group, resource, None), set())
        assert verb in grant, f"{request.method} {request.path}: {verb} is not granted"
        used.setdefault(key, set()).add(verb)

    granted_here = {key: verbs for key, verbs in allowed.items() if key[0] in IDENTITY_GROUPS}
    assert used == granted_here, "a verb granted on identity objects that is never used"


def test_the_request_mapping_follows_rbac() -> None:
    def req(method: str, path: str, **params: Any) -> Request:
        return Request(method, path, {k: str(v) for k, v in params.items()}, 0.0)

    assert rbac_request(req("GET", "/apis/membrane.io/v1alpha1/membraneidentities")) == (
        "list", "membrane.io", "membraneidentities", None)
    assert rbac_request(req("GET", "/apis/membrane.io/v1alpha1/membraneidentities",
                            watch=1))[0] == "watch"
    assert rbac_request(req("PUT", "/apis/coordination.k8s.io/v1/namespaces/x/leases/l")) == (
        "update", "coordination.k8s.io", "leases", "x")
