"""CrdAllocator end to end against the fake API server: agents in threads and in separate
processes allocating at once, an agent restarting, garbage collection under churn, an API
server outage. Whatever happens, every label set has one identity number, the same on
every agent, and the stored objects say so (one claim per label set, naming an identity
with exactly those labels)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from kubernetes import client

from core.errors import AllocationError
from crd_cluster import NAMESPACE, api_client, claims, crd_server, identities
from fake_apiserver import FakeApiServer
from identity.allocator import Identity
from identity.crd import CrdAllocator
from identity.crd_objects import lease_name
from identity.labels import LabelSet
from tests.identity_helpers import labels, race, wait_for

REPO = Path(__file__).resolve().parents[2]
GRACE = 0.5


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with crd_server() as s:
        yield s


@pytest.fixture
def agents(server: FakeApiServer) -> Iterator[Callable[..., CrdAllocator]]:
    made: list[tuple[CrdAllocator, client.ApiClient]] = []

    def make(node: str, **kwargs: object) -> CrdAllocator:
        options: dict[str, object] = dict(lease_seconds=2, grace_seconds=GRACE,
                                          refresh_interval=0.3)
        options.update(kwargs)
        api = api_client(server)   # one connection pool per agent, as on separate nodes
        agent = CrdAllocator(api, node, NAMESPACE, **options)  # type: ignore[arg-type]
        made.append((agent, api))
        return agent

    yield make
    for agent, api in made:
        agent.close()
        api.close()


def assert_consistent(server: FakeApiServer) -> None:
    """The stored objects: one claim per label set (by construction of its name), each
    naming an identity with exactly its labels, no two claims naming one number."""
    stored, claimed = identities(server), claims(server)
    assert len(set(claimed.values())) == len(claimed), claimed
    for key, number in claimed.items():
        assert ";".join(stored.get(number, [])) == key, (key, number, stored.get(number))


# -- agreement ------------------------------------------------------------------------

def test_agents_racing_in_threads_agree_on_shared_labels_and_never_share_a_number(
        server: FakeApiServer, agents: Callable[..., CrdAllocator]) -> None:
    nodes = [agents(f"node{i}") for i in range(6)]

    def run(agent: CrdAllocator) -> list[int]:
        got = [agent.allocate(labels(f"app=shared-{i}")).id for i in range(3)]
        return got + [agent.allocate(labels(f"app=own-{agent.node}")).id]

    results = race(nodes, run)
    for i in range(3):
        assert len({got[i] for got in results}) == 1, f"shared-{i}: {results}"
    numbers = {n for got in results for n in got}
    assert len(numbers) == 3 + len(nodes), "two label sets never share a number"
    assert min(numbers) >= 256
    assert_consistent(server)
    assert len(identities(server)) == 3 + len(nodes), "the losers gave their numbers back"


CHILD = """
import json, sys
from kubernetes import client
from identity.crd import CrdAllocator
from identity.labels import LabelSet
url, node, hold = sys.argv[1:4]
cfg = client.Configuration(host=url)
agent = CrdAllocator(client.ApiClient(cfg), node, "membrane-system", lease_seconds=2,
                     grace_seconds=0.5)
ns = "k8s:io.kubernetes.pod.namespace=default"
shared = agent.allocate(LabelSet.parse([ns, "app=shared"]))
own = agent.allocate(LabelSet.parse([ns, "app=own-" + node]))
print(json.dumps({"shared": shared.id, "own": own.id}), flush=True)
if hold == "hold":
    sys.stdin.read()   # keeps the Lease renewed until killed
agent.close()
"""


def spawn(server: FakeApiServer, node: str, hold: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", CHILD, server.url, node,
                             "hold" if hold else "exit"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)


def test_agents_in_separate_processes_agree(server: FakeApiServer,
                                            agents: Callable[..., CrdAllocator]) -> None:
    children = [spawn(server, f"proc{i}") for i in range(3)]
    outputs = [json.loads(c.communicate(timeout=60)[0]) for c in children]
    assert len({o["shared"] for o in outputs}) == 1
    assert len({o["own"] for o in outputs} | {outputs[0]["shared"]}) == 4
    observer = agents("observer")
    shared = observer.lookup(outputs[0]["shared"])
    assert shared is not None and shared.labels == labels("app=shared")
    assert_consistent(server)


def test_a_restarted_agent_gets_the_same_numbers_and_its_old_references_end(
        server: FakeApiServer, agents: Callable[..., CrdAllocator]) -> None:
    other = agents("other")
    first = spawn(server, "n1", hold=True)
    assert first.stdout is not None
    before = json.loads(first.stdout.readline())
    old_lease = server.get("Lease", lease_name("n1"), NAMESPACE)
    assert other.allocate(labels("app=shared")).id == before["shared"]
    first.kill()                    # a crash: no Lease deleted, references left behind
    first.wait()
    again = spawn(server, "n1")     # the agent's next process on the same node
    after = json.loads(again.communicate(timeout=60)[0])
    assert after == before, "the same labels keep their numbers across a restart"
    new_lease = server.get("Lease", lease_name("n1"), NAMESPACE)
    assert old_lease is not None and new_lease is None, "the clean exit deleted its Lease"
    # Nothing of n1 counts now; the other agent still holds "shared".
    assert other.collect_garbage() == []                # marks n1's own identity
    time.sleep(GRACE + 0.1)
    assert [i.id for i in other.collect_garbage()] == [before["own"]]
    assert other.lookup(before["shared"]) == Identity(before["shared"], labels("app=shared"))
    assert_consistent(server)


def test_gc_under_churn_never_frees_a_held_identity_and_agents_agree(
        server: FakeApiServer, agents: Callable[..., CrdAllocator]) -> None:
    # grace 0: every release can be freed at once by either agent's collector, racing
    # the other agent taking the same labels again.
    nodes = [agents(name, grace_seconds=0.0) for name in ("a", "b")]
    pool = [labels(f"app=churn-{i}") for i in range(8)]
    held: dict[str, dict[LabelSet, Identity]] = {a.node: {} for a in nodes}
    errors: list[BaseException] = []
    stop = threading.Event()

    def churn(agent: CrdAllocator, seed: int) -> None:
        rng = random.Random(seed)
        mine = held[agent.node]
        try:
            for _ in range(60):
                choice = rng.choice(pool)
                if choice in mine:
                    agent.release(mine.pop(choice))
                else:
                    mine[choice] = agent.allocate(choice)
                    other = next(h for n, h in held.items() if n != agent.node)
                    theirs = other.get(choice)
                    if theirs is not None:
                        assert theirs.id == mine[choice].id, (choice, theirs, mine[choice])
        except BaseException as err:  # reported below
            errors.append(err)

    def collect(agent: CrdAllocator) -> None:
        while not stop.is_set():
            try:
                agent.collect_garbage()
            except BaseException as err:  # reported below
                errors.append(err)
            time.sleep(0.01)

    workers = [threading.Thread(target=churn, args=(a, i)) for i, a in enumerate(nodes)]
    collectors = [threading.Thread(target=collect, args=(a,)) for a in nodes]
    for t in workers + collectors:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    for t in collectors:
        t.join()
    assert not errors, errors

    stored, claimed = identities(server), claims(server)
    for node, mine in held.items():
        for label_set, identity in mine.items():
            assert stored.get(identity.id) == label_set.lines(), (node, identity)
            assert claimed.get(label_set.key()) == identity.id, (node, identity)
    both = set(held["a"]) & set(held["b"])
    assert all(held["a"][ls].id == held["b"][ls].id for ls in both)
    assert_consistent(server)
    # Whatever nobody holds any more is freed; what is held stays.
    for agent in nodes:
        agent.collect_garbage()
    nodes[0].collect_garbage()
    wanted = {i.id for mine in held.values() for i in mine.values()}
    assert set(identities(server)) == wanted


def test_an_identity_taken_again_within_grace_is_not_freed(
        server: FakeApiServer, agents: Callable[..., CrdAllocator]) -> None:
    a, b = agents("a"), agents("b")
    first = a.allocate(labels("app=replaced"))
    a.release(first)
    doc = server.get("MembraneIdentity", str(first.id))
    assert doc is not None and "unused" in doc["status"]
    again = b.allocate(labels("app=replaced"))      # the pod's successor, on another node
    assert again == first
    time.sleep(GRACE + 0.1)
    assert a.collect_garbage() == []
    assert b.lookup(first.id) == again


# -- outages ----------------------------------------------------------------------------

def test_an_api_outage_keeps_known_identities_working_and_references_are_retaken(
        server: FakeApiServer, agents: Callable[..., CrdAllocator]) -> None:
    a, b = agents("a"), agents("b")
    mine = a.allocate(labels("app=mine"))
    theirs = b.allocate(labels("app=theirs"))
    a.refresh()
    server.stop()
    try:
        assert a.allocate(labels("app=mine")) == mine
        assert a.allocate(labels("app=theirs")) == theirs   # known, not yet used here
        with pytest.raises(AllocationError, match="crd is unreachable"):
            a.allocate(labels("app=brand-new"))
        a.release(mine)
        a.release(mine)                                  # released during the outage
        assert not a.connected
    finally:
        server.start()

    def references(number: int) -> dict[str, str]:
        doc = server.get("MembraneIdentity", str(number)) or {}
        return dict(doc.get("status", {}).get("references", {}))

    wait_for(lambda: "a" in references(theirs.id), what="a's reference taken offline")
    wait_for(lambda: "a" not in references(mine.id), what="a's reference released offline")
    assert a.connected
    assert a.allocate(labels("app=brand-new")).id not in {mine.id, theirs.id}
    assert_consistent(server)
