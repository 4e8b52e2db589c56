"""The documents the lab writes into its store for objects it makes itself: its nodes,
the namespaces every cluster has, its DNS pod, and pods placed by the lab (IP and node
filled in, as the scheduler and the kubelet would)."""

from __future__ import annotations

from dataclasses import replace

from agent.k8s.objects import Pod
from agent.k8s.serialize import to_document
from agent.sources.labdir import Doc
from lab.state import NodeState, PodState

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def namespace_doc(name: str, labels: dict[str, str] | None = None) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {**(labels or {}), NAMESPACE_NAME_LABEL: name}}}


def node_doc(node: NodeState) -> Doc:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": {"kubernetes.io/hostname": node.name}},
            "spec": {"podCIDR": node.pod_cidr,
                     "podCIDRs": [c for c in (node.pod_cidr, node.pod_cidr6) if c]},
            "status": {"addresses": [{"type": "InternalIP", "address": a}
                                     for a in (node.ip, node.ip6) if a]
                       + [{"type": "Hostname", "address": node.name}]}}


def dns_pod_doc(pod: PodState) -> Doc:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod.name, "namespace": pod.namespace,
                         "labels": {"k8s-app": "kube-dns"}},
            "spec": {"nodeName": pod.node, "containers": [{
                "name": "coredns", "image": "membrane-lab/dns",
                "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                          {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}]}]},
            "status": {"podIP": pod.ip, "podIPs": [{"ip": a} for a in (pod.ip, pod.ip6) if a],
                       "phase": "Running"}}


def pod_document(obj: Pod, pod: PodState) -> Doc:
    """The pod as the agent will read it: the loader's object with its addresses (both
    families) and node filled, as the kubelet reports them."""
    return to_document(replace(obj, ip=pod.ip, ipv6=pod.ip6 or None, node_name=pod.node))
