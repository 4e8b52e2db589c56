"""Failure isolation in the policy engine: what one policy, one namespace or one pod
cannot have fails closed for the pods concerned, and every other update still applies.

  - ipBlock prefixes: a policy with more than it may have, a namespace over its share of
    the cidr map, or more than the map holds: the largest policies isolate and allow
    nothing; the cidr map state never exceeds the map;
  - policy map entries: an endpoint gets the smallest of its policies that fit its
    share, counted before anything is expanded (bounded time);
  - identities: a label set the allocator refuses leaves those pods without identity
    (out of the ipcache and every selector), the update goes on, and new label sets are
    not retried before a backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.k8s.objects import ClusterObjects, Pod
from agent.policy.engine import HOST_ENTRY, PolicyEngine
from agent.policy.limits import PolicyLimits, policy_map_entries
from agent.policy.resolver import CompiledPolicy, Contribution, ResolveContext
from core.errors import AllocationError
from identity.allocator import Identity
from identity.labels import LabelSet
from identity.reserved import MIN_CIDR_IDENTITY
import test_upstream_e2e_model as model
from policy_helpers import (MemoryAllocator, block, cluster, ns, peer, pod, policy, port, rule,
                            sel, verdict)

BASE = [
    ns("big"), ns("small"),
    pod("big/a", {"app": "a"}, "10.0.0.1"), pod("big/b", {"app": "b"}, "10.0.0.2"),
    pod("small/client", {"app": "client"}, "10.1.0.1"),
    pod("small/server", {"app": "server"}, "10.1.0.2"),
]
DENY_SERVER = policy("small/deny-server", sel({"app": "server"}))


def hosts(n: int, first: int = 0) -> list[object]:
    """n distinct /32 ipBlock peers in 198.18.0.0/15."""
    return [block(f"198.18.{(first + i) // 250}.{(first + i) % 250 + 1}/32") for i in range(n)]


def engine_with(objects: ClusterObjects, limits: PolicyLimits | None = None,
                labels: MemoryAllocator | None = None) -> PolicyEngine:
    engine = PolicyEngine(labels or MemoryAllocator(), MemoryAllocator(first=MIN_CIDR_IDENTITY),
                          limits=limits)
    engine.update(objects)
    return engine


# -- the cidr map -------------------------------------------------------------------------

def test_a_policy_with_more_prefixes_than_the_cidr_map_is_refused_and_a_deny_elsewhere_applies(
        ) -> None:
    huge = policy("big/huge", sel({"app": "nobody"}), egress=[rule(hosts(4100))],
                  types=["Egress"])
    engine = engine_with(cluster(*BASE, huge, DENY_SERVER))
    assert len(engine.cluster_maps().cidrs) <= PolicyLimits().max_cidr_prefixes
    assert "big/huge" in engine.policy_problems()
    assert not verdict(engine, "small/client", "small/server")
    assert verdict(engine, "big/a", "small/client")


def test_a_refused_policy_isolates_what_it_selects_and_allows_nothing() -> None:
    limits = PolicyLimits(max_prefixes_per_policy=10)
    wide = policy("big/to-many", sel({"app": "a"}),
                  egress=[rule(hosts(11) + [block("10.1.0.0/16")])], types=["Egress"])
    engine = engine_with(cluster(*BASE, wide), limits)
    assert not verdict(engine, "big/a", "small/server")   # the spec would allow it
    assert verdict(engine, "big/b", "small/server")
    [problem] = engine.endpoint_problems("big/a")
    assert "big/to-many is not enforced" in problem and "12 ipBlock prefixes" in problem
    assert engine.endpoint_problems("big/b") == ()
    # Smaller, it is enforced again, and the problem is gone.
    engine.update(cluster(*BASE, policy("big/to-many", sel({"app": "a"}),
                                        egress=[rule([block("10.1.0.0/16")])],
                                        types=["Egress"])))
    assert verdict(engine, "big/a", "small/server")
    assert engine.endpoint_problems("big/a") == () and engine.policy_problems() == {}


def test_a_namespace_over_its_share_of_the_cidr_map_loses_its_largest_policies_only() -> None:
    limits = PolicyLimits(max_cidr_prefixes=100, namespace_share=0.5)
    objects = cluster(
        *BASE,
        policy("big/p30", sel({"app": "a"}), egress=[rule(hosts(30))], types=["Egress"]),
        policy("big/p40", sel({"app": "b"}), egress=[rule(hosts(40, 100))], types=["Egress"]),
        policy("small/p45", sel({"app": "client"}), egress=[rule(hosts(45, 200))],
               types=["Egress"]))
    engine = engine_with(objects, limits)
    assert set(engine.policy_problems()) == {"big/p40"}
    assert "namespace big" in engine.policy_problems()["big/p40"]
    assert len(engine.cluster_maps().cidrs) == 75


# -- the policy map -------------------------------------------------------------------------

def test_ipblocks_times_port_ranges_are_bounded_per_endpoint_before_anything_is_expanded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ranges = [port(1000 + 300 * i, end=1000 + 300 * i + 100) for i in range(170)]
    product = policy("big/product", sel({"app": "a"}), egress=[rule(hosts(170), ranges)],
                     types=["Egress"])
    dns = policy("big/dns", sel({"app": "a"}), egress=[rule(ports=[port(53, "UDP")])],
                 types=["Egress"])
    built: list[str] = []
    contribution = CompiledPolicy.contribution

    def recording(self: CompiledPolicy, endpoint: Pod, ctx: ResolveContext) -> Contribution:
        built.append(self.key)
        return contribution(self, endpoint, ctx)

    monkeypatch.setattr(CompiledPolicy, "contribution", recording)
    engine = engine_with(cluster(*BASE, product, dns, DENY_SERVER))
    assert "big/product" not in built      # counted, never expanded (0.18 s CPU before)
    policy_a = engine.endpoint_policy("big/a")
    assert policy_map_entries(policy_a) <= PolicyLimits().max_entries_per_endpoint
    assert policy_a.egress_enforced
    assert verdict(engine, "big/a", "small/client", 53, "UDP")     # the small one fits
    assert not verdict(engine, "big/a", "small/client", 1000)       # the product isolates
    [problem] = engine.endpoint_problems("big/a")
    assert "big/product needs 162860 policy map entries" in problem
    assert not verdict(engine, "small/client", "small/server")     # elsewhere: enforced


def test_an_endpoint_takes_the_smallest_policies_that_fit_its_share() -> None:
    limits = PolicyLimits(max_entries_per_endpoint=8)
    three = policy("big/three", sel({"app": "a"}),
                   egress=[rule(ports=[port(80), port(81), port(82)])], types=["Egress"])
    five = policy("big/five", sel({"app": "a"}),
                  egress=[rule(ports=[port(90 + i) for i in range(5)])], types=["Egress"])
    engine = engine_with(cluster(*BASE, three, five), limits)
    assert verdict(engine, "big/a", "small/server", 80)
    assert not verdict(engine, "big/a", "small/server", 90)
    assert len(engine.endpoint_policy("big/a").entries) == 3


# -- identities -----------------------------------------------------------------------------

@dataclass
class RefusingAllocator(MemoryAllocator):
    """Refuses label sets with app=<refused> (an identity store that is away and has not
    seen them), counting attempts."""

    refused: set[str] = field(default_factory=set)
    attempts: int = 0

    def allocate(self, labels: LabelSet) -> Identity:
        self.attempts += 1
        if any(label.key == "app" and label.value in self.refused for label in labels):
            raise AllocationError("etcd is unreachable: cannot allocate a new identity")
        return super().allocate(labels)


def test_an_identity_that_cannot_be_allocated_fails_only_its_pods_closed() -> None:
    labels = RefusingAllocator(refused={"new"})
    now = [100.0]
    engine = PolicyEngine(labels, MemoryAllocator(first=MIN_CIDR_IDENTITY),
                          clock=lambda: now[0])
    engine.update(cluster(*BASE))
    objects = cluster(*BASE, pod("small/new", {"app": "new"}, "10.1.0.9"), DENY_SERVER)
    delta = engine.update(objects)                       # used to raise, stopping everything
    assert not verdict(engine, "small/client", "small/server")    # the deny applies
    assert engine.identity_of("small/new") is None
    assert "10.1.0.9/32" not in engine.cluster_maps().ipcache     # peers see it as world
    assert "cannot be allocated" in engine.identity_problems()["small/new"]
    assert "small/server" in delta.changed_endpoints
    # Within the backoff, a label set nobody holds is not tried again ...
    tried = labels.attempts
    engine.update(cluster(*BASE, pod("small/new", {"app": "new"}, "10.1.0.9"), DENY_SERVER,
                          pod("small/new2", {"app": "new"}, "10.1.0.10")))
    assert labels.attempts == tried
    # ... one some pod holds is (the allocator knows it), and once the store is back
    # (after the backoff) the pods get their identity.
    engine.update(cluster(*BASE, pod("small/client2", {"app": "client"}, "10.1.0.11")))
    assert engine.identity_of("small/client2") == engine.identity_of("small/client")
    labels.refused.clear()
    now[0] += 5
    engine.update(objects)
    assert engine.identity_of("small/new") is not None and not engine.identity_problems()


def test_a_relabel_that_cannot_be_allocated_takes_the_pod_out_rather_than_keep_old_labels(
        ) -> None:
    labels = RefusingAllocator(refused={"new"})
    allow_client = policy("small/allow-client", sel({"app": "server"}),
                          ingress=[rule([peer(sel({"app": "client"}))])])
    engine = PolicyEngine(labels, MemoryAllocator(first=MIN_CIDR_IDENTITY))
    engine.update(cluster(*BASE, allow_client))
    assert verdict(engine, "small/client", "small/server")
    relabelled = cluster(*BASE, allow_client)
    relabelled.pods["small/client"] = pod("small/client", {"app": "new"}, "10.1.0.1")
    delta = engine.update(relabelled)
    assert engine.identity_of("small/client") is None
    assert "small/client" in delta.removed_endpoints
    assert "10.1.0.1/32" not in engine.cluster_maps().ipcache
    assert labels.live() == {i.id for k in engine.pods()
                             if (i := engine.identity_of(k)) is not None}


def test_the_host_entry_stays_when_a_policy_is_not_enforced() -> None:
    limits = PolicyLimits(max_prefixes_per_policy=1)
    objects = cluster(*BASE, policy("big/two", sel({"app": "a"}),
                                    ingress=[rule(hosts(2))]))
    engine = engine_with(objects, limits)
    assert engine.endpoint_policy("big/a").entries == {HOST_ENTRY}


# -- every incremental update through an outage equals a fresh engine ---------------------

@dataclass
class OutageAllocator(MemoryAllocator):
    """While `down`, a label set it never numbered cannot be allocated (as the cluster
    allocator answers known label sets from its cache while its store is away)."""

    down: bool = False

    def allocate(self, labels: LabelSet) -> Identity:
        if self.down and labels not in self.by_labels:
            raise AllocationError("identity store unreachable")
        return super().allocate(labels)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.sampled_from(model.POLICY_POOL).map(model.Create),
                          st.sampled_from(model.CHANGES),
                          st.sampled_from(model.PODS).map(model.DeletePod),
                          st.sampled_from(model.PODS).map(model.CreatePod),
                          st.sampled_from([True, False])),
                min_size=1, max_size=12))
def test_updates_through_an_identity_store_outage_leave_the_engine_as_a_fresh_one(
        steps: list[object]) -> None:
    state = model.Model()
    labels, cidrs = OutageAllocator(), MemoryAllocator(first=MIN_CIDR_IDENTITY)
    now = [0.0]
    engine = PolicyEngine(labels, cidrs, clock=lambda: now[0])
    engine.update(state.objects())
    problems = []
    for i, step in enumerate(steps, 1):
        if isinstance(step, bool):
            labels.down = step      # the store goes away (True) or comes back
        else:
            model.apply(state, step)  # type: ignore[arg-type]
        now[0] += 10                  # past any backoff: every update tries again
        objects = state.objects()
        engine.update(objects)
        fresh = PolicyEngine(OutageAllocator(labels.first, dict(labels.by_labels),
                                             down=labels.down),
                             MemoryAllocator(cidrs.first, dict(cidrs.by_labels)))
        fresh.update(objects)
        problems += model.consistency_problems(engine, fresh, f"step {i} ({step!r})")
        if set(engine.identity_problems()) != set(fresh.identity_problems()):
            problems.append(f"step {i}: pods without identity {engine.identity_problems()} "
                            f"vs a fresh engine's {fresh.identity_problems()}")
        held = {ident.id for k in engine.pods() if (ident := engine.identity_of(k))}
        if labels.live() != held:
            problems.append(f"step {i}: identity references {labels.live()} != held {held}")
    assert not problems, "\n".join(problems)
