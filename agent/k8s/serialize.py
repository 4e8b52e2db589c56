"""Objects -> Kubernetes JSON documents, the inverse of `agent.k8s.loader.parse_document`.

For every object x: parse_document(to_document(x)) == [x]. The lab's store keeps objects
in this form, and `policy get` prints it. Defaults are written out explicitly (protocol,
policyTypes), as the API server returns them.
"""

from __future__ import annotations

from typing import Any, Mapping

from agent.k8s.clusterpolicy import AUDIT_ANNOTATION
from agent.k8s.objects import (
    NAMESPACE_NAME_LABEL,
    ClusterObject,
    ContainerPort,
    Deployment,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Requirement,
    Service,
    ServicePort,
    TieredPolicy,
)
from agent.k8s.tierdocs import tier_policy_document
from agent.k8s.workloads import API_VERSIONS as WORKLOAD_API_VERSIONS

Document = dict[str, Any]
Serializable = ClusterObject | Deployment

# The container every serialised pod gets: Membrane keeps a pod's ports, not its containers.
CONTAINER_NAME = "main"


def to_document(obj: Serializable) -> Document:
    """A Kubernetes document for obj that parse_document accepts."""
    if isinstance(obj, NetworkPolicy):
        return network_policy_document(obj)
    if isinstance(obj, Namespace):
        return namespace_document(obj)
    if isinstance(obj, Pod):
        return pod_document(obj)
    if isinstance(obj, Service):
        return service_document(obj)
    if isinstance(obj, Node):
        return node_document(obj)
    if isinstance(obj, Deployment):
        return workload_document(obj)
    if isinstance(obj, TieredPolicy):
        return tier_policy_document(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def metadata(name: str, namespace: str | None = None, labels: Mapping[str, str] | None = None,
             **extra: str) -> Document:
    meta: Document = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(sorted(labels.items()))
    meta.update({key: value for key, value in extra.items() if value})
    return meta


# --- NetworkPolicy -----------------------------------------------------------------------------

def network_policy_document(policy: NetworkPolicy) -> Document:
    spec: Document = {
        "podSelector": selector_document(policy.pod_selector),
        # Fixed order, Ingress first, so that output is stable.
        "policyTypes": [t.value for t in PolicyType if t in policy.policy_types],
    }
    if policy.ingress:
        spec["ingress"] = [rule_document(rule, "from") for rule in policy.ingress]
    if policy.egress:
        spec["egress"] = [rule_document(rule, "to") for rule in policy.egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(policy.name, policy.namespace,
                             resourceVersion=policy.resource_version),
        "spec": spec,
    }


def selector_document(selector: LabelSelector) -> Document:
    document: Document = {}
    if selector.match_labels:
        document["matchLabels"] = dict(selector.match_labels)
    if selector.match_expressions:
        document["matchExpressions"] = [requirement_document(r)
                                        for r in selector.match_expressions]
    return document


def requirement_document(requirement: Requirement) -> Document:
    document: Document = {"key": requirement.key, "operator": requirement.operator.value}
    if requirement.values:
        document["values"] = list(requirement.values)
    return document


def rule_document(rule: PolicyRule, peers_key: str) -> Document:
    document: Document = {}
    if rule.peers:
        document[peers_key] = [peer_document(peer) for peer in rule.peers]
    if rule.ports:
        document["ports"] = [policy_port_document(port) for port in rule.ports]
    return document


def peer_document(peer: PolicyPeer) -> Document:
    if peer.ip_block is not None:
        return {"ipBlock": ip_block_document(peer.ip_block)}
    document: Document = {}
    if peer.pod_selector is not None:
        document["podSelector"] = selector_document(peer.pod_selector)
    if peer.namespace_selector is not None:
        document["namespaceSelector"] = selector_document(peer.namespace_selector)
    return document


def ip_block_document(block: IPBlock) -> Document:
    document: Document = {"cidr": block.cidr}
    if block.except_:
        document["except"] = list(block.except_)
    return document


def policy_port_document(port: PolicyPort) -> Document:
    document: Document = {"protocol": port.protocol.value}
    if port.port is not None:
        document["port"] = port.port
    if port.end_port is not None:
        document["endPort"] = port.end_port
    return document


# --- the other kinds ---------------------------------------------------------------------------

def namespace_document(namespace: Namespace) -> Document:
    labels = {NAMESPACE_NAME_LABEL: namespace.name, **namespace.labels}
    meta = metadata(namespace.name, labels=labels)
    if namespace.audit:
        meta["annotations"] = {AUDIT_ANNOTATION: "true"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def pod_spec_document(pod: Pod) -> Document:
    spec: Document = {"containers": containers_document(pod.ports),
                      "serviceAccountName": pod.service_account}
    if pod.node_name:
        spec["nodeName"] = pod.node_name
    if pod.host_network:
        spec["hostNetwork"] = True
    return spec


def containers_document(ports: tuple[ContainerPort, ...]) -> list[Document]:
    """The ports in order, in as few containers as keep each port name unique within its
    container (the API server's rule): one container unless two ports share a name."""
    containers: list[Document] = [{"name": CONTAINER_NAME}]
    names: set[str] = set()
    for port in ports:
        if port.name is not None and port.name in names:
            containers.append({"name": f"{CONTAINER_NAME}-{len(containers) + 1}"})
            names = set()
        if port.name is not None:
            names.add(port.name)
        containers[-1].setdefault("ports", []).append(container_port_document(port))
    return containers


def container_port_document(port: ContainerPort) -> Document:
    document: Document = {"containerPort": port.port, "protocol": port.protocol.value}
    if port.name:
        document["name"] = port.name
    return document


def pod_document(pod: Pod) -> Document:
    document: Document = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(pod.name, pod.namespace, pod.labels, uid=pod.uid),
        "spec": pod_spec_document(pod),
    }
    if pod.addresses:
        # podIPs lists one address per family, podIPs[0] being podIP (validatePodIPs).
        document["status"] = {"podIP": pod.addresses[0],
                              "podIPs": [{"ip": a} for a in pod.addresses]}
    return document


def service_document(service: Service) -> Document:
    spec: Document = {}
    if service.selector:
        spec["selector"] = dict(sorted(service.selector.items()))
    if service.ports:
        spec["ports"] = [service_port_document(p) for p in service.ports]
    else:
        spec["clusterIP"] = "None"   # only a headless Service may have no ports
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(service.name, service.namespace), "spec": spec}


def service_port_document(port: ServicePort) -> Document:
    document: Document = {"port": port.port, "targetPort": port.target_port,
                          "protocol": port.protocol.value}
    if port.name:
        document["name"] = port.name
    return document


def node_document(node: Node) -> Document:
    document: Document = {"apiVersion": "v1", "kind": "Node",
                          "metadata": metadata(node.name, labels=node.labels)}
    if node.pod_cidr:
        document["spec"] = {"podCIDR": node.pod_cidr}
        if node.pod_cidrs:
            document["spec"]["podCIDRs"] = list(node.pod_cidrs)
    if node.addresses:
        document["status"] = {"addresses": [{"type": "InternalIP", "address": a}
                                            for a in node.addresses]}
    return document


def workload_document(workload: Deployment) -> Document:
    template = workload.template
    spec: Document = {
        "template": {"metadata": metadata_labels_only(template.labels),
                     "spec": pod_spec_document(template)},
    }
    if workload.kind == "Job":
        spec["parallelism"] = workload.replicas
    elif workload.kind != "DaemonSet":
        spec["replicas"] = workload.replicas
    if workload.kind == "ReplicationController":
        spec["selector"] = dict(sorted(template.labels.items()))
    elif workload.kind != "Job":
        spec["selector"] = {"matchLabels": dict(sorted(template.labels.items()))}
    return {"apiVersion": WORKLOAD_API_VERSIONS[workload.kind], "kind": workload.kind,
            "metadata": metadata(workload.name, workload.namespace), "spec": spec}


def metadata_labels_only(labels: Mapping[str, str]) -> Document:
    return {"labels": dict(sorted(labels.items()))} if labels else {}
