"""KubernetesSource against the fake API server, through the real `kubernetes` client,
into a real Store: what the agent would enforce must equal what the cluster says,
whatever the connection does."""

# The kubernetes client is untyped, and its models make every field Optional.
# mypy: disable-error-code="no-untyped-call,union-attr"
from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from kubernetes import client

from core.errors import LoadError
from agent.k8s.loader import parse_document
from agent.k8s.objects import ClusterObjects, NetworkPolicy
from agent.k8s.validation.fields import ValidationWarning
from agent.sources.k8s_watch import Backoff, WatchSettings
from agent.sources.kubernetes import KubernetesSource, load_configuration
from agent.store import Store, StoreObject, object_key
from fake_apiserver import FakeApiServer

Doc = dict[str, Any]
FAST = WatchSettings(watch_timeout=2, connect_timeout=2, read_grace=3,
                     backoff_initial=0.05, backoff_cap=0.4)
NP_PATH = "/apis/networking.k8s.io/v1/networkpolicies"
LIST_PATHS = {"/api/v1/namespaces", "/api/v1/nodes", "/api/v1/pods", NP_PATH}


# -- documents ----------------------------------------------------------------------------
def namespace(name: str, **labels: str) -> Doc:
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "labels": labels}}


def pod(name: str, ns: str = "a", ip: str = "10.0.0.1", node: str = "n1", **labels: str) -> Doc:
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"podIP": ip}}


def node(name: str, ip: str, **labels: str) -> Doc:
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": "10.0.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}


def policy(name: str, ns: str = "a", cidr: str = "192.168.0.0/16", **selector: str) -> Doc:
    return {"kind": "NetworkPolicy", "apiVersion": "networking.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"podSelector": {"matchLabels": selector},
                     "ingress": [{"from": [{"ipBlock": {"cidr": cidr}}]}]}}


def small_cluster(server: FakeApiServer) -> None:
    server.apply(namespace("a", team="x"))
    server.apply(namespace("b"))
    server.apply(node("n1", "172.18.0.2"))
    server.apply(pod("p1", "a", "10.0.0.1", app="web"))
    server.apply(pod("p2", "b", "10.0.1.1", node="n2", app="db"))
    server.apply(policy("allow-web", "a", app="web"))


# -- harness --------------------------------------------------------------------------------
@dataclass
class RecordingStore(Store):
    """A real Store that also remembers every upsert, to catch a change applied twice."""

    upserts: list[StoreObject] = field(default_factory=list)

    def upsert(self, obj: StoreObject, warnings: Sequence[ValidationWarning] = ()) -> None:
        self.upserts.append(obj)
        super().upsert(obj, warnings)


def expected(server: FakeApiServer) -> ClusterObjects:
    """The server's truth, through the same loader the agent uses."""
    want = ClusterObjects()
    tables: dict[str, dict[str, Any]] = {"Namespace": want.namespaces, "Pod": want.pods, "Node": want.nodes,
              "NetworkPolicy": want.policies}
    for kind, table in tables.items():
        for doc in server.objects(kind):
            for obj in parse_document(doc):
                table[object_key(obj)[1]] = obj
    return want


def matches_truth(store: Store, server: FakeApiServer) -> bool:
    have, want = store.snapshot().objects, expected(server)
    return (have.namespaces, have.pods, have.nodes, have.policies) == (
        want.namespaces, want.pods, want.nodes, want.policies)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.02)


def api_client(server: FakeApiServer) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=server.url))


@contextmanager
def running(source: KubernetesSource, store: Store) -> Iterator[KubernetesSource]:
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(store, stop), daemon=True)
    thread.start()
    try:
        yield source
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "run() did not return after stop"


def lists(server: FakeApiServer, path: str | None = None) -> int:
    return sum(1 for r in server.requests
               if not r.is_watch and (r.path == path if path else r.path in LIST_PATHS))


def watch_requests(server: FakeApiServer) -> int:
    return sum(1 for r in server.requests if r.is_watch)


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as s:
        yield s


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def synced(server: FakeApiServer, store: RecordingStore) -> Iterator[KubernetesSource]:
    small_cluster(server)
    with running(KubernetesSource(api_client=api_client(server), settings=FAST), store) as src:
        wait_until(lambda: store.snapshot().synced)
        server.wait_for_watches(4)
        yield src


# -- initial sync -----------------------------------------------------------------------------
def test_initial_sync_gives_the_full_state(synced: KubernetesSource, server: FakeApiServer,
                                           store: RecordingStore) -> None:
    snap = store.snapshot()
    assert snap.synced and matches_truth(store, server)
    assert snap.objects.pods["b/p2"].ip == "10.0.1.1"  # every namespace, every node
    assert snap.objects.nodes["n1"].ip == "172.18.0.2"
    assert lists(server) == 4


def test_nothing_reaches_the_store_until_every_kind_is_listed(
        server: FakeApiServer, store: RecordingStore) -> None:
    small_cluster(server)
    server.fail(NP_PATH, 503)
    with running(KubernetesSource(api_client=api_client(server), settings=FAST), store):
        wait_until(lambda: lists(server, NP_PATH) >= 3)  # retried, with backoff
        server.apply(pod("p3", "a", "10.0.0.3"))
        time.sleep(0.2)
        assert lists(server) - lists(server, NP_PATH) == 3
        assert store.revision == 0 and not store.snapshot().synced
        server.heal(NP_PATH)
        wait_until(lambda: store.snapshot().synced)
        assert matches_truth(store, server)  # p3, seen before the sync, is there


def test_an_invalid_object_in_the_initial_list_does_not_block_the_sync(
        server: FakeApiServer, store: RecordingStore) -> None:
    small_cluster(server)
    server.apply(policy("bad", "a", cidr="10.0.0.0/33"))
    with running(KubernetesSource(api_client=api_client(server), settings=FAST), store):
        wait_until(lambda: store.snapshot().synced)
        snap = store.snapshot()
        assert set(snap.objects.policies) == {"a/allow-web", "a/bad"}
        assert snap.objects.policies["a/bad"].fail_closed   # its stand-in, not the policy
        assert any("a/bad" in str(r) and "ipBlock.cidr" in str(r) for r in snap.rejected)


# -- changes ------------------------------------------------------------------------------------
def test_adds_modifies_and_deletes_flow_through(synced: KubernetesSource,
                                                server: FakeApiServer,
                                                store: RecordingStore) -> None:
    server.apply(pod("p3", "a", "10.0.0.3", app="web"))
    server.apply(namespace("a", team="y"))
    server.apply(policy("allow-web", "a", cidr="10.9.0.0/16", app="web"))
    server.delete("Pod", "p1", "a")
    server.apply(node("n2", "172.18.0.3"))
    wait_until(lambda: matches_truth(store, server))
    snap = store.snapshot()
    assert "a/p1" not in snap.objects.pods and "a/p3" in snap.objects.pods
    assert snap.objects.namespaces["a"].labels["team"] == "y"
    assert snap.objects.policies["a/allow-web"].ingress[0].peers[0].ip_block.cidr == "10.9.0.0/16"


def test_dropped_watches_lose_nothing_and_duplicate_nothing(
        synced: KubernetesSource, server: FakeApiServer, store: RecordingStore) -> None:
    rng = random.Random(5)
    for i in range(300):
        gen = str(i)  # every change differs: an upsert seen twice is a duplicate
        choice = rng.random()
        if choice < 0.45:
            server.apply(pod(f"q{rng.randrange(20)}", rng.choice("ab"),
                             f"10.1.0.{rng.randrange(250)}", gen=gen))
        elif choice < 0.6:
            name = f"q{rng.randrange(20)}"
            server.delete("Pod", name, "a") or server.delete("Pod", name, "b")
        elif choice < 0.75:
            server.apply(policy(f"np{rng.randrange(5)}", "a", gen=gen))
        elif choice < 0.8:
            server.delete("NetworkPolicy", f"np{rng.randrange(5)}", "a")
        elif choice < 0.9:
            server.apply(namespace(rng.choice("ab"), gen=gen))
        else:
            server.apply(node(f"n{rng.randrange(3)}", f"172.18.0.{rng.randrange(9)}", gen=gen))
        if i % 20 == 19:
            # Cut every watch; half the time carry on at once (changes happen while
            # disconnected, some queued ones never sent), half the time wait for all
            # four watches to come back first.
            reconnects = watch_requests(server) + 4
            server.drop_watches()
            if i % 40 == 39:
                wait_until(lambda: watch_requests(server) >= reconnects)
    wait_until(lambda: matches_truth(store, server))
    assert lists(server) == 4, "a dropped watch must resume, not relist"
    assert watch_requests(server) >= 4 + 4 * 7
    seen: set[tuple[tuple[str, str], str]] = set()
    for obj in store.upserts:
        gen = (dict(obj.pod_selector.match_labels) if isinstance(obj, NetworkPolicy)
               else getattr(obj, "labels", {})).get("gen", "")
        change = (object_key(obj), gen)
        assert gen == "" or change not in seen, f"{change} applied twice"
        seen.add(change)


# -- 410 Gone -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gone_mode", ["event", "http"])
def test_410_gone_relists_and_drops_what_was_deleted_meanwhile(
        gone_mode: Literal["event", "http"], store: RecordingStore) -> None:
    server = FakeApiServer(gone_mode=gone_mode)
    with server:
        small_cluster(server)
        with running(KubernetesSource(api_client=api_client(server), settings=FAST), store):
            wait_until(lambda: store.snapshot().synced)
            server.stop()  # the agent loses the API server ...
            server.delete("Pod", "p1", "a")  # ... the cluster changes meanwhile ...
            server.delete("NetworkPolicy", "allow-web", "a")
            server.apply(pod("p9", "b", "10.0.1.9"))
            server.compact()  # ... and history after the agent's version is gone
            server.start()
            wait_until(lambda: lists(server) == 8)  # each kind relisted once
            wait_until(lambda: matches_truth(store, server))
            snap = store.snapshot()
            assert "a/p1" not in snap.objects.pods and not snap.objects.policies
            assert snap.synced


def test_410_error_event_mid_stream_relists(synced: KubernetesSource,
                                            server: FakeApiServer,
                                            store: RecordingStore) -> None:
    server.expire_watches()
    wait_until(lambda: lists(server) == 8)
    server.apply(pod("after", "a", "10.0.0.42"))
    wait_until(lambda: matches_truth(store, server))


# -- bookmarks ----------------------------------------------------------------------------------
def test_a_reconnect_resumes_from_the_last_bookmark(synced: KubernetesSource,
                                                    server: FakeApiServer) -> None:
    for i in range(5):  # a kind nobody watches moves the global resourceVersion
        server.apply({"kind": "Service", "metadata": {"name": f"s{i}", "namespace": "a"},
                      "spec": {"selector": {"app": "web"}}})
    mark = str(server.send_bookmark())
    # Kinds whose CRD the server lacks (the Network Policy API's) have no watch to resume.
    wait_until(lambda: all(w.resource_version == mark for w in synced.watchers
                           if not w.absent))
    before = len(server.requests)
    server.drop_watches()
    wait_until(lambda: sum(r.is_watch for r in server.requests[before:]) >= 4)
    resumed = [r for r in server.requests[before:] if r.is_watch][:4]
    assert {r.path for r in resumed} == LIST_PATHS
    assert {r.resource_version for r in resumed} == {mark}
    assert all(r.params["allowWatchBookmarks"] == "true" for r in resumed)


# -- invalid objects ------------------------------------------------------------------------------
def test_an_invalid_policy_is_rejected_naming_the_field_while_others_apply(
        synced: KubernetesSource, server: FakeApiServer, store: RecordingStore) -> None:
    server.apply(policy("bad", "a", cidr="10.0.0.0/33"))
    server.apply(pod("p3", "a", "10.0.0.3"))
    wait_until(lambda: "a/p3" in store.snapshot().objects.pods)
    snap = store.snapshot()
    bad = snap.objects.policies["a/bad"]
    assert bad.fail_closed and not bad.ingress   # isolates its pods, allows nothing
    (rejection,) = snap.rejected
    assert "a/bad" in str(rejection) and "spec.ingress[0].from[0].ipBlock.cidr" in str(rejection)
    assert rejection.last_good is None

    # A valid policy turned invalid is not left enforcing its old version: its
    # stand-in is, and the old version is kept in the rejection.
    good = store.snapshot().objects.policies["a/allow-web"]
    server.apply(policy("allow-web", "a", cidr="300.0.0.0/8", app="web"))
    wait_until(lambda: store.snapshot().objects.policies["a/allow-web"].fail_closed != "")
    snap = store.snapshot()
    assert len(snap.rejected) == 2
    assert snap.objects.policies["a/allow-web"].pod_selector == good.pod_selector
    assert {r.key: r.last_good for r in snap.rejected}["a/allow-web"] == good

    # Fixed or deleted, its rejection goes away.
    server.apply(policy("allow-web", "a", app="web"))
    server.delete("NetworkPolicy", "bad", "a")
    wait_until(lambda: not store.snapshot().rejected)
    assert matches_truth(store, server)


def test_validation_warnings_reach_the_store_with_their_object(
        server: FakeApiServer, store: RecordingStore) -> None:
    small_cluster(server)
    twice = policy("twice", "a", app="web")
    twice["spec"]["policyTypes"] = ["Ingress", "Ingress"]
    server.apply(twice)
    with running(KubernetesSource(api_client=api_client(server), settings=FAST), store):
        wait_until(lambda: store.snapshot().synced)
        (warning,) = store.snapshot().warnings          # from the initial list
        assert (warning.kind, warning.name) == ("NetworkPolicy", "a/twice")
        assert "repeated value" in str(warning)
        server.wait_for_watches(4)
        again = policy("again", "a", app="db")
        again["spec"]["policyTypes"] = ["Egress", "Egress"]
        server.apply(again)                             # from a watch event
        wait_until(lambda: len(store.snapshot().warnings) == 2)
        server.apply(policy("twice", "a", app="web"))   # fixed: its warning goes
        wait_until(lambda: [w.name for w in store.snapshot().warnings] == ["a/again"])
        server.delete("NetworkPolicy", "again", "a")
        wait_until(lambda: not store.snapshot().warnings)


def test_a_relist_keeps_the_last_good_version_of_a_rejected_policy(
        synced: KubernetesSource, server: FakeApiServer, store: RecordingStore) -> None:
    good = store.snapshot().objects.policies["a/allow-web"]
    server.apply(policy("allow-web", "a", cidr="300.0.0.0/8", app="web"))
    wait_until(lambda: bool(store.snapshot().rejected))
    server.expire_watches()   # 410 Expired: every kind is listed again
    # (Kinds whose CRD the server lacks, the Network Policy API's, are not listed.)
    wait_until(lambda: all(w.lists >= 2 for w in synced.watchers if not w.absent))
    wait_until(lambda: bool(store.snapshot().rejected))
    snap = store.snapshot()
    assert snap.objects.policies["a/allow-web"].fail_closed
    assert snap.rejected[0].last_good == good


# -- connectivity ---------------------------------------------------------------------------------
def test_backs_off_while_the_server_is_unreachable_then_recovers(store: RecordingStore) -> None:
    server = FakeApiServer()  # port chosen, nobody listening yet
    small_cluster(server)
    cfg = client.Configuration(host=server.url)
    cfg.retries = 0  # our backoff, not urllib3's, is under test
    with running(KubernetesSource(api_client=client.ApiClient(cfg), settings=FAST), store) as src:
        time.sleep(1.0)
        assert store.revision == 0
        assert all(w.backoff.failures >= 2 for w in src.watchers)  # it kept trying
        with server:
            wait_until(lambda: store.snapshot().synced)
            assert matches_truth(store, server)
            assert all(w.backoff.failures == 0 for w in src.watchers)


def test_run_returns_promptly_when_stopped(server: FakeApiServer, store: RecordingStore) -> None:
    slow = WatchSettings(watch_timeout=60)
    stop = threading.Event()
    source = KubernetesSource(api_client=api_client(server), settings=slow)
    thread = threading.Thread(target=source.run, args=(store, stop))
    thread.start()
    wait_until(lambda: store.snapshot().synced)
    server.wait_for_watches(4)
    began = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - began < 2


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(initial=1.0, cap=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays[3:])) > 1  # jittered, not lockstep
    backoff.reset()
    assert backoff.next_delay() <= 1.0


# -- configuration --------------------------------------------------------------------------------
def test_kubeconfig_points_the_source_at_the_server(tmp_path: Path, server: FakeApiServer,
                                                    store: RecordingStore) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{server.url}"}}}}]
users: [{{name: agent, user: {{token: secret}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: agent}}}}]
current-context: fake
""")
    small_cluster(server)
    with running(KubernetesSource(kubeconfig=str(kubeconfig), settings=FAST), store):
        wait_until(lambda: store.snapshot().synced)
        assert matches_truth(store, server)


def test_in_cluster_config_uses_the_service_account(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not checked until connecting")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = load_configuration()  # in a pod and no kubeconfig given: in-cluster
    assert cfg.host == "https://10.96.0.1:443"
    assert "sa-token" in str(cfg.api_key)


def test_missing_configuration_is_a_load_error(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LoadError, match="kubeconfig"):
        KubernetesSource(kubeconfig=str(tmp_path / "missing"))
    with pytest.raises(LoadError, match="in-cluster"):
        KubernetesSource(in_cluster=True)


# -- paged lists ------------------------------------------------------------------------------
def test_lists_are_paged_and_every_page_reaches_the_store(server: FakeApiServer,
                                                           store: RecordingStore) -> None:
    small_cluster(server)
    for i in range(23):
        server.apply(pod(f"bulk{i}", "a", f"10.0.2.{i}", app="bulk"))
    paged = WatchSettings(**{**FAST.__dict__, "page_size": 10})
    with running(KubernetesSource(api_client=api_client(server), settings=paged), store):
        wait_until(lambda: store.snapshot().synced)
        assert matches_truth(store, server)
    pod_lists = [r for r in server.requests if not r.is_watch and r.path == "/api/v1/pods"]
    # 25 pods in pages of 10: three requests, the later two continuing the first.
    assert [r.params.get("limit") for r in pod_lists] == ["10", "10", "10"]
    assert ["continue" in r.params for r in pod_lists] == [False, True, True]


def test_an_expired_continue_token_restarts_the_list_and_misses_nothing(
        server: FakeApiServer) -> None:
    from agent.sources.k8s_watch import KindSpec, KindWatcher

    small_cluster(server)
    for i in range(5):
        server.apply(pod(f"bulk{i}", "a", f"10.0.2.{i}"))
    core = client.CoreV1Api(api_client(server))
    calls: list[dict[str, Any]] = []

    def list_pods(**kwargs: Any) -> Any:
        calls.append(kwargs)
        resp = core.list_pod_for_all_namespaces(**kwargs)
        if len(calls) == 1:
            # Between the first page and the next, the cluster changes and the snapshot
            # the continue token points at is compacted away.
            server.apply(pod("late", "b", "10.0.3.1"))
            server.compact()
        return resp

    class Docs:
        def listed(self, kind: str, docs: list[Doc]) -> None: ...
        def changed(self, kind: str, event_type: str, doc: Doc) -> None: ...

    settings = WatchSettings(**{**FAST.__dict__, "page_size": 3})
    watcher = KindWatcher(KindSpec("Pod", "v1", list_pods), Docs(), threading.Event(), settings)
    docs, rv = watcher._list()
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(
        d["metadata"]["name"] for d in server.objects("Pod"))
    assert "late" in {d["metadata"]["name"] for d in docs}
    assert int(rv) == server.resource_version
    # first page, its continuation refused (410 Expired), then a fresh list in 3 pages
    assert ["_continue" in c for c in calls] == [False, True, False, True, True]
