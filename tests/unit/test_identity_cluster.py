"""The cluster allocation algorithm (identity/cluster.py) over the in-memory backend.

No thread runs in the background here: each test drives `sync()` and `collect_garbage()`
itself, and time by a fake wall clock, so every interleaving below is deterministic. The
same behaviour against a real etcd is in tests/k8s/test_etcd_allocator.py.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

import pytest

from core.errors import AllocationError
from identity.allocator import Allocator, Identity
from identity.cluster import ClusterAllocator
from identity.labels import LabelSet
from identity.memory import MemoryBackend, MemoryStore
from identity.reserved import MAX_LABEL_IDENTITY, MIN_LABEL_IDENTITY, ReservedIdentity
from tests.identity_helpers import FakeClock, labels, race, shared_and_own

GRACE = 60.0


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


Make = Callable[..., ClusterAllocator]


@pytest.fixture
def nodes(store: MemoryStore, clock: FakeClock) -> Iterator[Make]:
    made: list[ClusterAllocator] = []

    def make(node: str, grace_seconds: float = GRACE,
             max_identity: int = MAX_LABEL_IDENTITY) -> ClusterAllocator:
        allocator = ClusterAllocator(MemoryBackend(store, node), grace_seconds, clock=clock,
                                     max_identity=max_identity, start=False,
                                     refresh_interval=3600.0)
        made.append(allocator)
        return allocator

    yield make
    for allocator in made:
        allocator.close()


def expire(store: MemoryStore, node: ClusterAllocator) -> None:
    """The node's lease runs out in the store, as a node cut off too long would see."""
    backend = node.backend
    assert isinstance(backend, MemoryBackend)
    store.expire_lease(backend.lease_id)


def referencing(store: MemoryStore, number: int) -> set[str]:
    return set(store.references.get(number, {}))


# -- agreement --------------------------------------------------------------------------

def test_a_claim_naming_another_identitys_number_is_refused_and_not_cached(
        nodes: Make, store: MemoryStore) -> None:
    a, b = nodes("a"), nodes("b")
    db = a.allocate(labels("app=db"))
    evil = labels("app=evil")
    store.put(store.claims, evil.key(), db.id)     # written behind the allocators' backs
    with pytest.raises(AllocationError, match=f"claims number {db.id}.*other labels"):
        b.allocate(evil)
    assert b.lookup_labels(evil) is None
    assert referencing(store, db.id) == {"a"}
    assert b.allocate(labels("app=db")) == db


def test_it_satisfies_the_allocator_protocol(nodes: Make) -> None:
    allocator: Allocator = nodes("a")
    assert allocator.identities() == []


def test_nodes_racing_in_threads_agree_on_shared_labels_and_never_share_a_number(
        nodes: Make) -> None:
    agents = [nodes(f"node{i}") for i in range(8)]
    results = race(agents, shared_and_own)
    assert len({shared for shared, _ in results}) == 1
    numbers = {own for _, own in results} | {results[0][0]}
    assert numbers == set(range(MIN_LABEL_IDENTITY, MIN_LABEL_IDENTITY + len(agents) + 1))


def test_one_label_set_gets_one_number_on_every_node_and_each_node_references_it(
        nodes: Make, store: MemoryStore) -> None:
    a, b = nodes("a"), nodes("b")
    first = a.allocate(labels("app=web"))
    assert first.id == MIN_LABEL_IDENTITY
    assert b.allocate(labels("app=web")) == first
    assert a.allocate(labels("app=web")) == first
    assert (a.references(first.id), b.references(first.id)) == (2, 1)
    assert referencing(store, first.id) == {"a", "b"}
    assert b.allocate(labels("app=db")).id == MIN_LABEL_IDENTITY + 1


def test_another_nodes_identity_is_found_by_lookup_and_listed_after_refresh(
        nodes: Make) -> None:
    a, b = nodes("a"), nodes("b")
    made = b.allocate(labels("app=remote"))
    assert a.lookup(made.id) == made
    assert a.lookup_labels(labels("app=remote")) == made
    later = b.allocate(labels("app=later"))
    assert later not in a.identities()
    a.refresh()
    assert set(a.identities()) == {made, later}


@pytest.mark.parametrize("bad, message", [
    (LabelSet(), "empty label set"),
    (LabelSet.parse(["cidr:10.0.0.0/24"]), "CidrAllocator"),
    (LabelSet.parse(["reserved:host", "k8s:app=x"]), "reserved labels cannot be combined"),
], ids=["the empty set", "CIDR labels", "reserved labels mixed with others"])
def test_label_sets_it_refuses(nodes: Make, store: MemoryStore, bad: LabelSet,
                               message: str) -> None:
    with pytest.raises(AllocationError, match=message):
        nodes("a").allocate(bad)
    assert store.identities == {}


def test_reserved_identities_have_fixed_numbers_and_never_reach_the_store(
        nodes: Make, store: MemoryStore) -> None:
    a = nodes("a")
    requests = store.requests
    host = a.allocate(ReservedIdentity.HOST.labels)
    assert host == Identity(1, ReservedIdentity.HOST.labels)
    a.release(host)
    assert a.lookup(1) == host and a.lookup_labels(ReservedIdentity.HOST.labels) == host
    assert store.requests == requests and store.identities == {}


# -- release and garbage collection -----------------------------------------------------

def test_an_unreferenced_identity_is_freed_after_the_grace_period_and_its_number_reused(
        nodes: Make, store: MemoryStore, clock: FakeClock) -> None:
    a = nodes("a")
    one, two = a.allocate(labels("app=one")), a.allocate(labels("app=two"))
    a.release(one)
    assert one.id in store.markers, "the last release starts the grace period"
    clock.advance(GRACE - 1)
    assert a.collect_garbage() == []
    clock.advance(1)
    assert a.collect_garbage() == [one]
    assert a.lookup(one.id) is None and a.lookup(two.id) == two
    assert a.allocate(labels("app=three")).id == one.id


def test_an_identity_taken_again_within_grace_by_another_node_is_not_freed(
        nodes: Make, store: MemoryStore, clock: FakeClock) -> None:
    a, b = nodes("a"), nodes("b")
    first = a.allocate(labels("app=replaced"))
    a.release(first)
    again = b.allocate(labels("app=replaced"))      # the pod's successor, on another node
    assert again == first and store.markers == {}
    clock.advance(GRACE + 1)
    assert a.collect_garbage() == []
    assert a.lookup(first.id) == again


def test_a_release_is_not_the_last_while_this_node_holds_other_references(
        nodes: Make, store: MemoryStore) -> None:
    a = nodes("a")
    ident = a.allocate(labels("app=web"))
    a.allocate(labels("app=web"))
    a.release(ident)
    assert referencing(store, ident.id) == {"a"} and store.markers == {}
    a.release(ident)
    assert referencing(store, ident.id) == set() and ident.id in store.markers
    with pytest.raises(AllocationError, match="released more often than allocated"):
        a.release(ident)


def test_a_dead_nodes_references_go_with_its_lease_and_gc_frees_after_grace(
        nodes: Make, store: MemoryStore, clock: FakeClock) -> None:
    doomed, survivor = nodes("doomed"), nodes("survivor")
    shared = doomed.allocate(labels("app=shared"))
    own = doomed.allocate(labels("app=own"))
    assert survivor.allocate(labels("app=shared")) == shared
    expire(store, doomed)                            # no release: the node just died
    assert referencing(store, own.id) == set()
    assert survivor.collect_garbage() == []          # the first pass only starts the grace
    assert own.id in store.markers and shared.id not in store.markers
    clock.advance(GRACE)
    assert survivor.collect_garbage() == [own]
    assert survivor.lookup(shared.id) == shared


def test_the_marker_of_an_identity_deleted_by_hand_is_dropped(
        nodes: Make, store: MemoryStore) -> None:
    a = nodes("a")
    ident = a.allocate(labels("app=web"))
    a.release(ident)
    del store.identities[ident.id]                   # an operator with etcdctl
    assert a.collect_garbage() == [] and store.markers == {}


def test_a_full_identity_space_is_a_clear_allocation_error(nodes: Make) -> None:
    a = nodes("a", max_identity=MIN_LABEL_IDENTITY + 1)
    a.allocate(labels("app=one"))
    a.allocate(labels("app=two"))
    with pytest.raises(AllocationError, match="no free label identity in memory store"):
        a.allocate(labels("app=three"))


# -- leases ------------------------------------------------------------------------------

def test_a_lost_lease_is_replaced_and_references_recreated(
        nodes: Make, store: MemoryStore) -> None:
    a = nodes("a")
    held = a.allocate(labels("app=held"))
    expire(store, a)
    assert referencing(store, held.id) == set()
    assert a.sync()
    assert referencing(store, held.id) == {"a"}


def test_a_lease_lost_under_an_allocation_is_replaced_and_the_allocation_succeeds(
        nodes: Make, store: MemoryStore) -> None:
    a = nodes("a")
    held = a.allocate(labels("app=held"))
    expire(store, a)
    new = a.allocate(labels("app=new"))
    assert referencing(store, new.id) == {"a"}
    a.sync()                                          # and the older references come back
    assert referencing(store, held.id) == {"a"}


def test_an_identity_freed_while_its_node_was_away_comes_back_with_its_number(
        nodes: Make, store: MemoryStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    away, other = nodes("away"), nodes("other")
    made = away.allocate(labels("app=away"))
    expire(store, away)
    other.collect_garbage()
    clock.advance(GRACE)
    assert other.collect_garbage() == [made]
    with caplog.at_level(logging.WARNING):
        assert away.sync()
    assert "restored identity" in caplog.text
    other.refresh()
    assert other.lookup(made.id) == made
    assert other.allocate(labels("app=away")) == made


def test_a_number_reused_while_its_node_was_away_is_logged_and_kept_by_that_node(
        nodes: Make, store: MemoryStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    away, other = nodes("away"), nodes("other", grace_seconds=0)
    made = away.allocate(labels("app=away"))
    expire(store, away)
    other.collect_garbage()
    assert other.collect_garbage() == [made]
    taken = other.allocate(labels("app=newcomer"))
    assert taken.id == made.id
    with caplog.at_level(logging.ERROR):
        away.sync()
    assert f"identity {made.id}" in caplog.text and "reused" in caplog.text
    assert away.lookup(made.id) == made, "its endpoints keep the number until re-allocated"


# -- outages -----------------------------------------------------------------------------

def test_an_outage_keeps_known_identities_working_and_references_are_fixed_after(
        nodes: Make, store: MemoryStore) -> None:
    a, b = nodes("a"), nodes("b")
    mine = a.allocate(labels("app=mine"))
    theirs = b.allocate(labels("app=theirs"))
    a.refresh()
    store.reachable = False
    assert a.lookup(theirs.id) == theirs
    assert a.lookup(999) is None
    assert {mine, theirs} <= set(a.identities())
    assert a.allocate(labels("app=mine")) == mine
    assert a.allocate(labels("app=theirs")) == theirs   # known, not yet used here
    with pytest.raises(AllocationError, match="memory is unreachable"):
        a.allocate(labels("app=brand-new"))
    a.release(mine)
    a.release(mine)                                      # released during the outage
    assert a.collect_garbage() == []
    assert not a.sync() and not a.connected
    with pytest.raises(AllocationError, match="unreachable"):
        a.refresh()

    store.reachable = True
    assert a.sync() and a.connected
    assert referencing(store, theirs.id) == {"a", "b"}
    assert referencing(store, mine.id) == set() and mine.id in store.markers
    assert a.allocate(labels("app=brand-new")).id not in {mine.id, theirs.id}


def test_a_node_starting_during_an_outage_catches_up_when_the_store_is_back(
        nodes: Make, store: MemoryStore) -> None:
    store.reachable = False
    a = nodes("a")
    assert not a.connected
    with pytest.raises(AllocationError, match="unreachable"):
        a.allocate(labels("app=web"))
    store.reachable = True
    assert a.sync()
    assert a.allocate(labels("app=web")).id == MIN_LABEL_IDENTITY


def test_close_revokes_the_lease_unless_told_to_leave_it_to_expire(
        nodes: Make, store: MemoryStore) -> None:
    a, b = nodes("a"), nodes("b")
    held_a = a.allocate(labels("app=a"))
    held_b = b.allocate(labels("app=b"))
    a.close()
    b.close(revoke=False)
    assert referencing(store, held_a.id) == set()
    assert referencing(store, held_b.id) == {"b"}, "left to expire, as a crashed node's"
