"""The Network Policy API's cluster-wide kinds through KubernetesSource: the fake API
server serves ClusterNetworkPolicy (v1alpha2), AdminNetworkPolicy and
BaselineAdminNetworkPolicy (v1alpha1) as custom resources over the real wire protocol,
and the real `kubernetes` client lists and watches them into a real Store.

A cluster without their CRDs must not stop the agent from syncing (nothing to enforce
of those kinds), and CRDs installed or removed later are noticed."""

# The kubernetes client is untyped.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kubernetes import client

from agent.k8s.objects import RuleAction, Tier, TieredPolicy
from agent.sources.k8s_watch import WatchSettings
from agent.sources.kubernetes import KubernetesSource
from agent.store import Store
from fake_apiserver import FakeApiServer

Doc = dict[str, Any]
FAST = WatchSettings(watch_timeout=2, connect_timeout=2, read_grace=3, backoff_initial=0.05,
                     backoff_cap=0.4, absent_recheck=0.2)
CNP_PATH = "/apis/policy.networking.k8s.io/v1alpha2/clusternetworkpolicies"


def cnp(name: str, priority: int = 10, action: str = "Deny", tier: str = "Admin") -> Doc:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"tier": tier, "priority": priority,
                     "subject": {"namespaces": {"matchLabels": {"team": "a"}}},
                     "ingress": [{"name": "r0", "action": action,
                                  "from": [{"namespaces": {}}]}]}}


def anp(name: str) -> Doc:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy",
            "metadata": {"name": name},
            "spec": {"priority": 5, "subject": {"namespaces": {}},
                     "egress": [{"action": "Pass", "to": [{"networks": ["10.0.0.0/8"]}]}]}}


def banp() -> Doc:
    return {"apiVersion": "policy.networking.k8s.io/v1alpha1",
            "kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"},
            "spec": {"subject": {"namespaces": {}},
                     "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}]}}


def base(server: FakeApiServer) -> None:
    server.apply({"kind": "Namespace", "metadata": {"name": "a", "labels": {"team": "a"}}})
    server.apply({"kind": "Pod", "metadata": {"name": "p", "namespace": "a"},
                  "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]},
                  "status": {"podIP": "10.0.0.1"}})


def tier_policies(store: Store) -> dict[str, TieredPolicy]:
    return dict(store.snapshot().objects.cluster_policies)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {condition}")
        time.sleep(0.02)


@contextmanager
def running(server: FakeApiServer, store: Store) -> Iterator[KubernetesSource]:
    source = KubernetesSource(api_client=client.ApiClient(client.Configuration(host=server.url)),
                              settings=FAST)
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(store, stop), daemon=True)
    thread.start()
    try:
        yield source
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    with FakeApiServer() as s:
        base(s)
        yield s


def test_a_cluster_without_the_crds_syncs_with_no_tier_policies(server: FakeApiServer) -> None:
    store = Store()
    with running(server, store) as source:
        wait_until(lambda: store.snapshot().synced)
        assert "a/p" in store.snapshot().objects.pods and not tier_policies(store)
        assert all(w.absent for w in source.watchers if w.spec.optional)
        revision = store.revision
        time.sleep(0.6)   # rechecks of the missing CRDs change nothing
        assert store.revision == revision
    assert any(r.path == CNP_PATH and not r.is_watch for r in server.requests)


def test_both_api_versions_are_listed_and_watched_as_tier_policies(
        server: FakeApiServer) -> None:
    server.install_crds()
    server.apply(cnp("isolate"))
    server.apply(anp("pass-internal"))
    store = Store()
    with running(server, store):
        wait_until(lambda: len(tier_policies(store)) == 2)
        got = tier_policies(store)
        assert got["ClusterNetworkPolicy/isolate"].tier is Tier.ADMIN
        assert got["AdminNetworkPolicy/pass-internal"].egress[0].action is RuleAction.PASS
        server.apply(banp())
        server.apply(cnp("isolate", action="Accept"))
        server.delete("AdminNetworkPolicy", "pass-internal")
        wait_until(lambda: set(tier_policies(store)) == {
            "ClusterNetworkPolicy/isolate", "BaselineAdminNetworkPolicy/default"})
        wait_until(lambda: tier_policies(store)["ClusterNetworkPolicy/isolate"]
                   .ingress[0].action is RuleAction.ALLOW)


def test_crds_installed_later_are_picked_up_and_removed_ones_empty_their_kinds(
        server: FakeApiServer) -> None:
    store = Store()
    with running(server, store):
        wait_until(lambda: store.snapshot().synced)
        server.install_crds()
        server.apply(cnp("late"))
        wait_until(lambda: "ClusterNetworkPolicy/late" in tier_policies(store))
        server.uninstall_crds()
        wait_until(lambda: not tier_policies(store))


def test_an_invalid_tier_policy_is_rejected_naming_the_field_while_others_apply(
        server: FakeApiServer) -> None:
    server.install_crds()
    bad = cnp("bad")
    bad["spec"]["ingress"][0]["action"] = "Allow"     # v1alpha2 says Accept
    server.apply(bad)
    server.apply(cnp("good"))
    store = Store()
    with running(server, store):
        wait_until(lambda: "ClusterNetworkPolicy/good" in tier_policies(store))
        rejected = store.snapshot().rejected
        assert [(r.kind, r.key) for r in rejected] == [("ClusterNetworkPolicy",
                                                        "ClusterNetworkPolicy/bad")]
        assert "clusternetworkpolicy bad: spec.ingress[0].action" in rejected[0].reason
        # A fixed version replaces the rejection.
        server.apply(cnp("bad"))
        wait_until(lambda: "ClusterNetworkPolicy/bad" in tier_policies(store))
        assert not store.snapshot().rejected


def test_a_tier_policy_updated_to_something_invalid_keeps_its_last_good_version_in_force(
        server: FakeApiServer) -> None:
    """Dropping a rejected Admin-tier Deny would open what it denied: the store keeps
    the last good version enforced, as for every kind but NetworkPolicy."""
    server.install_crds()
    server.apply(cnp("guard"))
    store = Store()
    with running(server, store):
        wait_until(lambda: "ClusterNetworkPolicy/guard" in tier_policies(store))
        good = tier_policies(store)["ClusterNetworkPolicy/guard"]
        bad = cnp("guard")
        bad["spec"]["priority"] = 5000
        server.apply(bad)
        wait_until(lambda: bool(store.snapshot().rejected))
        [rejection] = store.snapshot().rejected
        assert rejection.last_good == good and rejection.in_force == "the last good version"
        assert tier_policies(store)["ClusterNetworkPolicy/guard"] == good
