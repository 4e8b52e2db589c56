"""A synthetic cluster for the control-plane benchmarks (programming, start, memory).

    namespace bench          the local node's endpoints: `client`, `server` (real pods
                             with veths) and `ep-<i>` (dummy interfaces), in deployments
                             of five (label app=svc-<i // 5>): replicas share an identity
    namespaces remote-<k>    the rest of the cluster's pods on other nodes, deployments
                             of ten (app=rsvc-<j // 10>)
    policies                 one per local deployment: ingress from the next deployment
                             on TCP 8080 and from one remote deployment on TCP 9090;
                             `server-base` isolates the server (ingress from svc-0 only);
                             `allow-probe` (the one the benchmark flips) lets role=client
                             reach the server on UDP 5204.

The local endpoints' objects are real Kubernetes objects run through the real engine,
identity allocator and CIDR allocator, the way the agent does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from agent.k8s.objects import (NAMESPACE_NAME_LABEL, ClusterObjects, LabelSelector,
                               Namespace, NetworkPolicy, Node, Pod, PolicyPeer, PolicyPort,
                               PolicyRule, PolicyType, Protocol)

NAMESPACE = "bench"
NODE = "bench-node"
NODE_IP = "10.250.0.1"
REMOTE_NODE_IP = "10.250.0.2"
LOCAL_NET = ipaddress.IPv4Network("10.220.0.0/16")
REMOTE_NET = ipaddress.IPv4Network("10.96.0.0/12")   # room for a million remote pods
PROBE_PORT = 5204
REMOTE_NAMESPACES = 10


def local_ip(i: int) -> str:
    return str(LOCAL_NET.network_address + 10 + i)


def _ns(name: str) -> Namespace:
    return Namespace(name, {NAMESPACE_NAME_LABEL: name})


def _ingress(name: str, subject: dict[str, str], peers: list[PolicyPeer],
             ports: list[PolicyPort]) -> NetworkPolicy:
    return NetworkPolicy(NAMESPACE, name, LabelSelector.of(subject),
                         frozenset({PolicyType.INGRESS}),
                         ingress=(PolicyRule(tuple(peers), tuple(ports)),))


def allow_probe() -> NetworkPolicy:
    return _ingress("allow-probe", {"role": "server"},
                    [PolicyPeer(pod_selector=LabelSelector.of({"role": "client"}))],
                    [PolicyPort(Protocol.UDP, PROBE_PORT)])


def build(endpoints: int, cluster_pods: int, client_ip: str = "", server_ip: str = ""
          ) -> ClusterObjects:
    """`endpoints` local pods (client and server included) and `cluster_pods` in total."""
    objs = ClusterObjects()
    objs.nodes = {NODE: Node(NODE, NODE_IP), "remote": Node("remote", REMOTE_NODE_IP)}
    objs.namespaces = {NAMESPACE: _ns(NAMESPACE)}
    for k in range(REMOTE_NAMESPACES):
        objs.namespaces[f"remote-{k}"] = _ns(f"remote-{k}")
    pods: dict[str, Pod] = {}
    pods[f"{NAMESPACE}/client"] = Pod(NAMESPACE, "client", {"role": "client", "app": "client"},
                                      client_ip or local_ip(0), NODE)
    pods[f"{NAMESPACE}/server"] = Pod(NAMESPACE, "server", {"role": "server", "app": "server"},
                                      server_ip or local_ip(1), NODE)
    for i in range(endpoints - 2):
        pods[f"{NAMESPACE}/ep-{i}"] = Pod(NAMESPACE, f"ep-{i}", {"app": f"svc-{i // 5}"},
                                          local_ip(2 + i), NODE)
    for j in range(max(0, cluster_pods - endpoints)):
        ns = f"remote-{(j // 10) % REMOTE_NAMESPACES}"
        pods[f"{ns}/r-{j}"] = Pod(ns, f"r-{j}", {"app": f"rsvc-{j // 10}"},
                                  str(REMOTE_NET.network_address + 10 + j), "remote")
    objs.pods = pods
    deployments = max(1, (endpoints - 2 + 4) // 5)
    remote_deployments = max(1, (cluster_pods - endpoints) // 10)
    pols: dict[str, NetworkPolicy] = {}
    for k in range(deployments):
        remote = PolicyPeer(
            pod_selector=LabelSelector.of({"app": f"rsvc-{k % remote_deployments}"}),
            namespace_selector=LabelSelector.of(
                {NAMESPACE_NAME_LABEL: f"remote-{k % REMOTE_NAMESPACES}"}))
        p = _ingress(f"allow-svc-{k}", {"app": f"svc-{k}"},
                     [PolicyPeer(pod_selector=LabelSelector.of(
                         {"app": f"svc-{(k + 1) % deployments}"})), remote],
                     [PolicyPort(Protocol.TCP, 8080), PolicyPort(Protocol.TCP, 9090)])
        pols[p.key] = p
    base = _ingress("server-base", {"role": "server"},
                    [PolicyPeer(pod_selector=LabelSelector.of({"app": "svc-0"}))],
                    [PolicyPort(Protocol.TCP, 80)])
    pols[base.key] = base
    probe = allow_probe()
    pols[probe.key] = probe
    objs.policies = pols
    return objs


def with_policy(objs: ClusterObjects, policy: NetworkPolicy | None, name: str
                ) -> ClusterObjects:
    """A copy with policy `name` set (or removed when policy is None): a store snapshot."""
    pols = dict(objs.policies)
    if policy is None:
        pols.pop(f"{NAMESPACE}/{name}", None)
    else:
        pols[policy.key] = policy
    return replace(objs, policies=pols)


def with_client_role(objs: ClusterObjects, role: str) -> ClusterObjects:
    """A copy where the client pod carries role=<role> (a label change: new identity)."""
    key = f"{NAMESPACE}/client"
    pods = dict(objs.pods)
    pod = pods[key]
    pods[key] = replace(pod, labels={**pod.labels, "role": role})
    return replace(objs, pods=pods)
