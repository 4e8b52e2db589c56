"""What every identity Backend (identity/backend.py) must do, as tests any backend runs.

A test module subclasses `BackendContract` (pytest collects the subclass, named Test...)
and provides three fixtures:

    pair    two Backends ("a", "b") on one empty store, closed afterwards
    expire  a function that ends a backend's lease in the store, as expiry would
    plant   a function that writes a claim (label set -> number) straight into the
            store, as someone with write access to it could

tests/unit/test_identity_backend.py runs it on the in-memory backend,
tests/k8s/test_etcd_allocator.py on etcd, tests/k8s/test_crd_backend.py on the
Kubernetes API (the fake API server).
"""

from __future__ import annotations

from typing import Callable

import pytest

from identity.backend import Backend, OwnershipLost, StoredIdentity, UnusedMarker
from identity.labels import LabelSet

WEB = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=web"])
DB = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:app=db"])

Pair = tuple[Backend, Backend]
Expire = Callable[[Backend], None]
Plant = Callable[[LabelSet, int], None]


def stored(backend: Backend, number: int) -> StoredIdentity:
    return next(s for s in backend.identities() if s.number == number)


def marker(backend: Backend, number: int) -> UnusedMarker:
    return next(m for m in backend.unused_markers() if m.number == number)


def unused(backend: Backend, number: int, since: float = 1.0) -> None:
    """Drops this backend's reference and starts the grace period of number."""
    backend.drop_reference(number)
    assert backend.mark_unused(number, since)


class BackendContract:
    def test_create_is_create_if_absent_for_the_number_and_for_the_label_set(
            self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        assert not b.create(300, DB), "the number is taken"
        assert not b.create(301, WEB), "the label set is taken"
        claim = b.claim_of(WEB)
        assert claim is not None and (claim.labels, claim.number) == (WEB, 300)
        assert b.claim_of(DB) is None
        assert (b.identity(300), b.identity(301)) == (WEB, None)
        assert b.numbers() == {300}
        assert [(s.number, s.labels) for s in b.identities()] == [(300, WEB)]
        assert (b.referenced(), a.own_references(), b.own_references()) == ({300}, {300}, set())

    def test_acquire_holds_only_while_the_claim_read_is_unchanged(self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        claim = b.claim_of(WEB)
        assert claim is not None
        unused(a, 300)
        assert a.free(stored(a, 300), marker(a, 300))
        assert a.create(301, WEB)                    # freed and made again meanwhile
        assert not b.acquire(claim)
        fresh = b.claim_of(WEB)
        assert fresh is not None and b.acquire(fresh)
        assert b.own_references() == {301}

    def test_acquire_refuses_a_claim_whose_number_means_other_labels(
            self, pair: Pair, plant: Plant) -> None:
        a, b = pair
        assert a.create(300, DB)
        plant(WEB, 300)                              # "WEB is 300", but 300 is DB
        claim = b.claim_of(WEB)
        assert claim is not None and claim.number == 300
        assert not b.acquire(claim)
        assert b.own_references() == set()

    def test_reacquire_holds_only_while_the_number_means_exactly_those_labels(
            self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        assert not b.reacquire(300, DB)
        assert not b.reacquire(301, WEB)
        assert b.reacquire(300, WEB)
        assert b.own_references() == {300}

    def test_taking_a_reference_ends_the_grace_period(self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        unused(a, 300, since=5.0)
        assert [(m.number, m.since) for m in b.unused_markers()] == [(300, 5.0)]
        claim = b.claim_of(WEB)
        assert claim is not None and b.acquire(claim)
        assert b.unused_markers() == []
        unused(b, 300)
        assert b.reacquire(300, WEB)
        assert b.unused_markers() == []

    def test_mark_unused_needs_no_reference_no_marker_and_the_identity_as_read(
            self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        assert not b.mark_unused(300, 1.0), "a still references it"
        a.drop_reference(300)
        assert a.referenced() == set()
        assert not b.mark_unused(301, 1.0), "no such identity"
        assert not b.mark_unused(300, 1.0, version="0"), "the identity changed since read"
        assert b.mark_unused(300, 1.0, version=stored(b, 300).version)
        assert not a.mark_unused(300, 2.0), "it has a marker already"
        assert [m.since for m in a.unused_markers()] == [1.0]

    def test_free_needs_no_reference_and_the_identity_and_marker_as_read(
            self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        unused(a, 300)
        identity, first = stored(a, 300), marker(a, 300)
        assert b.reacquire(300, WEB)                 # taken again within the grace period
        assert not a.free(identity, first)
        unused(b, 300, since=2.0)
        assert not a.free(identity, first), "the marker is another one now"
        assert a.free(identity, marker(a, 300))
        assert (a.numbers(), a.claim_of(WEB), a.unused_markers()) == (set(), None, [])
        assert b.create(300, DB) and b.create(301, WEB), "number and labels are free again"

    def test_drop_marker_needs_the_marker_as_read(self, pair: Pair) -> None:
        a, b = pair
        assert a.create(300, WEB)
        unused(a, 300)
        first = marker(a, 300)
        assert a.reacquire(300, WEB)
        unused(a, 300, since=2.0)
        assert not b.drop_marker(first)
        assert b.drop_marker(marker(b, 300))
        assert b.unused_markers() == []

    def test_references_end_with_their_nodes_lease(self, pair: Pair, expire: Expire) -> None:
        a, b = pair
        assert a.create(300, WEB)
        assert b.reacquire(300, WEB)
        expire(a)
        assert (a.own_references(), b.referenced()) == (set(), {300})
        b.close()
        assert a.referenced() == set()

    def test_keep_alive_reports_a_new_lease_once(self, pair: Pair, expire: Expire) -> None:
        a, _ = pair
        assert a.keep_alive() is True
        assert a.keep_alive() is False
        expire(a)
        assert a.keep_alive() is True
        assert a.keep_alive() is False

    def test_a_reference_on_an_ended_lease_is_ownership_lost_and_nothing_lands(
            self, pair: Pair, expire: Expire) -> None:
        a, b = pair
        assert a.keep_alive()
        expire(a)
        with pytest.raises(OwnershipLost):
            a.create(300, WEB)
        assert (b.numbers(), b.claim_of(WEB)) == (set(), None)
        assert a.create(300, WEB), "the next write takes a new lease"
        assert a.keep_alive() is True
