"""The engine's bookkeeping: identities, cluster maps, provenance, deltas and speed."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from agent.k8s.objects import ClusterObjects, Node
from agent.policy.engine import HOST_ENTRY, PolicyEngine
from agent.policy.mapstate import ANY_IDENTITY, ANY_PROTOCOL, Direction, PolicyKey
from agent.policy.resolver import NODE_REACHES_PODS
from identity.reserved import MIN_CIDR_IDENTITY, ReservedIdentity
from policy_helpers import (block, cluster, memory_engine, ns, peer, pod, policy, port, rule, sel,
                            verdict)

TCP, UDP = 6, 17


def two_tier() -> ClusterObjects:
    return cluster(
        ns("default"),
        pod("default/web-1", {"app": "web", "pod-template-hash": "aaa"}, "10.0.0.1",
            [("http", 8080, "TCP")], node="n1"),
        pod("default/web-2", {"app": "web", "pod-template-hash": "bbb"}, "10.0.0.2",
            [("http", 8080, "TCP")], node="n2"),
        pod("default/db", {"app": "db"}, "10.0.0.3", node="n1"),
        pod("default/agent", {"app": "agent"}, "192.168.0.1", host_network=True, node="n1"),
        policy("default/db", sel({"app": "db"}),
               ingress=[rule([peer(sel({"app": "web"}))], [port(5432)])]),
        Node("n1", "192.168.0.1"), Node("n2", "192.168.0.2"),
    )


def test_replicas_share_an_identity_and_other_pods_do_not() -> None:
    engine, _, _ = memory_engine()
    engine.update(two_tier())
    web1, web2, db = (engine.identity_of(k) for k in ("default/web-1", "default/web-2",
                                                      "default/db"))
    assert web1 is not None and web2 is not None and db is not None
    assert web1 == web2 and web1.id != db.id
    assert engine.identity_of("default/agent") is None


def test_a_label_change_moves_the_pod_to_a_new_identity_and_releases_the_old() -> None:
    engine, labels, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    old = engine.identity_of("default/db")
    assert old is not None
    objects.pods["default/db"] = replace(objects.pods["default/db"], labels={"app": "cache"})
    delta = engine.update(objects)
    new = engine.identity_of("default/db")
    assert new is not None and new.id != old.id
    assert old.id not in labels.live() and new.id in labels.live()
    assert delta.identities_added == {new.id} and delta.identities_removed == {old.id}
    assert "default/db" in delta.changed_endpoints  # no longer selected: policy gone


def test_a_namespace_label_change_changes_the_identity_of_its_pods() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    old = engine.identity_of("default/web-1")
    objects.namespaces["default"] = ns("default", team="x")
    engine.update(objects)
    assert engine.identity_of("default/web-1") != old


def test_deleted_pods_release_their_identity_and_leave_the_endpoint_set() -> None:
    engine, labels, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    del objects.pods["default/db"]
    delta = engine.update(objects)
    assert delta.removed_endpoints == {"default/db"}
    assert delta.cluster_maps_changed
    assert len(labels.live()) == 1  # only web remains
    with pytest.raises(KeyError):
        engine.endpoint_policy("default/db")


def test_cluster_maps_map_pods_nodes_world_and_every_ipblock_prefix() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    objects.policies["default/ext"] = policy(
        "default/ext", sel({"app": "web"}), egress=[rule([block("10.9.0.0/16", "10.9.1.0/24")])])
    engine.update(objects)
    maps = engine.cluster_maps("n1")
    web = engine.identity_of("default/web-1")
    assert web is not None
    assert maps.ipcache["10.0.0.1/32"] == web.id
    assert maps.ipcache["192.168.0.1/32"] == ReservedIdentity.HOST
    assert maps.ipcache["192.168.0.2/32"] == ReservedIdentity.REMOTE_NODE
    assert maps.ipcache["0.0.0.0/0"] == ReservedIdentity.WORLD
    assert set(maps.cidrs) == {"10.9.0.0/16", "10.9.1.0/24"}
    assert all(i >= MIN_CIDR_IDENTITY for i in maps.cidrs.values())
    assert engine.cluster_maps("n2").ipcache["192.168.0.1/32"] == ReservedIdentity.REMOTE_NODE


def test_an_ipblock_allows_its_prefix_identities_except_the_excepted_ones() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    objects.policies["default/ext"] = policy(
        "default/ext", sel({"app": "web"}),
        egress=[rule([block("10.9.0.0/16", "10.9.1.0/24")])],
        types=["Egress"])
    objects.policies["default/other"] = policy(
        "default/other", sel({"app": "db"}), egress=[rule([block("10.9.1.128/25")])],
        types=["Egress"])
    engine.update(objects)
    cidrs = engine.cluster_maps().cidrs
    peers = {k.peer for k in engine.endpoint_policy("default/web-1").entries}
    # The /25 lies inside the except, so web may not use it; the /16 itself it may.
    assert peers == {cidrs["10.9.0.0/16"]}
    maps = engine.cluster_maps()
    web = engine.endpoint_policy("default/web-1")
    assert web.evaluate(Direction.EGRESS, maps.identities_of("10.9.200.1"), TCP, 1)[0]
    assert not web.evaluate(Direction.EGRESS, maps.identities_of("10.9.1.200"), TCP, 1)[0]
    assert not web.evaluate(Direction.EGRESS, maps.identities_of("10.10.0.1"), TCP, 1)[0]


def test_the_node_reaches_every_ingress_isolated_pod_and_says_why() -> None:
    engine, _, _ = memory_engine()
    engine.update(two_tier())
    db = engine.endpoint_policy("default/db")
    assert db.ingress_enforced and HOST_ENTRY in db.entries
    assert HOST_ENTRY == PolicyKey(Direction.INGRESS, ReservedIdentity.HOST, ANY_PROTOCOL)
    assert [p.text for p in engine.provenance("default/db")[HOST_ENTRY]] == [NODE_REACHES_PODS]
    maps = engine.cluster_maps("n1")
    assert db.evaluate(Direction.INGRESS, maps.identities_of("192.168.0.1"), TCP, 10250)[0]
    assert not db.evaluate(Direction.INGRESS, maps.identities_of("192.168.0.2"), TCP, 10250)[0]
    # A pod nothing isolates needs no such entry.
    assert not engine.endpoint_policy("default/web-1").entries


def test_entries_carry_the_policy_rule_peer_and_port_that_made_them() -> None:
    engine, _, _ = memory_engine()
    engine.update(two_tier())
    web = engine.identity_of("default/web-1")
    assert web is not None
    key = PolicyKey(Direction.INGRESS, web.id, TCP, 5432, 5432)
    [why] = engine.provenance("default/db")[key]
    assert (why.policy, why.direction, why.rule, why.peer, why.port) == (
        "default/db", Direction.INGRESS, 0, 0, 0)
    assert "app=web" in why.text and "TCP/5432" in why.text


def test_the_same_entry_from_two_policies_keeps_both_provenances() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    objects.policies["default/db2"] = policy(
        "default/db2", sel({"app": "db"}), ingress=[rule(ports=[port(5432)])])
    objects.policies["default/db3"] = policy(
        "default/db3", sel({"app": "db"}), ingress=[rule(ports=[port(5432)])])
    engine.update(objects)
    key = PolicyKey(Direction.INGRESS, ANY_IDENTITY, TCP, 5432, 5432)
    assert [p.policy for p in engine.provenance("default/db")[key]] == [
        "default/db2", "default/db3"]


def test_a_new_policy_recomputes_only_the_pods_it_selects() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    objects.policies["default/web"] = policy("default/web", sel({"app": "web"}))
    delta = engine.update(objects)
    assert delta.changed_endpoints == {"default/web-1", "default/web-2"}
    assert not delta.cluster_maps_changed
    assert engine.update(objects).empty


def test_a_new_peer_identity_updates_the_policies_that_select_it() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    objects.pods["default/web-3"] = pod("default/web-3", {"app": "web", "v": "2"}, "10.0.0.4")
    delta = engine.update(objects)
    assert delta.changed_endpoints == {"default/web-3", "default/db"}
    assert verdict(engine, "default/web-3", "default/db", 5432)


def test_a_policy_change_releases_its_old_selection() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    objects.policies["default/db"] = replace(objects.policies["default/db"],
                                             pod_selector=sel({"app": "web"}))
    delta = engine.update(objects)
    assert delta.changed_endpoints == {"default/db", "default/web-1", "default/web-2"}
    assert not engine.endpoint_policy("default/db").ingress_enforced
    assert engine.selected_endpoints("default/db") == {"default/web-1", "default/web-2"}


def test_changing_a_pods_declared_port_re_resolves_egress_named_ports() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    objects.policies["default/db-out"] = policy(
        "default/db-out", sel({"app": "db"}),
        egress=[rule([peer(sel({"app": "web"}))], [port("http")])], types=["Egress"])
    engine.update(objects)
    assert verdict(engine, "default/db", "default/web-1", 8080)
    for key in ("default/web-1", "default/web-2"):
        objects.pods[key] = replace(objects.pods[key], ports=pod(
            key, ports=[("http", 9090, "TCP")]).ports)
    engine.update(objects)
    assert not verdict(engine, "default/db", "default/web-1", 8080)
    assert verdict(engine, "default/db", "default/web-1", 9090)


def test_a_pod_turning_hostnetwork_stops_being_an_endpoint() -> None:
    engine, _, _ = memory_engine()
    objects = two_tier()
    engine.update(objects)
    objects.pods["default/db"] = replace(objects.pods["default/db"], host_network=True)
    delta = engine.update(objects)
    assert delta.removed_endpoints == {"default/db"}
    assert engine.identity_of("default/db") is None
    assert not engine.endpoint_policy("default/db").ingress_enforced


def big_cluster(pods: int = 1000, policies: int = 1000, namespaces: int = 10) -> ClusterObjects:
    objects = cluster(*(ns(f"ns{i}", team=f"t{i % 3}") for i in range(namespaces)))
    apps = pods // namespaces
    for i in range(pods):
        namespace = f"ns{i % namespaces}"
        objects.pods[f"{namespace}/p{i}"] = pod(
            f"{namespace}/p{i}", {"app": f"a{(i // namespaces) % apps}"},
            f"10.{i // 65536}.{(i // 256) % 256}.{i % 256}", [("http", 8080, "TCP")])
    for j in range(policies):
        namespace = f"ns{j % namespaces}"
        target = f"a{(j // namespaces) % apps}"
        source = f"a{(j // namespaces + 1) % apps}"
        objects.policies[f"{namespace}/pol{j}"] = policy(
            f"{namespace}/pol{j}", sel({"app": target}),
            ingress=[rule([peer(sel({"app": source})),
                           peer(sel({"app": source}), sel({"team": f"t{j % 3}"}))],
                          [port("http"), port(9000, end=9100)])],
            egress=[rule([peer(sel({"app": source}))], [port(53, "UDP")]),
                    rule([block(f"172.{j % 250}.0.0/16", f"172.{j % 250}.1.0/24")])])
    return objects


@pytest.mark.parametrize("change", [
    pytest.param("add-policy", id="adding one policy"),
    pytest.param("delete-policy", id="deleting one policy"),
    pytest.param("relabel-pod", id="relabelling one pod"),
    pytest.param("add-pod", id="adding one pod"),
])
def test_one_change_among_a_thousand_policies_and_pods_updates_in_well_under_a_second(
        change: str) -> None:
    engine, _, _ = memory_engine()
    objects = big_cluster()
    engine.update(objects)
    if change == "add-policy":
        objects.policies["ns1/new"] = policy("ns1/new", sel({"app": "a3"}),
                                             ingress=[rule([peer(sel({"app": "a4"}))])])
    elif change == "delete-policy":
        del objects.policies["ns1/pol11"]
    elif change == "relabel-pod":
        objects.pods["ns1/p11"] = replace(objects.pods["ns1/p11"], labels={"app": "a7"})
    else:
        objects.pods["ns1/extra"] = pod("ns1/extra", {"app": "a5"}, "10.200.0.1")
    start = time.perf_counter()
    delta = engine.update(objects)
    elapsed = time.perf_counter() - start
    assert delta.changed_endpoints
    assert elapsed < 0.3, f"{change} took {elapsed:.3f}s"


def test_a_thousand_policies_and_pods_compute_from_scratch_in_seconds() -> None:
    engine, _, _ = memory_engine()
    start = time.perf_counter()
    engine.update(big_cluster())
    assert time.perf_counter() - start < 10


def test_an_engine_accepts_any_allocator_with_the_protocol() -> None:
    # The offline tools use the real in-memory allocators; check that they fit.
    from identity.cidr import CidrAllocator
    from identity.local import LocalAllocator

    engine = PolicyEngine(LocalAllocator(None), CidrAllocator(None))
    engine.update(two_tier())
    assert verdict(engine, "default/web-1", "default/db", 5432)
    assert not verdict(engine, "default/web-1", "default/db", 80)


def test_an_update_that_fails_half_way_forgets_everything_and_the_next_rebuilds_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = cluster(pod("a/web", {"app": "web"}, "10.0.0.1"), pod("a/db", {"app": "db"}, "10.0.0.2"),
                    policy("a/db", sel({"app": "db"}), ingress=[rule([block("192.168.0.0/16")])]))
    second = cluster(pod("a/web", {"app": "web", "v": "2"}, "10.0.0.1"),
                     pod("a/db", {"app": "db"}, "10.0.0.2"),
                     policy("a/db", sel({"app": "db"}), ingress=[
                         rule([peer(sel({"app": "web"})), block("10.1.0.0/16")])]))
    engine, labels, cidrs = memory_engine()
    engine.update(first)
    # The second update dies after the pods were updated (new identity taken) and before
    # the policies were: the half-updated engine must not be what enforces.
    real = engine._update_policies

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(engine, "_update_policies", broken)
    with pytest.raises(RuntimeError, match="injected"):
        engine.update(second)
    assert labels.live() == set() and cidrs.live() == set()   # every reference given back
    monkeypatch.setattr(engine, "_update_policies", real)
    engine.update(second)
    # A new engine on the same allocators (which keep each label set's number).
    fresh = PolicyEngine(labels, cidrs)
    fresh.update(second)
    for key in second.pods:
        assert engine.endpoint_policy(key) == fresh.endpoint_policy(key)
        assert engine.identity_of(key) == fresh.identity_of(key)
    assert engine.cluster_maps("n1") == fresh.cluster_maps("n1")
