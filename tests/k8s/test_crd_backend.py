"""The crd identity backend against the fake API server: the Backend contract
(tests/identity_backend_contract.py) on CrdBackend, then what is particular to objects:
two agents racing one label set with different numbers, orphans left by a crash half-way,
Leases replaced and expired, and API errors mapped to the backend's errors."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest
from kubernetes import client

from crd_cluster import NAMESPACE, api_client, claims, crd_server, expire_lease, identities
from core.errors import AllocationError
from fake_apiserver import FakeApiServer
from identity.backend import (Backend, OwnershipLost, StoredIdentity, StoreRefused,
                              StoreUnreachable, UnusedMarker)
from identity.crd import CrdAllocator, CrdBackend
from identity.crd_objects import (claim_name, claim_object, identity_object, lease_name,
                                  micro_time)
from identity.labels import Label, LabelSet
from tests.identity_backend_contract import (DB, WEB, BackendContract, Expire, Pair, Plant,
                                             stored, unused)
from tests.identity_backend_contract import marker as marker_of

LEASE = 5   # seconds


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with crd_server() as s:
        yield s


@pytest.fixture
def api(server: FakeApiServer) -> Iterator[client.ApiClient]:
    with api_client(server) as c:
        yield c


@pytest.fixture
def backends(api: client.ApiClient) -> Iterator[Callable[..., CrdBackend]]:
    made: list[CrdBackend] = []

    def make(node: str, **kwargs: object) -> CrdBackend:
        options: dict[str, object] = {"lease_seconds": LEASE}
        options.update(kwargs)
        backend = CrdBackend(api, node, NAMESPACE, **options)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


class TestCrdBackend(BackendContract):
    @pytest.fixture
    def pair(self, backends: Callable[..., CrdBackend]) -> Pair:
        return backends("a"), backends("b")

    @pytest.fixture
    def expire(self, server: FakeApiServer) -> Expire:
        def end_lease(backend: Backend) -> None:
            expire_lease(server, backend.node)
        return end_lease

    @pytest.fixture
    def plant(self, server: FakeApiServer) -> Plant:
        def write(labels: LabelSet, number: int) -> None:
            # The strongest forgery: owned by the real identity's uid.
            (owner,) = [doc["metadata"]["uid"] for doc in server.objects("MembraneIdentity")
                        if doc["metadata"]["name"] == str(number)]
            server.apply(claim_object(labels, number, owner))
        return write


# -- one label set, one object -------------------------------------------------------------

def test_the_loser_of_a_race_on_one_label_set_gives_its_number_back(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    assert a.create(300, WEB)
    assert not b.create(301, WEB), "the claim is taken: b lost"
    assert identities(server) == {300: WEB.lines()}, "b's identity 301 was deleted again"
    assert claims(server) == {WEB.key(): 300}
    assert b.create(301, DB), "and 301 is free for the next label set"


def test_an_identity_left_between_the_two_creates_is_never_handed_out(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    # What a crash between step 1 (the identity) and step 2 (the claim) leaves behind.
    server.apply(identity_object(300, WEB, {"gone": "uid-of-an-ended-lease"}))
    a, b = backends("a"), backends("b")
    assert a.claim_of(WEB) is None
    assert not a.create(300, WEB), "the number stays reserved"
    assert a.create(301, WEB)
    assert not b.reacquire(300, WEB), "only the claimed identity is ever taken"
    claim = b.claim_of(WEB)
    assert claim is not None and claim.number == 301 and b.acquire(claim)
    # Nobody's reference counts on 300 (its Lease ended), so it is garbage like any other.
    assert 300 not in b.referenced()
    assert b.mark_unused(300, 1.0)
    assert b.free(stored(b, 300), marker_of(b, 300))
    assert identities(server) == {301: WEB.lines()} and claims(server) == {WEB.key(): 301}


def test_a_claim_whose_identity_is_gone_is_deleted_by_the_next_agent(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    # What a crash between the two deletes of a free leaves (or kubectl delete mid).
    server.apply(claim_object(WEB, 300, "uid-of-a-deleted-identity"))
    a = backends("a")
    claim = a.claim_of(WEB)
    assert claim is not None and not a.acquire(claim)
    assert claims(server) == {}, "acquire found the identity gone and dropped its claim"
    server.apply(claim_object(WEB, 300, "uid-of-a-deleted-identity"))
    assert a.create(300, WEB), "create replaces an orphaned claim"
    assert claims(server) == {WEB.key(): 300}


def web_waiting_to_be_freed(a: Backend) -> tuple[StoredIdentity, UnusedMarker]:
    """a creates WEB as 300, lets go of it and starts its grace period: what a collector
    reads before it frees."""
    assert a.create(300, WEB)
    unused(a, 300)
    return stored(a, 300), marker_of(a, 300)


def test_two_agents_freeing_at_once_free_once(server: FakeApiServer,
                                             backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    identity, marker = web_waiting_to_be_freed(a)
    assert [a.free(identity, marker), b.free(identity, marker)] == [True, False]
    assert identities(server) == {} and claims(server) == {}


def test_a_reference_taken_after_the_gc_read_wins_over_the_free(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    identity, marker = web_waiting_to_be_freed(a)
    doc = server.get("MembraneIdentity", "300")
    assert doc is not None
    # b takes it again while a's collector holds what it read.
    claim = b.claim_of(WEB)
    assert claim is not None and b.acquire(claim)
    assert not a.free(identity, marker)
    assert server.get("MembraneIdentity", "300") is not None


IDENTITY_300 = "/apis/membrane.io/v1alpha1/membraneidentities/300"


def test_a_reference_taken_between_the_free_read_and_its_delete_wins(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    identity, marker = web_waiting_to_be_freed(a)
    claim = b.claim_of(WEB)
    assert claim is not None
    taken: list[bool] = []
    # a's free has read and checked 300; b takes it before a's delete arrives.
    server.before("DELETE", IDENTITY_300, lambda: taken.append(b.acquire(claim)))
    assert not a.free(identity, marker)
    assert taken == [True]
    assert identities(server) == {300: WEB.lines()} and claims(server) == {WEB.key(): 300}
    assert b.own_references() == {300}


def test_of_two_collectors_deleting_at_once_one_frees(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    identity, marker = web_waiting_to_be_freed(a)
    freed: list[bool] = []
    # Both read 300 as free; b's delete lands between a's read and a's delete.
    server.before("DELETE", IDENTITY_300, lambda: freed.append(b.free(identity, marker)))
    assert not a.free(identity, marker)
    assert freed == [True]
    assert identities(server) == {} and claims(server) == {}


def test_a_free_between_the_acquire_read_and_its_update_makes_acquire_fail(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    identity, marker = web_waiting_to_be_freed(a)
    claim = b.claim_of(WEB)
    assert claim is not None
    freed: list[bool] = []
    server.before("PUT", IDENTITY_300, lambda: freed.append(a.free(identity, marker)))
    assert not b.acquire(claim), "the identity the claim named is gone"
    assert freed == [True]
    assert b.claim_of(WEB) is None and b.create(300, WEB)


def test_marking_drops_references_whose_lease_ended(server: FakeApiServer,
                                                   backends: Callable[..., CrdBackend]) -> None:
    a, b = backends("a"), backends("b")
    assert a.create(300, WEB)
    expire_lease(server, "a")
    assert b.mark_unused(300, 1.0)
    doc = server.get("MembraneIdentity", "300")
    assert doc is not None and doc["status"]["references"] == {}
    assert doc["status"]["unused"]["since"] == micro_time(1.0)


# -- Leases ----------------------------------------------------------------------------

def test_a_restarted_agent_replaces_its_lease_and_the_old_references_stop_counting(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    old = backends("n1")
    assert old.create(300, WEB)
    first = old.lease_uid
    new = backends("n1")            # the same node, a new process
    assert new.keep_alive() is True
    assert new.lease_uid != first
    lease = server.get("Lease", lease_name("n1"), NAMESPACE)
    assert lease is not None and lease["metadata"]["uid"] == new.lease_uid
    assert lease["spec"]["holderIdentity"] == "n1"
    assert new.referenced() == set() and new.own_references() == set()
    assert new.reacquire(300, WEB)
    assert new.own_references() == {300}
    with pytest.raises(OwnershipLost):
        old.reacquire(300, WEB)


def test_a_lease_not_renewed_in_time_ends_and_its_references_with_it(
        backends: Callable[..., CrdBackend]) -> None:
    now = [1000.0]
    a = backends("a", clock=lambda: now[0], lease_seconds=2)
    b = backends("b", clock=lambda: now[0], lease_seconds=2)
    assert a.create(300, WEB)
    assert a.keep_alive() is True, "the Lease create took is new"
    now[0] += 1.5
    assert a.keep_alive() is False, "renewed in time"
    now[0] += 1.5
    assert b.referenced() == {300}
    now[0] += 2.5
    assert b.referenced() == set(), "a's Lease expired"
    assert a.keep_alive() is True, "too late to renew: a new Lease, references to re-take"


def test_close_deletes_the_lease(server: FakeApiServer,
                                 backends: Callable[..., CrdBackend]) -> None:
    a = backends("a")
    assert a.keep_alive()
    assert server.get("Lease", lease_name("a"), NAMESPACE) is not None
    a.close()
    assert server.get("Lease", lease_name("a"), NAMESPACE) is None


def test_long_node_names_get_a_valid_lease_name() -> None:
    name = lease_name("n" * 250)
    assert len(name) <= 253 and name.startswith("membrane-identities-")
    assert lease_name("kind-worker") == "membrane-identities-kind-worker"


# -- errors -----------------------------------------------------------------------------

def test_rbac_refusal_is_store_refused_and_an_outage_is_unreachable(
        server: FakeApiServer, backends: Callable[..., CrdBackend]) -> None:
    a = backends("a")
    path = f"/apis/membrane.io/v1alpha1/membraneidentityclaims/{claim_name(WEB)}"
    server.fail(path, 403)
    with pytest.raises(StoreRefused, match="403"):
        a.claim_of(WEB)
    assert a.reachable
    server.fail(path, 503)
    with pytest.raises(StoreUnreachable, match="503"):
        a.claim_of(WEB)
    assert not a.reachable
    server.heal(path)
    server.stop()
    try:
        with pytest.raises(StoreUnreachable):
            a.numbers()
        assert not a.reachable
    finally:
        server.start()
    assert a.numbers() == set() and a.reachable


def test_without_the_crds_allocation_says_what_to_install() -> None:
    with FakeApiServer() as bare, api_client(bare) as api:
        allocator = CrdAllocator(api, "a", NAMESPACE, start=False)
        with pytest.raises(AllocationError, match=r"CRD membraneidentities.membrane.io is "
                                                  r"not installed"):
            allocator.allocate(WEB)
        assert allocator.lookup_labels(WEB) is None
        allocator.close()


def test_labels_round_trip_exactly_and_odd_ones_are_refused(
        backends: Callable[..., CrdBackend]) -> None:
    a = backends("a")
    odd = LabelSet.parse(["k8s:io.kubernetes.pod.namespace=shop", "k8s:a:b=c=d",
                          "k8s:empty=", "k8s:flag"])
    assert a.create(300, odd)
    assert a.identity(300) == odd
    claim = a.claim_of(odd)
    assert claim is not None and claim.number == 300
    with pytest.raises(StoreRefused, match="key with '='"):
        a.create(301, LabelSet([Label("k8s", "x=y", "z")]))
