"""The etcd identity allocator against a real etcd on loopback: the Backend contract
(tests/identity_backend_contract.py) on EtcdBackend, then EtcdAllocator end to end.

Every test uses its own key prefix, so they share one etcd (started once per module).
TTLs and grace periods are short so the whole file runs in well under a minute.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import etcd3gw
import pytest

from core.errors import AllocationError
from identity.backend import Backend
from identity.etcd import EtcdAllocator, EtcdBackend
from identity.labels import LabelSet
from tests.etcd_server import EtcdServer, etcd_fixture
from tests.identity_backend_contract import BackendContract, Expire, Pair, Plant
from tests.identity_helpers import labels, race, shared_and_own, wait_for

REPO = Path(__file__).resolve().parents[2]   # the children import the tree from here

LEASE_TTL = 2     # seconds; etcd's minimum is about one election timeout
GRACE = 0.5

etcd = etcd_fixture(scope="module")


@pytest.fixture
def prefix() -> str:
    return f"/membrane-test/{uuid.uuid4().hex[:8]}"


@pytest.fixture
def raw(etcd: EtcdServer) -> etcd3gw.Etcd3Client:
    return etcd3gw.client(host="127.0.0.1", port=etcd.client_port, timeout=3)


@pytest.fixture
def agents(etcd: EtcdServer, prefix: str) -> Iterator[Callable[..., EtcdAllocator]]:
    made: list[EtcdAllocator] = []

    def make(node: str, **kwargs: object) -> EtcdAllocator:
        options: dict[str, object] = dict(lease_ttl=LEASE_TTL, grace_seconds=GRACE,
                                          refresh_interval=0.3)
        options.update(kwargs)
        agent = EtcdAllocator([etcd.endpoint], node, prefix, **options)  # type: ignore[arg-type]
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


class TestEtcdBackend(BackendContract):
    @pytest.fixture
    def pair(self, etcd: EtcdServer, prefix: str) -> Iterator[Pair]:
        a, b = (EtcdBackend([etcd.endpoint], node, prefix, lease_ttl=LEASE_TTL)
                for node in ("a", "b"))
        yield a, b
        a.close()
        b.close()

    @pytest.fixture
    def expire(self, raw: etcd3gw.Etcd3Client) -> Expire:
        def revoke(backend: Backend) -> None:
            assert isinstance(backend, EtcdBackend) and backend.lease_id is not None
            raw.post(raw.get_url("/kv/lease/revoke"), json={"ID": backend.lease_id})
        return revoke

    @pytest.fixture
    def plant(self, raw: etcd3gw.Etcd3Client, prefix: str) -> Plant:
        def write(labels: LabelSet, number: int) -> None:
            raw.put(claim_key(prefix, labels), str(number))
        return write


def claim_key(prefix: str, labels: LabelSet) -> str:
    """Where a label set's claim lives (identity/etcd.py: labels/<sha256 of its key>)."""
    return f"{prefix}/labels/{hashlib.sha256(labels.key().encode()).hexdigest()}"


def keys_under(raw: etcd3gw.Etcd3Client, prefix: str) -> set[str]:
    return {meta["key"].decode() for _, meta in raw.get_prefix(prefix)}


# -- agreement ------------------------------------------------------------------------

def test_agents_racing_in_threads_agree_on_shared_labels_and_never_share_a_number(
        agents: Callable[..., EtcdAllocator]) -> None:
    nodes = [agents(f"node{i}") for i in range(8)]
    results = race(nodes, shared_and_own)
    assert len({shared for shared, _ in results}) == 1
    numbers = [own for _, own in results] + [results[0][0]]
    assert len(set(numbers)) == len(nodes) + 1
    assert all(n >= 256 for n in numbers)


CHILD = """
import json, sys
from identity.etcd import EtcdAllocator
from identity.labels import LabelSet
endpoint, prefix, node, hold = sys.argv[1:5]
agent = EtcdAllocator([endpoint], node, prefix, lease_ttl=2, grace_seconds=0.5)
ns = "k8s:io.kubernetes.pod.namespace=default"
shared = agent.allocate(LabelSet.parse([ns, "app=shared"]))
own = agent.allocate(LabelSet.parse([ns, "app=own-" + node]))
print(json.dumps({"shared": shared.id, "own": own.id}), flush=True)
if hold == "hold":
    sys.stdin.read()   # keeps the lease alive until killed
agent.close()
"""


def spawn(etcd: EtcdServer, prefix: str, node: str, hold: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, etcd.endpoint, prefix, node, "hold" if hold else "exit"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)


def test_agents_in_separate_processes_agree(etcd: EtcdServer, prefix: str,
                                            agents: Callable[..., EtcdAllocator]) -> None:
    children = [spawn(etcd, prefix, f"proc{i}") for i in range(4)]
    outputs = [json.loads(c.communicate(timeout=30)[0]) for c in children]
    assert len({o["shared"] for o in outputs}) == 1
    assert len({o["own"] for o in outputs} | {outputs[0]["shared"]}) == 5
    # A node that never allocated anything still learns what the others mean.
    observer = agents("observer")
    shared = observer.lookup(outputs[0]["shared"])
    assert shared is not None and shared.labels == labels("app=shared")


def test_another_nodes_identity_is_found_by_lookup_and_listed_after_refresh(
        agents: Callable[..., EtcdAllocator]) -> None:
    a, b = agents("a", refresh_interval=60), agents("b", refresh_interval=60)
    made = b.allocate(labels("app=remote"))
    assert a.lookup(made.id) == made
    assert a.lookup_labels(labels("app=remote")) == made
    b.allocate(labels("app=later"))
    a.refresh()
    assert {i.labels for i in a.identities()} >= {labels("app=remote"), labels("app=later")}


def test_a_planted_claim_naming_another_identity_is_refused_not_shared(
        agents: Callable[..., EtcdAllocator], raw: etcd3gw.Etcd3Client, prefix: str) -> None:
    """`labels/<hash of X> = <number of Y>` written into etcd must not give pods with
    labels X the identity of Y (and so Y's allows)."""
    a, b = agents("a"), agents("b")
    db = a.allocate(labels("app=db"))
    evil = labels("app=evil")
    raw.put(claim_key(prefix, evil), str(db.id))
    with pytest.raises(AllocationError, match=f"{db.id}.*other labels"):
        b.allocate(evil)
    assert b.lookup_labels(evil) is None
    assert b.references(db.id) == 0
    assert f"{prefix}/refs/{db.id}/b" not in keys_under(raw, f"{prefix}/refs/")
    assert b.allocate(labels("app=db")) == db          # the real owner is unaffected


# -- leases and garbage collection ------------------------------------------------------

def test_a_dead_nodes_refs_expire_with_its_lease_and_gc_frees_after_grace(
        etcd: EtcdServer, prefix: str, raw: etcd3gw.Etcd3Client,
        agents: Callable[..., EtcdAllocator]) -> None:
    child = spawn(etcd, prefix, "doomed", hold=True)
    assert child.stdout is not None
    got = json.loads(child.stdout.readline())
    survivor = agents("survivor")
    keep = survivor.allocate(labels("app=shared"))
    assert keep.id == got["shared"]
    assert f"{prefix}/refs/{got['own']}/doomed" in keys_under(raw, f"{prefix}/refs/")

    child.kill()   # no lease revoke: the refs must go by expiry
    child.wait()
    wait_for(lambda: not any(k.endswith("/doomed") for k in keys_under(raw, f"{prefix}/refs/")),
             timeout=LEASE_TTL + 6, what="the dead node's refs to expire")

    assert survivor.collect_garbage() == []          # first pass only starts the grace period
    assert f"{prefix}/unused/{got['own']}" in keys_under(raw, f"{prefix}/unused/")
    time.sleep(GRACE + 0.1)
    freed = survivor.collect_garbage()
    assert [i.id for i in freed] == [got["own"]]      # still referenced by survivor: kept
    assert survivor.lookup(got["shared"]) == keep
    assert f"{prefix}/ids/{got['own']}" not in keys_under(raw, f"{prefix}/ids/")


def test_an_identity_taken_again_within_grace_is_not_freed(
        agents: Callable[..., EtcdAllocator], raw: etcd3gw.Etcd3Client, prefix: str) -> None:
    a, b = agents("a"), agents("b")
    first = a.allocate(labels("app=replaced"))
    a.release(first)
    assert f"{prefix}/unused/{first.id}" in keys_under(raw, f"{prefix}/unused/")
    again = b.allocate(labels("app=replaced"))      # the pod's successor, on another node
    assert again.id == first.id
    assert keys_under(raw, f"{prefix}/unused/") == set()
    time.sleep(GRACE + 0.1)
    assert a.collect_garbage() == []
    assert b.lookup(first.id) == again


def test_freed_numbers_are_reused_lowest_first(agents: Callable[..., EtcdAllocator]) -> None:
    a = agents("a", grace_seconds=0)
    one, two = a.allocate(labels("app=one")), a.allocate(labels("app=two"))
    a.release(one)
    assert [i.id for i in a.collect_garbage()] == [one.id]
    assert a.allocate(labels("app=three")).id == one.id
    assert a.lookup(two.id) == two


def test_a_full_identity_space_is_a_clear_allocation_error(
        agents: Callable[..., EtcdAllocator]) -> None:
    a = agents("a", max_identity=257)
    a.allocate(labels("app=one"))
    a.allocate(labels("app=two"))
    with pytest.raises(AllocationError, match="no free label identity"):
        a.allocate(labels("app=three"))


def test_a_lost_lease_is_replaced_and_refs_recreated(
        agents: Callable[..., EtcdAllocator], raw: etcd3gw.Etcd3Client, prefix: str) -> None:
    a = agents("a")
    made = a.allocate(labels("app=held"))
    ref = f"{prefix}/refs/{made.id}/a"
    assert ref in keys_under(raw, f"{prefix}/refs/")
    raw.post(raw.get_url("/kv/lease/revoke"), json={"ID": a.backend.lease_id})
    assert ref not in keys_under(raw, f"{prefix}/refs/")
    wait_for(lambda: ref in keys_under(raw, f"{prefix}/refs/"), what="the ref to come back")


def test_an_identity_freed_while_its_node_was_away_comes_back_with_its_number(
        agents: Callable[..., EtcdAllocator], raw: etcd3gw.Etcd3Client) -> None:
    away = agents("away", start=False, grace_seconds=0)   # no background thread: we drive it
    other = agents("other", grace_seconds=0)
    made = away.allocate(labels("app=away"))
    raw.post(raw.get_url("/kv/lease/revoke"), json={"ID": away.backend.lease_id})
    other.collect_garbage()
    assert [i.id for i in other.collect_garbage()] == [made.id]
    assert away.sync()
    other.refresh()
    assert other.lookup(made.id) == made
    assert other.allocate(labels("app=away")) == made


# -- outages ----------------------------------------------------------------------------

def test_an_etcd_outage_keeps_known_identities_working_and_refs_are_recreated(
        etcd: EtcdServer, agents: Callable[..., EtcdAllocator], raw: etcd3gw.Etcd3Client,
        prefix: str) -> None:
    a, b = agents("a"), agents("b")
    mine = a.allocate(labels("app=mine"))
    theirs = b.allocate(labels("app=theirs"))
    a.refresh()
    etcd.stop()
    try:
        assert a.lookup(theirs.id) == theirs
        host = a.lookup(1)
        assert host is not None and host.labels == LabelSet.parse(["reserved:host"])
        assert {i.id for i in a.identities()} >= {mine.id, theirs.id}
        assert a.allocate(labels("app=mine")) == mine
        assert a.allocate(labels("app=theirs")) == theirs   # known, but not yet used here
        with pytest.raises(AllocationError, match="etcd is unreachable"):
            a.allocate(labels("app=brand-new"))
        a.release(mine)
        a.release(mine)                                  # released during the outage
        assert not a.connected
    finally:
        etcd.start()
    wait_for(lambda: f"{prefix}/refs/{theirs.id}/a" in keys_under(raw, f"{prefix}/refs/"),
             what="node a's ref taken during the outage")
    wait_for(lambda: f"{prefix}/refs/{mine.id}/a" not in keys_under(raw, f"{prefix}/refs/"),
             what="node a's ref released during the outage to go")
    assert a.connected
    assert a.allocate(labels("app=brand-new")).id not in {mine.id, theirs.id}
