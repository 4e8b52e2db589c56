"""The selector cache, and the engine's incremental updates against a fresh computation."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.k8s.objects import (ClusterObjects, LabelSelector, NetworkPolicy, Pod, PolicyPeer,
                               PolicyRule)
from agent.policy.engine import PolicyEngine
from agent.policy.selectorcache import Selector, SelectorCache
from identity.labels import Label, LabelSet
from identity.reserved import MIN_CIDR_IDENTITY, ReservedIdentity
from identity.security import security_labels
from policy_helpers import (MemoryAllocator, block, cluster, ns, peer, pod, policy, port, rule,
                            sel)


def labels_of(p: Pod, namespace_labels: dict[str, str] | None = None) -> LabelSet:
    namespace = ns(p.namespace, **(namespace_labels or {}))
    return security_labels(p.labels, namespace=p.namespace, namespace_labels=namespace.labels,
                           service_account=p.service_account, cluster="default")


WEB = pod("shop/web", {"app": "web"})
DB = pod("shop/db", {"app": "db", "tier": "data"})
OPS = pod("ops/prom", {"app": "prom"})

SELECTORS = [
    pytest.param(Selector.subject("shop", sel({"app": "web"})), {"web"},
                 id="a podSelector matches only its own namespace"),
    pytest.param(Selector.of_peer("shop", peer(sel())), {"web", "db"},
                 id="an empty podSelector matches every pod of its namespace"),
    pytest.param(Selector.of_peer("shop", peer(namespaces=sel())), {"web", "db", "prom"},
                 id="an empty namespaceSelector matches every pod everywhere"),
    pytest.param(Selector.of_peer("shop", peer(namespaces=sel({"role": "ops"}))), {"prom"},
                 id="a namespaceSelector matches the namespace's labels"),
    pytest.param(Selector.of_peer("shop", peer(sel({"app": "prom"}), sel({"role": "ops"}))),
                 {"prom"}, id="both selectors in one peer must match"),
    pytest.param(Selector.of_peer("shop", peer(sel({"app": "web"}), sel({"role": "ops"}))),
                 set(), id="a pod label in the wrong namespace does not match"),
    pytest.param(Selector.of_peer("ops", peer(sel(None, ("tier", "NotIn", ("data",))),
                                            sel({"kubernetes.io/metadata.name": "shop"}))),
                 {"web"}, id="the namespace name label selects a namespace by name"),
]


def filled_cache() -> tuple[SelectorCache, dict[str, int]]:
    cache = SelectorCache()
    ids = {"web": 300, "db": 301, "prom": 302}
    cache.add_identity(300, labels_of(WEB))
    cache.add_identity(301, labels_of(DB))
    cache.add_identity(302, labels_of(OPS, {"role": "ops"}))
    return cache, ids


@pytest.mark.parametrize(("selector", "expected"), SELECTORS)
def test_selector_matches(selector: Selector, expected: set[str]) -> None:
    cache, ids = filled_cache()
    cache.add_selector(selector)
    assert cache.matches(selector) == {ids[n] for n in expected}


@pytest.mark.parametrize(("selector", "expected"), SELECTORS)
def test_an_identity_added_after_the_selector_is_matched_the_same(
        selector: Selector, expected: set[str]) -> None:
    cache = SelectorCache()
    cache.add_selector(selector)
    cache.drain_changed()
    fresh, ids = filled_cache()
    for name, number in ids.items():
        p, ns_labels = {"web": (WEB, None), "db": (DB, None), "prom": (OPS, {"role": "ops"})}[name]
        cache.add_identity(number, labels_of(p, ns_labels))
    assert cache.matches(selector) == {ids[n] for n in expected}
    assert cache.drain_changed() == ({selector} if expected else set())


def test_selectors_never_match_reserved_or_cidr_identities() -> None:
    cache = SelectorCache()
    every = Selector.of_peer("x", peer(namespaces=sel()))
    cache.add_selector(every)
    cache.add_identity(int(ReservedIdentity.HOST), ReservedIdentity.HOST.labels)
    cache.add_identity(MIN_CIDR_IDENTITY, LabelSet([Label("cidr", "10.0.0.0/8")]))
    assert cache.matches(every) == frozenset()


def test_removing_an_identity_reports_the_selectors_that_lost_it() -> None:
    cache, ids = filled_cache()
    web_only = Selector.subject("shop", sel({"app": "web"}))
    db_only = Selector.subject("shop", sel({"app": "db"}))
    cache.add_selector(web_only)
    cache.add_selector(db_only)
    cache.drain_changed()
    cache.remove_identity(ids["web"])
    assert cache.drain_changed() == {web_only}
    assert cache.matches(web_only) == frozenset()


def test_a_selector_lives_until_its_last_reference_is_dropped() -> None:
    cache, _ = filled_cache()
    s = Selector.subject("shop", sel())
    cache.add_selector(s)
    cache.add_selector(s)
    cache.remove_selector(s)
    assert s in cache.selectors()
    cache.remove_selector(s)
    assert s not in cache.selectors()


# -- incremental == fresh ---------------------------------------------------------------

NAMESPACES = ["a", "b"]
IPS = [f"10.0.{i // 4}.{i}" for i in range(8)]
label_values = st.sampled_from(["x", "y"])
selectors = st.builds(
    lambda labels, exprs: LabelSelector.of(labels, tuple(exprs)),
    st.dictionaries(st.sampled_from(["app", "tier"]), label_values, max_size=1),
    st.lists(st.builds(lambda k, op, v: sel(None, (k, op, v)).match_expressions[0],
                       st.sampled_from(["app", "tier", "team"]),
                       st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]),
                       st.just(("x",))), max_size=1))
ports = st.one_of(
    st.builds(port, st.sampled_from([None, 80, 53]), st.sampled_from(["TCP", "UDP"])),
    st.builds(port, st.sampled_from(["http", "dns"]), st.sampled_from(["TCP", "UDP"])),
    st.builds(lambda p: port(p, end=p + 10), st.sampled_from([80, 8000])))
peers = st.one_of(
    st.builds(peer, selectors, st.none()),
    st.builds(peer, st.none() | selectors, selectors),
    st.builds(lambda c, e: block(c, *e), st.sampled_from(["10.0.0.0/16", "10.0.1.0/24"]),
              st.lists(st.sampled_from(["10.0.1.0/25", "10.0.0.3/32", "10.0.1.4/31"]),
                       max_size=1, unique=True).map(tuple)))
rules = st.builds(lambda p, q: rule(p, q), st.lists(peers, max_size=2), st.lists(ports, max_size=2))


@st.composite
def policies(draw: Any, name: str) -> NetworkPolicy:
    namespace = draw(st.sampled_from(NAMESPACES))
    types = draw(st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]))
    return policy(f"{namespace}/{name}", draw(selectors),
                  ingress=draw(st.lists(rules, max_size=2)),
                  egress=draw(st.lists(rules, max_size=2)), types=types)


def pods(i: int) -> Any:
    return st.builds(
        lambda namespace, labels, ip, declared, host: pod(
            f"{namespace}/p{i}", labels, ip, declared, host_network=host),
        st.sampled_from(NAMESPACES),
        st.dictionaries(st.sampled_from(["app", "tier"]), label_values),
        st.sampled_from([IPS[i], None]),
        st.lists(st.sampled_from([("http", 80, "TCP"), ("http", 81, "TCP"), ("dns", 53, "UDP")]),
                 max_size=2, unique=True),
        st.booleans() if i == 7 else st.just(False))


@st.composite
def worlds(draw: Any) -> ClusterObjects:
    objects: list[Any] = [ns(n, **draw(st.dictionaries(st.just("team"), label_values)))
                          for n in NAMESPACES]
    for i in draw(st.lists(st.integers(0, 7), max_size=6, unique=True)):
        objects.append(draw(pods(i)))
    for j in draw(st.lists(st.integers(0, 4), max_size=4, unique=True)):
        objects.append(draw(policies(f"pol{j}")))
    return cluster(*objects)


@st.composite
def histories(draw: Any) -> list[ClusterObjects]:
    """A world, then a few small changes to it: one object added, changed or removed each,
    the way a watch delivers them (and where an incremental engine can go wrong)."""
    state = draw(worlds())
    out = [state]
    for _ in range(draw(st.integers(1, 6))):
        state = ClusterObjects(dict(state.namespaces), dict(state.pods), dict(state.policies))
        kind = draw(st.sampled_from(["pod", "pod", "ports", "ip", "policy", "policy",
                                     "namespace"]))
        if kind in ("ports", "ip") and state.pods:
            # Only what named ports and ipBlocks read changes; the identity stays.
            key = draw(st.sampled_from(sorted(state.pods)))
            old = state.pods[key]
            if kind == "ports":
                state.pods[key] = replace(old, ports=draw(pods(7)).ports)
            else:
                state.pods[key] = replace(old, ip=None if old.ip else IPS[int(key[-1])])
        elif kind == "pod":
            i = draw(st.integers(0, 7))
            for key in [k for k in state.pods if k.endswith(f"/p{i}")]:
                del state.pods[key]
            if draw(st.booleans()):
                new = draw(pods(i))
                state.pods[new.key] = new
        elif kind == "policy":
            j = draw(st.integers(0, 4))
            for key in [k for k in state.policies if k.endswith(f"/pol{j}")]:
                del state.policies[key]
            if draw(st.booleans()):
                new_policy = draw(policies(f"pol{j}"))
                state.policies[new_policy.key] = new_policy
        else:
            name = draw(st.sampled_from(NAMESPACES))
            state.namespaces[name] = ns(name, **draw(st.dictionaries(st.just("team"),
                                                                     label_values)))
        out.append(state)
    return out


def snapshot(engine: PolicyEngine, objects: ClusterObjects) -> dict[str, Any]:
    return {
        "endpoints": {k: engine.endpoint_policy(k) for k in objects.pods},
        "provenance": {k: {e: sorted(p) for e, p in engine.provenance(k).items()}
                       for k in objects.pods},
        "selected": {k: engine.selecting_policies(k) for k in objects.pods},
        "maps": engine.cluster_maps("n1"),
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_incremental_updates_agree_with_a_fresh_computation(states: list[ClusterObjects]) -> None:
    labels, cidrs = MemoryAllocator(), MemoryAllocator(first=MIN_CIDR_IDENTITY)
    incremental = PolicyEngine(labels, cidrs)
    for objects in states:
        incremental.update(objects)
        # Sharing the allocators gives the fresh engine the same numbers.
        fresh = PolicyEngine(labels, cidrs)
        fresh.update(objects)
        assert snapshot(incremental, objects) == snapshot(fresh, objects)


def test_every_peer_kind_has_a_selector_form_except_ipblock() -> None:
    with pytest.raises(ValueError):
        Selector.of_peer("a", block("10.0.0.0/8"))
    assert Selector.of_peer("a", PolicyPeer(pod_selector=sel())) == Selector.subject("a", sel())
    assert PolicyRule() == rule()
