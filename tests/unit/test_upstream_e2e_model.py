"""The upstream Kubernetes NetworkPolicy e2e suite, as truth tables over the policy engine.

A port of kubernetes/kubernetes test/e2e/network/netpol (network_policy.go, with the
model of model.go, the policy shapes of policies.go / test_helper.go and the truth
tables of reachability.go / truthtable.go). Each case carries the title of its upstream
`It(...)` (the UDP and SCTP contexts prefixed "using UDP" / "using SCTP") and replays
that test's steps against one engine:

  the model   namespaces x, y, z (labels ns=<name> and kubernetes.io/metadata.name), pods
              a, b, c in each (label pod=<name>), every pod declaring ports 80 and 81 on
              TCP, UDP and SCTP named serve-<port>-<protocol>, e.g. serve-81-udp
  steps       create / update / delete policies, add or remove pod and namespace labels
              (and, beyond upstream, recreate pods with other ports or IPs); every step
              goes through `PolicyEngine.update` of the same engine (the agent's path)
  Validate    the full 9x9 table for one port and protocol, decided by `matrix.allowed`;
              on failure, expected / observed / comparison tables as upstream prints them

Beyond upstream's expectations every step also checks that the incrementally updated
engine holds the map state of an engine built from scratch, and that identity
references follow the pods, so a stale endpoint after an update fails even where
upstream's table would not notice. Cases marked "beyond upstream" cover what the suite
leaves out (endPort, label removal, shared identities, prefixes shared between
policies, dual-stack ipBlocks), and a property test replays the cases' steps in any
order.

Loopback: upstream ignores pod -> itself (`ignoreLoopback`, kubernetes#95879: CNIs
differ). Membrane always allows it (the traffic never leaves the pod), so the diagonal
is not compared with upstream's expectation but checked to be allowed.

Policies are built the way upstream builds them: `SetSpecIngressRules` declares
policyTypes [Ingress] and `SetSpecEgressRules` [Egress], so an upstream egress-only
policy does not isolate ingress. Upstream's "%s/4" CIDRs of a pod IP are given
normalised, as the loader normalises them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Union, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.k8s.loader import parse_document
from agent.k8s.objects import (NAMESPACE_NAME_LABEL, ClusterObjects, LabelSelector,
                               NetworkPolicy, PolicyRule, Protocol)
from agent.k8s.serialize import to_document
from agent.policy.engine import PolicyEngine
from agent.policy.matrix import allowed
from policy_helpers import (MemoryAllocator, block, cluster, memory_engine, ns, peer, pod,
                            policy, port, rule, sel)

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PORTS = (80, 81)
PROTOCOLS = ("TCP", "UDP", "SCTP")
PODS = tuple(f"{n}/{p}" for n in NAMESPACES for p in POD_NAMES)


def pod_ip(key: str) -> str:
    """x/a -> 10.244.1.10, y/b -> 10.244.2.11: one /24 per namespace."""
    namespace, name = key.split("/")
    return f"10.244.{NAMESPACES.index(namespace) + 1}.{POD_NAMES.index(name) + 10}"


def host_cidr(key: str) -> str:
    return f"{pod_ip(key)}/32"


def wide_cidr(key: str, plen: int) -> str:
    """Upstream's fmt.Sprintf("%s/4", podIP), normalised as the loader normalises it."""
    return str(ipaddress.IPv4Network(f"{pod_ip(key)}/{plen}", strict=False))


# -- the model --------------------------------------------------------------------------

PortSpec = tuple[str, int, str]  # (name, number, protocol), as policy_helpers.pod takes it
SERVES: tuple[PortSpec, ...] = tuple(
    (f"serve-{n}-{p.lower()}", n, p) for n in PORTS for p in PROTOCOLS)


@dataclass
class Model:
    """The x/y/z cluster as mutable state; `objects()` snapshots it as the store would."""

    namespace_labels: dict[str, dict[str, str]] = field(default_factory=lambda: {
        n: {"ns": n, NAMESPACE_NAME_LABEL: n} for n in NAMESPACES})
    pod_labels: dict[str, dict[str, str]] = field(default_factory=lambda: {
        k: {"pod": k.split("/")[1]} for k in PODS})
    pod_ports: dict[str, tuple[PortSpec, ...]] = field(default_factory=lambda: {
        k: SERVES for k in PODS})
    pod_ips: dict[str, str] = field(default_factory=lambda: {k: pod_ip(k) for k in PODS})
    deleted: set[str] = field(default_factory=set)
    policies: dict[str, NetworkPolicy] = field(default_factory=dict)

    def objects(self) -> ClusterObjects:
        return cluster(
            *(ns(n, **labels) for n, labels in self.namespace_labels.items()),
            *(pod(k, self.pod_labels[k], self.pod_ips[k], self.pod_ports[k])
              for k in PODS if k not in self.deleted),
            *self.policies.values())


# -- the truth table (reachability.go) --------------------------------------------------

@dataclass(frozen=True)
class Match:
    """upstream's Peer: an empty field matches every namespace / pod."""

    ns: str = ""
    pod: str = ""

    def matches(self, key: str) -> bool:
        namespace, name = key.split("/")
        return self.ns in ("", namespace) and self.pod in ("", name)


ANY = Match()


class Reach:
    """Expected connectivity, every pair allowed until told otherwise (NewReachability)."""

    def __init__(self) -> None:
        self.cells = {(src, dst): True for src in PODS for dst in PODS}

    def expect(self, src: str, dst: str, connected: bool) -> "Reach":
        self.cells[(src, dst)] = connected
        return self

    def expect_peer(self, src: Match, dst: Match, connected: bool) -> "Reach":
        for s in PODS:
            for d in PODS:
                if src.matches(s) and dst.matches(d):
                    self.cells[(s, d)] = connected
        return self

    def expect_all_ingress(self, dst: str, connected: bool) -> "Reach":
        return self.expect_peer(ANY, Match(*dst.split("/")), connected)

    def expect_all_egress(self, src: str, connected: bool) -> "Reach":
        return self.expect_peer(Match(*src.split("/")), ANY, connected)


def reach() -> Reach:
    return Reach()


def observe(engine: PolicyEngine, number: int, protocol: str) -> dict[tuple[str, str], bool]:
    proto = Protocol(protocol)
    return {(s, d): allowed(engine, s, d, proto, number) for s in PODS for d in PODS}


def pretty(cells: Mapping[tuple[str, str], bool], mark: Mapping[bool, str]) -> str:
    """truthtable.go's PrettyPrint, in fixed-width columns."""
    lines = ["-     " + "".join(d.ljust(6) for d in PODS)]
    for s in PODS:
        lines.append(s.ljust(6) + "".join(mark[cells[(s, d)]].ljust(6) for d in PODS))
    return "\n".join(lines)


def describe_mismatch(title: str, expected: Mapping[tuple[str, str], bool],
                      observed: Mapping[tuple[str, str], bool]) -> str:
    comparison = {k: expected[k] == observed[k] for k in expected}
    wrong = [f"{s} -> {d}: expected {'allowed' if expected[(s, d)] else 'denied'}"
             for (s, d), same in comparison.items() if not same]
    return (f"{title}\n\nexpected:\n{pretty(expected, {True: '.', False: 'X'})}\n\n"
            f"observed:\n{pretty(observed, {True: '.', False: 'X'})}\n\n"
            f"comparison (X: differs):\n{pretty(comparison, {True: '.', False: 'X'})}\n\n"
            + "\n".join(wrong))


# -- steps ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Create:
    """CreatePolicy; a policy with the key of an existing one replaces it."""

    policy: NetworkPolicy


@dataclass(frozen=True)
class Update:
    """UpdatePolicy: the policy must exist."""

    policy: NetworkPolicy


@dataclass(frozen=True)
class DeleteAllPolicies:
    """kubeManager.cleanNetworkPolicies."""


@dataclass(frozen=True)
class AddPodLabels:
    key: str
    labels: Mapping[str, str]


@dataclass(frozen=True)
class AddNamespaceLabel:
    namespace: str
    key: str
    value: str


@dataclass(frozen=True)
class DeletePolicy:
    key: str


@dataclass(frozen=True)
class RemovePodLabel:
    key: str
    label: str


@dataclass(frozen=True)
class RemoveNamespaceLabel:
    namespace: str
    label: str


@dataclass(frozen=True)
class SetPodPorts:
    """The pod recreated with other container ports (same name, labels and IP)."""

    key: str
    ports: tuple[PortSpec, ...]


@dataclass(frozen=True)
class SetPodIP:
    """The pod recreated with another IP."""

    key: str
    ip: str


@dataclass(frozen=True)
class DeletePod:
    key: str


@dataclass(frozen=True)
class CreatePod:
    """A deleted pod back, with the labels, ports and IP it had."""

    key: str


@dataclass(frozen=True)
class Validate:
    """ValidateOrFail: the whole table for one port and protocol."""

    port: int
    protocol: str
    reachability: Reach


Step = Union[Create, Update, DeleteAllPolicies, AddPodLabels, AddNamespaceLabel, DeletePolicy,
             RemovePodLabel, RemoveNamespaceLabel, SetPodPorts, SetPodIP, DeletePod, CreatePod,
             Validate]


def apply(model: Model, step: Step) -> None:
    if isinstance(step, (Create, Update)):
        key = step.policy.key
        if isinstance(step, Update):
            assert key in model.policies, f"UpdatePolicy of {key}, which does not exist"
        model.policies[key] = step.policy
    elif isinstance(step, DeleteAllPolicies):
        model.policies.clear()
    elif isinstance(step, AddPodLabels):
        model.pod_labels[step.key] = {**model.pod_labels[step.key], **step.labels}
    elif isinstance(step, AddNamespaceLabel):
        model.namespace_labels[step.namespace] = {
            **model.namespace_labels[step.namespace], step.key: step.value}
    elif isinstance(step, DeletePolicy):
        model.policies.pop(step.key, None)  # as kubectl delete --ignore-not-found
    elif isinstance(step, RemovePodLabel):
        model.pod_labels[step.key] = {
            k: v for k, v in model.pod_labels[step.key].items() if k != step.label}
    elif isinstance(step, RemoveNamespaceLabel):
        model.namespace_labels[step.namespace] = {
            k: v for k, v in model.namespace_labels[step.namespace].items() if k != step.label}
    elif isinstance(step, SetPodPorts):
        model.pod_ports[step.key] = step.ports
    elif isinstance(step, SetPodIP):
        model.pod_ips[step.key] = step.ip
    elif isinstance(step, DeletePod):
        model.deleted.add(step.key)
    elif isinstance(step, CreatePod):
        model.deleted.discard(step.key)
    else:
        raise TypeError(f"not a cluster change: {step!r}")


def fresh_engine(objects: ClusterObjects, labels: MemoryAllocator,
                 cidrs: MemoryAllocator) -> PolicyEngine:
    """An engine built from scratch whose allocators number identities as the running
    engine's did, so the two engines' map states are comparable entry by entry."""
    engine = PolicyEngine(MemoryAllocator(labels.first, dict(labels.by_labels)),
                          MemoryAllocator(cidrs.first, dict(cidrs.by_labels)))
    engine.update(objects)
    return engine


def consistency_problems(engine: PolicyEngine, fresh: PolicyEngine, after: str) -> list[str]:
    """The incrementally updated engine must hold the map state of one built from scratch
    (numbered alike, so equal map states give equal verdicts); when it does not, the
    tables that differ say where."""
    if set(engine.pods()) != set(fresh.pods()):
        return [f"after {after}: the engine knows pods {sorted(engine.pods())}, a fresh one "
                f"{sorted(fresh.pods())}"]
    problems = [f"after {after}: the map state of {key} differs from a fresh engine's"
                for key in sorted(engine.pods())
                if engine.endpoint_policy(key) != fresh.endpoint_policy(key)]
    if engine.cluster_maps() != fresh.cluster_maps():
        problems.append(f"after {after}: the cluster maps differ from a fresh engine's")
    if not problems or set(engine.pods()) != set(PODS):
        return problems
    for number in PORTS:
        for protocol in PROTOCOLS:
            mine, theirs = observe(engine, number, protocol), observe(fresh, number, protocol)
            if mine != theirs:
                problems.append(describe_mismatch(
                    f"after {after}: {protocol}/{number} of the updated engine (observed) "
                    "differs from a fresh engine (expected)", theirs, mine))
    return problems


def leaked_identities(engine: PolicyEngine, labels: MemoryAllocator) -> set[int]:
    in_use = {identity.id for k in PODS if (identity := engine.identity_of(k)) is not None}
    return labels.live() ^ in_use


def run(steps: Iterable[Step]) -> None:
    model = Model()
    engine, labels, cidrs = memory_engine()
    engine.update(model.objects())
    problems: list[str] = []
    for i, step in enumerate(steps, 1):
        if isinstance(step, Validate):
            observed = observe(engine, step.port, step.protocol)
            expected = dict(step.reachability.cells)
            for key in PODS:  # loopback: ignored upstream, always allowed here
                if not observed[(key, key)]:
                    problems.append(f"step {i}: {key} -> itself on {step.protocol}/"
                                    f"{step.port} is denied; a pod always reaches itself")
                expected[(key, key)] = observed[(key, key)]
            if observed != expected:
                problems.append(describe_mismatch(
                    f"step {i}: {step.protocol}/{step.port}", expected, observed))
            continue
        apply(model, step)
        objects = model.objects()
        engine.update(objects)
        fresh = fresh_engine(objects, labels, cidrs)
        problems += consistency_problems(engine, fresh, f"step {i} ({type(step).__name__})")
        if leaked := leaked_identities(engine, labels):
            problems.append(f"after step {i}: identity references out of step with the "
                            f"pods: {sorted(leaked)}")
    assert not problems, "\n\n".join(problems)


# -- policies as upstream builds them ---------------------------------------------------

def labels(**kv: str) -> LabelSelector:
    return sel(kv)


def ingress_policy(name: str, selector: LabelSelector, *rules: PolicyRule,
                   namespace: str = "x") -> NetworkPolicy:
    """GenNetworkPolicyWithNameAndPodSelector(name, selector, SetSpecIngressRules(rules...))."""
    return policy(f"{namespace}/{name}", selector, ingress=rules, types=["Ingress"])


def egress_policy(name: str, selector: LabelSelector, *rules: PolicyRule,
                  namespace: str = "x") -> NetworkPolicy:
    """... SetSpecEgressRules(rules...): policyTypes [Egress] only."""
    return policy(f"{namespace}/{name}", selector, egress=rules, types=["Egress"])


def deny_all(name: str) -> NetworkPolicy:
    """SetSpecIngressRules(), SetSpecEgressRules(): isolated both ways, nothing allowed."""
    return policy(f"x/{name}", sel(), types=["Ingress", "Egress"])


ALL = sel()
POD_A = labels(pod="a")
NS_Y = labels(**{NAMESPACE_NAME_LABEL: "y"})
NS_NOT_X = sel(None, (NAMESPACE_NAME_LABEL, "NotIn", ("x",)))


def from_ns_y_on(number: int, protocol: str) -> NetworkPolicy:
    """'should enforce policy based on Ports': namespace y may reach x/a on one port."""
    return ingress_policy("allow-client-a-via-ns-selector", POD_A,
                          rule([peer(namespaces=NS_Y)], [port(number, protocol)]))


def only_ns_y_reaches_xa() -> Reach:
    return (reach().expect_peer(Match("x"), Match("x", "a"), False)
            .expect_peer(Match("z"), Match("x", "a"), False))


def only_pod_reaches_xa(src: str) -> Reach:
    return reach().expect_all_ingress("x/a", False).expect(src, "x/a", True)


# -- the cases --------------------------------------------------------------------------

CASES = [
    pytest.param([
        Create(ingress_policy("deny-ingress", ALL)),
        Validate(80, "TCP", reach().expect_peer(ANY, Match("x"), False)),
    ], id="should support a 'default-deny-ingress' policy"),

    pytest.param([
        Create(deny_all("deny-all")),
        Validate(80, "TCP", reach().expect_peer(ANY, Match("x"), False)
                 .expect_peer(Match("x"), ANY, False)),
    ], id="should support a 'default-deny-all' policy"),

    pytest.param([
        Create(ingress_policy("x-a-allows-x-b", POD_A, rule([peer(labels(pod="b"))]))),
        Validate(80, "TCP", only_pod_reaches_xa("x/b")),
    ], id="should enforce policy to allow traffic from pods within server namespace based on "
          "PodSelector"),

    pytest.param([
        Create(ingress_policy("deny-all", ALL)),
        Create(ingress_policy("allow-all-to-a", POD_A, rule([peer(ALL, ALL)]))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", True)
                 .expect_all_ingress("x/b", False).expect_all_ingress("x/c", False)),
    ], id="should enforce policy to allow ingress traffic for a target"),

    pytest.param([
        Create(ingress_policy("allow-from-another-ns", POD_A, rule([peer(namespaces=ALL)]))),
        Validate(80, "TCP", reach()),
    ], id="should enforce policy to allow ingress traffic from pods in all namespaces"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-ns-selector", POD_A,
                              rule([peer(namespaces=NS_Y)]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
    ], id="should enforce policy to allow traffic only from a different namespace, based on "
          "NamespaceSelector"),

    pytest.param([
        Create(ingress_policy("x-a-allows-x-b", POD_A,
                              rule([peer(sel(None, ("pod", "In", ("b",))))]))),
        Validate(80, "TCP", only_pod_reaches_xa("x/b")),
    ], id="should enforce policy based on PodSelector with MatchExpressions"),

    pytest.param([
        Create(ingress_policy("allow-ns-y-match-selector", POD_A, rule([peer(
            namespaces=sel(None, (NAMESPACE_NAME_LABEL, "In", ("y",))))]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
    ], id="should enforce policy based on NamespaceSelector with MatchExpressions"),

    pytest.param([
        Create(ingress_policy("allow-ns-y-match-selector", POD_A,
                              rule([peer(namespaces=NS_NOT_X), peer(labels(pod="b"))]))),
        Validate(80, "TCP", reach().expect("x/a", "x/a", False).expect("x/c", "x/a", False)),
    ], id="should enforce policy based on PodSelector or NamespaceSelector"),

    pytest.param([
        Create(ingress_policy("allow-ns-y-podselector-and-nsselector", POD_A,
                              rule([peer(labels(pod="b"), NS_NOT_X)]))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)
                 .expect("y/b", "x/a", True).expect("z/b", "x/a", True)),
    ], id="should enforce policy based on PodSelector and NamespaceSelector"),

    pytest.param([
        Create(ingress_policy("allow-ns-y-z-pod-b-c", POD_A, rule([peer(
            sel(None, ("pod", "In", ("b", "c"))), NS_NOT_X)]))),
        Validate(80, "TCP", reach().expect_peer(Match("x"), Match("x", "a"), False)
                 .expect("y/a", "x/a", False).expect("z/a", "x/a", False)),
    ], id="should enforce policy based on Multiple PodSelectors and NamespaceSelectors"),

    pytest.param([
        Create(ingress_policy("allow-ns-x-pod-b-c", POD_A,
                              rule([peer(labels(pod="b")), peer(labels(pod="c"))]))),
        Validate(80, "TCP", only_pod_reaches_xa("x/b").expect("x/c", "x/a", True)),
    ], id="should enforce policy based on any PodSelectors"),

    pytest.param([
        Create(ingress_policy("allow-ns-y-pod-a-via-namespace-pod-selector", POD_A,
                              rule([peer(POD_A, NS_Y)]))),
        Validate(80, "TCP", only_pod_reaches_xa("y/a")),
    ], id="should enforce policy to allow traffic only from a pod in a different namespace "
          "based on PodSelector and NamespaceSelector"),

    pytest.param([
        Create(from_ns_y_on(81, "TCP")),
        Validate(81, "TCP", only_ns_y_reaches_xa()),
    ], id="should enforce policy based on Ports"),

    pytest.param([
        Create(from_ns_y_on(81, "TCP")),
        Validate(81, "TCP", only_ns_y_reaches_xa()),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
        Create(ingress_policy("allow-client-a-via-ns-selector-80", POD_A,
                              rule([peer(namespaces=NS_Y)], [port(80)]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
    ], id="should enforce multiple, stacked policies with overlapping podSelectors"),

    pytest.param([
        Create(ingress_policy("allow-all", ALL, rule())),
        Validate(80, "TCP", reach()),
        Validate(81, "TCP", reach()),
    ], id="should support allow-all policy"),

    pytest.param([
        Create(ingress_policy("allow-all", ALL, rule(ports=[port("serve-81-tcp")]))),
        Validate(81, "TCP", reach()),
        Validate(80, "TCP", reach().expect_peer(ANY, Match("x"), False)),
    ], id="should allow ingress access on one named port"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-ns-selector-80", POD_A,
                              rule([peer(namespaces=NS_Y)], [port("serve-80-tcp")]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
        Validate(81, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="should allow ingress access from namespace on one named port"),

    pytest.param([
        Create(egress_policy("allow-egress", ALL, rule(ports=[port("serve-80-tcp")]))),
        Validate(80, "TCP", reach()),
        Validate(81, "TCP", reach().expect_peer(Match("x"), ANY, False)),
    ], id="should allow egress access on one named port"),

    pytest.param([
        Create(ingress_policy("allow-all-mutate-to-deny-all", ALL, rule())),
        Validate(81, "TCP", reach()),
        Update(ingress_policy("allow-all-mutate-to-deny-all", ALL)),
        Validate(81, "TCP", reach().expect_peer(ANY, Match("x"), False)),
    ], id="should enforce updated policy"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-ns-selector", POD_A,
                              rule([peer(namespaces=labels(ns2="updated"))]))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
        AddNamespaceLabel("y", "ns2", "updated"),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)
                 .expect_peer(Match("y"), ANY, True)),
    ], id="should allow ingress access from updated namespace"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-pod-selector", POD_A,
                              rule([peer(labels(pod="b", pod2="updated"))]))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
        AddPodLabels("x/b", {"pod": "b", "pod2": "updated"}),
        Validate(80, "TCP", only_pod_reaches_xa("x/b")),
    ], id="should allow ingress access from updated pod"),

    pytest.param([
        Create(ingress_policy("deny-empty-policy", ALL, rule([peer(ALL)]))),
        Validate(80, "TCP", reach().expect_peer(Match("y"), Match("x"), False)
                 .expect_peer(Match("z"), Match("x"), False)),
    ], id="should deny ingress from pods on other namespaces"),

    pytest.param([
        Create(ingress_policy("deny-ingress-via-label-selector", labels(target="isolated"))),
        Validate(80, "TCP", reach()),
        AddPodLabels("x/a", {"target": "isolated"}),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="should deny ingress access to updated pod"),

    pytest.param([
        Create(egress_policy("deny-egress-pod-a", POD_A)),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)),
    ], id="should deny egress from pods based on PodSelector"),

    pytest.param([
        Create(egress_policy("deny-egress-ns-x", ALL)),
        Validate(80, "TCP", reach().expect_peer(Match("x"), ANY, False)),
    ], id="should deny egress from all pods in a namespace"),

    pytest.param([
        Create(policy("x/allow-client-a-via-pod-selector", POD_A,
                      ingress=[rule([peer(labels(pod="b"))])],
                      egress=[rule(ports=[port(80)])], types=["Egress", "Ingress"])),
        Validate(80, "TCP", only_pod_reaches_xa("x/b")),
        Validate(81, "TCP", only_pod_reaches_xa("x/b").expect_all_egress("x/a", False)),
    ], id="should work with Ingress, Egress specified together"),

    pytest.param([
        Create(egress_policy("allow-to-ns-y-pod-a", POD_A, rule([peer(POD_A, NS_Y)]))),
        Create(ingress_policy("allow-from-xa-on-ya-match-selector", POD_A,
                              rule([peer(POD_A, labels(**{NAMESPACE_NAME_LABEL: "x"}))]),
                              namespace="y")),
        Create(ingress_policy("allow-from-xa-on-yb-match-selector", labels(pod="b"),
                              rule([peer(POD_A, labels(**{NAMESPACE_NAME_LABEL: "x"}))]),
                              namespace="y")),
        Validate(80, "TCP", reach().expect_peer(Match("x", "a"), ANY, False)
                 .expect_peer(ANY, Match("y", "a"), False)
                 .expect_peer(Match("x", "a"), Match("y", "a"), True)
                 .expect_peer(ANY, Match("y", "b"), False)),
    ], id="should support denying of egress traffic on the client side (even if the server "
          "explicitly allows this traffic)"),

    pytest.param([
        Create(egress_policy("allow-to-ns-y-pod-a", POD_A, rule([peer(POD_A, NS_Y)]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False).expect("x/a", "y/a", True)),
    ], id="should enforce egress policy allowing traffic to a server in a different namespace "
          "based on PodSelector and NamespaceSelector"),

    pytest.param([
        Create(ingress_policy("allow-ingress-by-proto", POD_A, rule(ports=[port(None, "TCP")]))),
        Validate(80, "TCP", reach()),
        Validate(80, "UDP", reach().expect_peer(ANY, Match("x", "a"), False)),
    ], id="should enforce ingress policy allowing any port traffic to a server on a specific "
          "protocol"),

    pytest.param([
        Create(ingress_policy("allow-ingress-port-80", ALL, rule(ports=[port(80)]))),
        Validate(81, "TCP", reach().expect_peer(ANY, Match("x"), False)),
        Create(ingress_policy("allow-ingress", ALL, rule())),
        Validate(81, "TCP", reach()),
    ], id="should enforce multiple ingress policies with ingress allow-all policy taking "
          "precedence"),

    pytest.param([
        Create(egress_policy("allow-egress-port-80", ALL, rule(ports=[port(80)]))),
        Validate(81, "TCP", reach().expect_peer(Match("x"), ANY, False)),
        Create(egress_policy("allow-egress", ALL, rule())),
        Validate(81, "TCP", reach()),
    ], id="should enforce multiple egress policies with egress allow-all policy taking "
          "precedence"),

    pytest.param([
        Create(deny_all("deny-all")),
        Validate(80, "TCP", reach().expect_peer(Match("x"), ANY, False)
                 .expect_peer(ANY, Match("x"), False)),
        DeleteAllPolicies(),
        Validate(80, "TCP", reach()),
    ], id="should stop enforcing policies after they are deleted"),

    pytest.param([
        Create(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(host_cidr("y/b"))]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False).expect("x/a", "y/b", True)),
    ], id="should allow egress access to server in CIDR block"),

    pytest.param([
        Create(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(wide_cidr("x/a", 4), host_cidr("x/b"))]))),
        Validate(80, "TCP", reach().expect("x/a", "x/b", False)),
    ], id="should enforce except clause while egress access to server in CIDR block"),

    pytest.param([
        Create(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(wide_cidr("x/a", 4), host_cidr("x/b"))]))),
        Validate(80, "TCP", reach().expect("x/a", "x/b", False)),
        Update(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(host_cidr("x/b"))]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False).expect("x/a", "x/b", True)),
    ], id="should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed"),

    pytest.param([
        Create(egress_policy("allow-egress-for-target", POD_A, rule())),
        Validate(80, "TCP", reach()),
        Create(ingress_policy("deny-ingress-via-label-selector", POD_A)),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="should enforce policies to check ingress and egress policies can be controlled "
          "independently based on PodSelector"),

    pytest.param([
        Create(ingress_policy("deny-ingress", ALL)),
        Create(ingress_policy("allow-only-sctp-ingress-on-port-81", POD_A,
                              rule(ports=[port(81, "SCTP")]))),
        Validate(81, "TCP", reach().expect_peer(ANY, Match("x"), False)),
    ], id="should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin "
          "doesn't support SCTP"),

    pytest.param([
        Create(ingress_policy("allow-only-sctp-ingress-on-port-80", POD_A,
                              rule(ports=[port(80, "SCTP")]))),
        Validate(81, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="should properly isolate pods that are selected by a policy allowing SCTP, even if "
          "the plugin doesn't support SCTP"),

    pytest.param([
        Create(ingress_policy("allow-only-udp-ingress-on-port-81", POD_A,
                              rule(ports=[port(81, "UDP")]))),
        Validate(81, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="should not allow access by TCP when a policy specifies only UDP"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-ns-selector-for-immutable-ns-label", POD_A,
                              rule([peer(namespaces=NS_Y)]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
    ], id="should enforce policy to allow traffic based on NamespaceSelector with MatchLabels "
          "using default ns label"),

    pytest.param([
        Create(egress_policy("allow-ns-y-match-selector-for-immutable-ns-label", POD_A, rule([
            peer(namespaces=sel(None, (NAMESPACE_NAME_LABEL, "NotIn", ("y",))))]))),
        Validate(80, "TCP", reach().expect_peer(Match("x", "a"), Match("y"), False)),
    ], id="should enforce policy based on NamespaceSelector with MatchExpressions using default "
          "ns label"),
]

# "Netpol [LinuxOnly] NetworkPolicy between server and client using UDP" and
# "Netpol [Feature:SCTPConnectivity] ... using SCTP": the same three cases per protocol.
for _proto in ("UDP", "SCTP"):
    CASES += [
        pytest.param([
            Create(ingress_policy("deny-all", ALL)),
            Validate(80, _proto, reach().expect_peer(ANY, Match("x"), False)),
        ], id=f"using {_proto} should support a 'default-deny-ingress' policy"),
        pytest.param([
            Create(ingress_policy("allow-ingress-on-port-81-ns-x", POD_A,
                                  rule([peer(namespaces=NS_Y)], [port(81, _proto)]))),
            Validate(81, _proto, only_ns_y_reaches_xa()),
        ], id=f"using {_proto} should enforce policy based on Ports"),
        pytest.param([
            Create(ingress_policy("allow-ns-y-pod-a-via-namespace-pod-selector", POD_A,
                                  rule([peer(POD_A, NS_Y)]))),
            Validate(80, _proto, only_pod_reaches_xa("y/a")),
        ], id=f"using {_proto} should enforce policy to allow traffic only from a pod in a "
              "different namespace based on PodSelector and NamespaceSelector"),
    ]


# -- beyond upstream --------------------------------------------------------------------
# Not upstream It()s: the same model and checks on what the suite leaves out (endPort,
# labels removed, an identity shared after a relabel, pods recreated with other ports or
# another IP, policies sharing prefixes, dual-stack ipBlocks).

FROM_X = labels(**{NAMESPACE_NAME_LABEL: "x"})
PORT_80_MOVED_TO_81 = tuple(
    (name, 81 if name == "serve-80-tcp" else number, protocol)
    for name, number, protocol in SERVES if name != "serve-81-tcp")

CASES += [
    pytest.param([
        Create(ingress_policy("allow-80-81-from-y", POD_A,
                              rule([peer(namespaces=NS_Y)], [port(80, end=81)]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
        Validate(81, "TCP", only_ns_y_reaches_xa()),
        Validate(80, "UDP", reach().expect_all_ingress("x/a", False)),
        Update(ingress_policy("allow-80-81-from-y", POD_A,
                              rule([peer(namespaces=NS_Y)], [port(79, end=80)]))),
        Validate(80, "TCP", only_ns_y_reaches_xa()),
        Validate(81, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="beyond upstream: endPort allows the whole range on its protocol, and an update "
          "narrows it"),

    pytest.param([
        Create(ingress_policy("tcp-80-udp-81", ALL, rule(ports=[port(80), port(81, "UDP")]))),
        Validate(80, "TCP", reach()),
        Validate(81, "UDP", reach()),
        Validate(81, "TCP", reach().expect_peer(ANY, Match("x"), False)),
        Validate(80, "UDP", reach().expect_peer(ANY, Match("x"), False)),
        Validate(80, "SCTP", reach().expect_peer(ANY, Match("x"), False)),
    ], id="beyond upstream: each port of a rule keeps its own protocol"),

    pytest.param([
        Create(ingress_policy("allow-client-a-via-ns-selector", POD_A,
                              rule([peer(namespaces=labels(ns2="updated"))]))),
        AddNamespaceLabel("y", "ns2", "updated"),
        Validate(80, "TCP", only_ns_y_reaches_xa().expect_peer(Match("z"), Match("x", "a"),
                                                               False)),
        RemoveNamespaceLabel("y", "ns2"),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
    ], id="beyond upstream: removing the namespace label revokes what it allowed"),

    pytest.param([
        Create(ingress_policy("deny-ingress-via-label-selector", labels(target="isolated"))),
        AddPodLabels("x/a", {"target": "isolated"}),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
        RemovePodLabel("x/a", "target"),
        Validate(80, "TCP", reach()),
    ], id="beyond upstream: removing the pod label lifts the isolation it brought"),

    pytest.param([
        Create(ingress_policy("x-a-allows-x-c", POD_A, rule([peer(labels(pod="c"))]))),
        Create(ingress_policy("y-a-allows-x-a", POD_A, rule([peer(POD_A, FROM_X)]),
                              namespace="y")),
        Validate(80, "TCP", only_pod_reaches_xa("x/c").expect_all_ingress("y/a", False)
                 .expect("x/a", "y/a", True)),
        AddPodLabels("x/b", {"pod": "a"}),
        Validate(80, "TCP", only_pod_reaches_xa("x/c").expect_all_ingress("x/b", False)
                 .expect("x/c", "x/b", True).expect_all_ingress("y/a", False)
                 .expect("x/a", "y/a", True).expect("x/b", "y/a", True)),
        AddPodLabels("x/b", {"pod": "b"}),
        Validate(80, "TCP", only_pod_reaches_xa("x/c").expect_all_ingress("y/a", False)
                 .expect("x/a", "y/a", True)),
    ], id="beyond upstream: a pod relabelled like another shares its identity and its "
          "policies, and leaves them when relabelled back"),

    pytest.param([
        Create(egress_policy("allow-egress", ALL, rule(ports=[port("serve-80-tcp")]))),
        SetPodPorts("y/a", PORT_80_MOVED_TO_81),
        Validate(80, "TCP", reach().expect("x/a", "y/a", False).expect("x/b", "y/a", False)
                 .expect("x/c", "y/a", False)),
        Validate(81, "TCP", reach().expect_peer(Match("x"), ANY, False)
                 .expect_peer(Match("x"), Match("y", "a"), True)),
        SetPodPorts("y/a", SERVES),
        Validate(80, "TCP", reach()),
        Validate(81, "TCP", reach().expect_peer(Match("x"), ANY, False)),
    ], id="beyond upstream: an egress named port follows the ports the destination declares"),

    pytest.param([
        Create(ingress_policy("allow-named", POD_A, rule(ports=[port("serve-81-udp", "UDP")]))),
        Validate(81, "UDP", reach()),
        SetPodPorts("x/a", tuple(p for p in SERVES if p[0] != "serve-81-udp")),
        Validate(81, "UDP", reach().expect_all_ingress("x/a", False)),
    ], id="beyond upstream: an ingress named port the pod stops declaring allows nothing"),

    pytest.param([
        Create(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(host_cidr("y/b"))]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False).expect("x/a", "y/b", True)),
        SetPodIP("y/b", "10.244.2.99"),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)),
        SetPodIP("y/c", pod_ip("y/b")),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False).expect("x/a", "y/c", True)),
    ], id="beyond upstream: an ipBlock follows addresses, not pods, when pods are recreated"),

    pytest.param([
        Create(egress_policy("to-y-b", POD_A, rule([block(host_cidr("y/b"))]))),
        Create(egress_policy("to-y-but-b", POD_A,
                             rule([block("10.244.2.0/24", host_cidr("y/b"))]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)
                 .expect_peer(Match("x", "a"), Match("y"), True)),
        DeletePolicy("x/to-y-b"),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)
                 .expect("x/a", "y/a", True).expect("x/a", "y/c", True)),
        DeletePolicy("x/to-y-but-b"),
        Validate(80, "TCP", reach()),
    ], id="beyond upstream: deleting a policy keeps the prefix another policy excepts"),

    pytest.param([
        Create(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                             rule([block(wide_cidr("x/a", 4), host_cidr("x/b"))]))),
        Create(egress_policy("c-to-y-b", labels(pod="c"), rule([block(host_cidr("y/b"))]))),
        Validate(80, "TCP", reach().expect("x/a", "x/b", False).expect_all_egress("x/c", False)
                 .expect("x/c", "y/b", True)),
        DeletePolicy("x/c-to-y-b"),
        Validate(80, "TCP", reach().expect("x/a", "x/b", False)),
    ], id="beyond upstream: another policy's prefix inside an ipBlock stays matched by it"),

    pytest.param([
        Create(egress_policy("named-port-to-z-range", POD_A,
                             rule([block("10.244.3.0/24")], [port("serve-80-tcp")]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)
                 .expect_peer(Match("x", "a"), Match("z"), True)),
        SetPodPorts("y/a", PORT_80_MOVED_TO_81),
        SetPodIP("y/a", "10.244.3.50"),  # into the block, with its own number for the name
        SetPodIP("y/a", pod_ip("y/a")),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)
                 .expect_peer(Match("x", "a"), Match("z"), True)),
    ], id="beyond upstream: an egress named port to an ipBlock resolves on the pods inside it "
          "as they come and go"),

    pytest.param([
        Create(egress_policy("to-ipv6-only", POD_A, rule([block("::/0")]))),
        Create(egress_policy("dual-stack-to-y", labels(pod="b"),
                             rule([block("10.244.2.0/24"), block("fd00::/8", "fd00::1/128")]))),
        Validate(80, "TCP", reach().expect_all_egress("x/a", False)
                 .expect_all_egress("x/b", False)
                 .expect_peer(Match("x", "b"), Match("y"), True)),
        DeletePolicy("x/to-ipv6-only"),
        Validate(80, "TCP", reach().expect_all_egress("x/b", False)
                 .expect_peer(Match("x", "b"), Match("y"), True)),
    ], id="beyond upstream: an IPv6 ipBlock (dual-stack policy) matches no pod and breaks "
          "nothing else"),
]

# Keys identities leave out (per-replica labels) and the agent's reserved identity keys,
# as a pod's own labels: a policy arriving or leaving changes identities, which must
# flow through the engine's incremental update like any relabel.
POD_NAME = "statefulset.kubernetes.io/pod-name"
JOB_NAME = "job-name"
CLAIMED_NAMESPACE = "io.kubernetes.pod.namespace"
NOT_A_JOB = sel(None, (JOB_NAME, "DoesNotExist", ()))

CASES += [
    pytest.param([
        AddPodLabels("x/a", {POD_NAME: "x-0"}), AddPodLabels("x/b", {POD_NAME: "x-1"}),
        Validate(80, "TCP", reach()),
        Create(ingress_policy("deny-to-x-0", labels(**{POD_NAME: "x-0"}))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)),
        Create(ingress_policy("x-1-allows-x-0", labels(**{POD_NAME: "x-1"}),
                              rule([peer(labels(**{POD_NAME: "x-0"}))]))),
        Validate(80, "TCP", reach().expect_all_ingress("x/a", False)
                 .expect_all_ingress("x/b", False).expect("x/a", "x/b", True)),
        DeletePolicy("x/deny-to-x-0"),
        Validate(80, "TCP", reach().expect_all_ingress("x/b", False).expect("x/a", "x/b", True)),
        DeleteAllPolicies(),
        Validate(80, "TCP", reach()),
    ], id="beyond upstream: a per-replica label selects one StatefulSet replica as policies "
          "come and go"),

    pytest.param([
        Create(ingress_policy("from-non-jobs-anywhere", POD_A, rule([peer(NOT_A_JOB, ALL)]))),
        Validate(80, "TCP", reach()),
        AddPodLabels("y/b", {JOB_NAME: "backup-1"}),
        Validate(80, "TCP", reach().expect("y/b", "x/a", False)),
        RemovePodLabel("y/b", JOB_NAME),
        Validate(80, "TCP", reach()),
    ], id="beyond upstream: a peer job-name DoesNotExist in every namespace leaves Job pods out"),

    pytest.param([
        AddPodLabels("y/a", {CLAIMED_NAMESPACE: "x"}),
        Create(ingress_policy("x-only", POD_A, rule([peer(ALL)]))),
        Validate(80, "TCP", reach().expect_peer(Match("y"), Match("x", "a"), False)
                 .expect_peer(Match("z"), Match("x", "a"), False)),
        Create(ingress_policy("isolate-claimers", labels(**{CLAIMED_NAMESPACE: "x"}),
                              namespace="y")),
        Validate(80, "TCP", reach().expect_peer(Match("y"), Match("x", "a"), False)
                 .expect_peer(Match("z"), Match("x", "a"), False)
                 .expect_all_ingress("y/a", False)),
        RemovePodLabel("y/a", CLAIMED_NAMESPACE),
        Validate(80, "TCP", reach().expect_peer(Match("y"), Match("x", "a"), False)
                 .expect_peer(Match("z"), Match("x", "a"), False)),
    ], id="beyond upstream: a pod labelled io.kubernetes.pod.namespace=x is selected by that "
          "label and never counts as a pod of x"),
]

@pytest.mark.parametrize("steps", CASES)
def test_upstream_netpol_e2e(steps: list[Step]) -> None:
    run(steps)



def test_every_policy_of_the_cases_reads_back_from_its_manifest() -> None:
    """What the agent enforces comes through the loader: the cases' shapes survive it."""
    assert [p for p in POLICY_POOL if parse_document(to_document(p)) != [p]] == []


def test_upstream_host_bits_in_an_ipblock_are_cleared_as_the_cases_assume() -> None:
    """Upstream writes fmt.Sprintf("%s/4", podIP); the API server accepts the host bits."""
    document = to_document(egress_policy("allow-client-a-via-cidr-egress-rule", POD_A,
                                         rule([block(wide_cidr("x/a", 4))])))
    document["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] = f"{pod_ip('x/a')}/4"
    [loaded] = parse_document(document)
    assert isinstance(loaded, NetworkPolicy)
    peer_block = loaded.egress[0].peers[0].ip_block
    assert peer_block is not None and peer_block.cidr == wide_cidr("x/a", 4) == "0.0.0.0/4"

# -- any order of the cases' steps ------------------------------------------------------
# Upstream replays each case on a clean cluster. An agent sees the same changes in any
# order, on top of whatever came before: every interleaving of the cases' policies and of
# pod and namespace changes must leave the updated engine as a fresh one would be.

POLICY_POOL = list(dict.fromkeys(
    step.policy for case in CASES for step in cast(list[Step], case.values[0])
    if isinstance(step, (Create, Update))))
CHANGES: list[Step] = [
    AddPodLabels("x/b", {"pod2": "updated"}), RemovePodLabel("x/b", "pod2"),
    AddPodLabels("x/a", {"target": "isolated"}), RemovePodLabel("x/a", "target"),
    AddPodLabels("x/b", {"pod": "a"}), AddPodLabels("x/b", {"pod": "b"}),
    AddPodLabels("y/c", {"pod": "b"}), AddPodLabels("y/c", {"pod": "c"}),
    AddNamespaceLabel("y", "ns2", "updated"), RemoveNamespaceLabel("y", "ns2"),
    SetPodPorts("y/a", PORT_80_MOVED_TO_81), SetPodPorts("y/a", SERVES),
    SetPodPorts("x/a", ()), SetPodPorts("x/a", SERVES),
    SetPodIP("y/b", "10.244.2.99"), SetPodIP("y/b", pod_ip("y/b")),
    SetPodIP("y/c", "10.244.3.99"), SetPodIP("y/c", pod_ip("y/c")),
    AddPodLabels("x/a", {POD_NAME: "x-0"}), AddPodLabels("x/b", {POD_NAME: "x-1"}),
    RemovePodLabel("x/a", POD_NAME), RemovePodLabel("x/b", POD_NAME),
    AddPodLabels("y/b", {JOB_NAME: "backup-1"}), RemovePodLabel("y/b", JOB_NAME),
    AddPodLabels("y/a", {CLAIMED_NAMESPACE: "x"}), RemovePodLabel("y/a", CLAIMED_NAMESPACE),
    DeleteAllPolicies(),
]
any_step = st.one_of(
    st.sampled_from(POLICY_POOL).map(Create),
    st.sampled_from(sorted({p.key for p in POLICY_POOL})).map(DeletePolicy),
    st.sampled_from(PODS).map(DeletePod), st.sampled_from(PODS).map(CreatePod),
    st.sampled_from(CHANGES))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(POLICY_POOL).map(Create), min_size=1, max_size=6),
       st.lists(any_step, min_size=1, max_size=10))
def test_any_interleaving_of_the_upstream_steps_updates_the_engine_as_a_fresh_one(
        policies: list[Step], changes: list[Step]) -> None:
    run(policies + changes)
