"""NetworkPolicy semantics read straight off the API reference: the oracle that the policy
engine (`policy matrix`) and real packets (`lab probe`) are checked against.

Nothing here shares code with agent/policy: no identities, no selector cache, no prefix
tables or LPM, no caching. A connection of one IP family from pod S to pod D on
(protocol, port) is allowed when

  - S's egress allows it: no policy of S's namespace selecting S declares Egress, or one
    of those policies has an egress rule whose peers hold D and whose ports hold
    (protocol, port) on D;
  - and D's ingress allows it, the same way with S as the peer.

A rule's peers hold a pod when the list is empty, or one peer does: an ipBlock when the
pod's address *of the connection's family* is inside `cidr` and inside none of its
`except`s (so an ipBlock of the other family holds nothing); selectors when the pod's
namespace matches `namespaceSelector` (absent: the policy's own namespace) and the pod
matches `podSelector` (absent: every pod). A rule's ports hold (protocol, port) when the
list is empty, or one entry has the protocol and no port, or that port (up to `endPort`),
or a name the destination pod declares for that number and protocol. A pod always
reaches itself.
"""

from __future__ import annotations

import ipaddress

from agent.k8s.objects import (ClusterObjects, NetworkPolicy, Pod, PolicyPeer, PolicyPort,
                               PolicyType)


def allowed(objects: ClusterObjects, src: str, dst: str, protocol: str, port: int,
            family: int) -> bool:
    if src == dst:
        return True
    s, d = objects.pods[src], objects.pods[dst]
    return (_side_allows(objects, s, d, PolicyType.EGRESS, protocol, port, family)
            and _side_allows(objects, d, s, PolicyType.INGRESS, protocol, port, family))


def _side_allows(objects: ClusterObjects, subject: Pod, peer: Pod, kind: PolicyType,
                 protocol: str, port: int, family: int) -> bool:
    policies = [p for p in objects.policies.values()
                if p.namespace == subject.namespace and kind in p.policy_types
                and p.pod_selector.matches(subject.labels)]
    if not policies:
        return True    # not isolated in this direction
    destination = subject if kind is PolicyType.INGRESS else peer
    for policy in policies:
        for rule in policy.ingress if kind is PolicyType.INGRESS else policy.egress:
            if (_peers_hold(objects, policy, rule.peers, peer, family)
                    and _ports_hold(rule.ports, protocol, port, destination)):
                return True
    return False


def _peers_hold(objects: ClusterObjects, policy: NetworkPolicy,
                peers: tuple[PolicyPeer, ...], pod: Pod, family: int) -> bool:
    return not peers or any(_peer_holds(objects, policy, p, pod, family) for p in peers)


def _peer_holds(objects: ClusterObjects, policy: NetworkPolicy, peer: PolicyPeer, pod: Pod,
                family: int) -> bool:
    if peer.ip_block is not None:
        address = pod.ip if family == 4 else pod.ipv6
        if not address:
            return False
        ip = ipaddress.ip_address(address)
        block = peer.ip_block
        return (_inside(ip, block.cidr)
                and not any(_inside(ip, excepted) for excepted in block.except_))
    if peer.namespace_selector is None:
        namespace_ok = pod.namespace == policy.namespace
    else:
        namespace = objects.namespaces.get(pod.namespace)
        namespace_ok = namespace is not None and peer.namespace_selector.matches(
            namespace.labels)
    pod_ok = peer.pod_selector is None or peer.pod_selector.matches(pod.labels)
    return namespace_ok and pod_ok


def _inside(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: str) -> bool:
    net = ipaddress.ip_network(prefix, strict=False)
    return net.version == ip.version and ip in net


def _ports_hold(ports: tuple[PolicyPort, ...], protocol: str, port: int,
                destination: Pod) -> bool:
    return not ports or any(_port_holds(p, protocol, port, destination) for p in ports)


def _port_holds(entry: PolicyPort, protocol: str, port: int, destination: Pod) -> bool:
    if entry.protocol.value != protocol:
        return False
    if entry.port is None:
        return True
    if isinstance(entry.port, int):
        last = entry.end_port if entry.end_port is not None else entry.port
        return entry.port <= port <= last
    return any(cp.name == entry.port and cp.protocol == entry.protocol and cp.port == port
               for cp in destination.ports)
