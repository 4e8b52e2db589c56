"""Small builders for policy-engine tests: objects in a line each, verdicts in one call.

Policies built here are defaulted the way the API server defaults them (Ingress always,
Egress when egress rules exist) unless `types` is given; the loader's own defaulting is
tested through YAML in test_policy_yaml.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from agent.k8s.objects import (NAMESPACE_NAME_LABEL, ClusterObjects, ContainerPort, IPBlock,
                               LabelSelector, Namespace, NetworkPolicy, Node, Operator, Pod,
                               PolicyPeer, PolicyPort, PolicyRule, PolicyType, Protocol,
                               Requirement)
from agent.policy.engine import PolicyEngine
from agent.policy.matrix import allowed
from identity.allocator import Identity
from identity.labels import LabelSet
from identity.reserved import MIN_CIDR_IDENTITY, MIN_LABEL_IDENTITY

Labels = Mapping[str, str]


@dataclass
class MemoryAllocator:
    """The Allocator protocol in a dict, counting references so tests can check release."""

    first: int = MIN_LABEL_IDENTITY
    by_labels: dict[LabelSet, Identity] = field(default_factory=dict)
    refs: dict[int, int] = field(default_factory=dict)

    def allocate(self, labels: LabelSet) -> Identity:
        identity = self.by_labels.get(labels)
        if identity is None:
            identity = Identity(self.first + len(self.by_labels), labels)
            self.by_labels[labels] = identity
        self.refs[identity.id] = self.refs.get(identity.id, 0) + 1
        return identity

    def lookup_labels(self, labels: LabelSet) -> Identity | None:
        return self.by_labels.get(labels)

    def release(self, identity: Identity) -> None:
        self.refs[identity.id] -= 1
        assert self.refs[identity.id] >= 0, f"identity {identity.id} released too often"

    def live(self) -> set[int]:
        return {i for i, n in self.refs.items() if n > 0}


def memory_engine() -> tuple[PolicyEngine, MemoryAllocator, MemoryAllocator]:
    labels, cidrs = MemoryAllocator(), MemoryAllocator(first=MIN_CIDR_IDENTITY)
    return PolicyEngine(labels, cidrs), labels, cidrs


def ns(name: str, **labels: str) -> Namespace:
    return Namespace(name, {NAMESPACE_NAME_LABEL: name, **labels})


def pod(key: str, labels: Labels | None = None, ip: str | None = None,
        ports: Iterable[tuple[str, int, str]] = (), host_network: bool = False,
        node: str | None = None) -> Pod:
    """ports: (name, number, protocol) triples; name "" for an unnamed port."""
    namespace, name = key.split("/")
    return Pod(namespace, name, dict(labels or {}), ip=ip, node_name=node,
               ports=tuple(ContainerPort(n, Protocol(p), name or None) for name, n, p in ports),
               host_network=host_network)


def sel(labels: Labels | None = None, *exprs: tuple[str, str, tuple[str, ...]]) -> LabelSelector:
    """sel({"app": "x"}, ("tier", "NotIn", ("db",)))."""
    return LabelSelector.of(labels, tuple(Requirement(k, Operator(op), v) for k, op, v in exprs))


def peer(pods: LabelSelector | None = None, namespaces: LabelSelector | None = None) -> PolicyPeer:
    return PolicyPeer(pod_selector=pods, namespace_selector=namespaces)


def block(cidr: str, *excepts: str) -> PolicyPeer:
    return PolicyPeer(ip_block=IPBlock(cidr, tuple(excepts)))


def port(number: int | str | None = None, protocol: str = "TCP",
         end: int | None = None) -> PolicyPort:
    return PolicyPort(Protocol(protocol), number, end)


def rule(peers: Iterable[PolicyPeer] = (), ports: Iterable[PolicyPort] = ()) -> PolicyRule:
    return PolicyRule(tuple(peers), tuple(ports))


def policy(key: str, selector: LabelSelector | None = None, ingress: Iterable[PolicyRule] = (),
           egress: Iterable[PolicyRule] = (), types: Iterable[str] | None = None
           ) -> NetworkPolicy:
    namespace, name = key.split("/")
    egress = tuple(egress)
    if types is None:
        declared = {PolicyType.INGRESS} | ({PolicyType.EGRESS} if egress else set())
    else:
        declared = {PolicyType(t) for t in types}
    return NetworkPolicy(namespace, name, selector or LabelSelector(), frozenset(declared),
                         tuple(ingress), egress)


def cluster(*objects: Any) -> ClusterObjects:
    """ClusterObjects from a flat list; namespaces of pods are created when missing."""
    out = ClusterObjects()
    for obj in objects:
        if isinstance(obj, Namespace):
            out.namespaces[obj.name] = obj
        elif isinstance(obj, Pod):
            out.pods[obj.key] = obj
        elif isinstance(obj, NetworkPolicy):
            out.policies[obj.key] = obj
        elif isinstance(obj, Node):
            out.nodes[obj.name] = obj
        else:
            raise TypeError(f"not a cluster object: {obj!r}")
    for p in out.pods.values():
        out.namespaces.setdefault(p.namespace, ns(p.namespace))
    return out


def engine_for(objects: ClusterObjects) -> PolicyEngine:
    engine, _, _ = memory_engine()
    engine.update(objects)
    return engine


def verdict(objects_or_engine: ClusterObjects | PolicyEngine, src: str, dst: str,
            number: int = 80, protocol: str = "TCP") -> bool:
    engine = (objects_or_engine if isinstance(objects_or_engine, PolicyEngine)
              else engine_for(objects_or_engine))
    return allowed(engine, src, dst, Protocol(protocol), number)
