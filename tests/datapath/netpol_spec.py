"""The NetworkPolicy spec, evaluated directly on pods: the reference for the engine.

No identities, no selector cache, no map state: each verdict is read off the objects
the way the Kubernetes documentation states the rules, so a design that derives
verdicts from identities (as the engine does) is checked against the pods' own labels.

  isolation   a pod is isolated for ingress (egress) when a policy of its namespace
              selects it (spec.podSelector on the pod's labels) and lists that type
  allowed     not isolated, or some such policy has a rule of that direction whose
              peers (none: every peer) include the other pod and whose ports (none:
              every port) include the port
  peers       podSelector alone: pods of the policy's namespace with matching labels;
              namespaceSelector (+ podSelector): pods of matching namespaces (with
              matching labels); ipBlock: the pod's IP of the connection's family
              (`family`, 4 or 6) inside cidr and no except (so a block of the other
              family holds nothing)
  ports       protocol (TCP by default) and port, endPort inclusive; a named port is
              the destination pod's container port of that name and protocol
  a pod       always reaches itself; a connection needs both the source's egress and
              the destination's ingress

Pods' labels are read whole: a per-replica key or a key the agent reserves for its own
identity labels is a label like any other here.

`not_enforced` (pod key -> policy keys) names policies too large to enforce for a pod
(agent/policy/limits.py): they still isolate it and allow it nothing, the agent's
fail-closed answer, which the reference then gives too.
"""

from __future__ import annotations

import ipaddress

from typing import Collection, Mapping

from agent.k8s.objects import (NAMESPACE_NAME_LABEL, ClusterObjects, IPBlock, NetworkPolicy,
                               Pod, PolicyPeer, PolicyPort, PolicyType, Protocol)

_TYPE = {"ingress": PolicyType.INGRESS, "egress": PolicyType.EGRESS}


def spec_allows(objects: ClusterObjects, src: str, dst: str, protocol: Protocol,
                port: int, not_enforced: Mapping[str, Collection[str]] | None = None,
                family: int = 4) -> bool:
    if src == dst:
        return True
    source, destination = objects.pods[src], objects.pods[dst]
    skip = not_enforced or {}
    return (_side(objects, source, "egress", destination, destination, protocol, port,
                  skip.get(src, ()), family)
            and _side(objects, destination, "ingress", source, destination, protocol, port,
                      skip.get(dst, ()), family))


def _side(objects: ClusterObjects, subject: Pod, direction: str, other: Pod,
          destination: Pod, protocol: Protocol, port: int, skip: Collection[str],
          family: int) -> bool:
    selecting = [p for p in objects.policies.values()
                 if p.namespace == subject.namespace and _TYPE[direction] in p.policy_types
                 and p.pod_selector.matches(subject.labels)]
    if not selecting:
        return True
    for policy in selecting:
        if policy.key in skip:
            continue   # isolates, allows nothing
        for rule in policy.ingress if direction == "ingress" else policy.egress:
            if rule.peers and not any(_peer(objects, policy, q, other, family)
                                      for q in rule.peers):
                continue
            if rule.ports and not any(_port(q, destination, protocol, port)
                                      for q in rule.ports):
                continue
            return True
    return False


def _peer(objects: ClusterObjects, policy: NetworkPolicy, peer: PolicyPeer, pod: Pod,
          family: int) -> bool:
    if peer.ip_block is not None:
        return _in_block(peer.ip_block, pod.ip if family == 4 else pod.ipv6)
    if peer.namespace_selector is None:
        in_namespace = pod.namespace == policy.namespace
    else:
        namespace = objects.namespaces.get(pod.namespace)
        labels = dict(namespace.labels) if namespace else {}
        labels.setdefault(NAMESPACE_NAME_LABEL, pod.namespace)
        in_namespace = peer.namespace_selector.matches(labels)
    return in_namespace and (peer.pod_selector is None or peer.pod_selector.matches(pod.labels))


def _in_block(block: IPBlock, ip: str | None) -> bool:
    if not ip:
        return False
    address = ipaddress.ip_address(ip)

    def inside(prefix: str) -> bool:
        net = ipaddress.ip_network(prefix, strict=False)
        return net.version == address.version and address in net

    return inside(block.cidr) and not any(inside(e) for e in block.except_)


def _port(port: PolicyPort, destination: Pod, protocol: Protocol, number: int) -> bool:
    if port.protocol is not protocol:
        return False
    if port.port is None:
        return True
    if isinstance(port.port, str):
        return destination.named_port(port.port, protocol) == number
    return port.port <= number <= (port.end_port if port.end_port is not None else port.port)
