"""The cluster objects Membrane reads, as immutable values.

Only the fields NetworkPolicy enforcement needs are kept. Every object is already
validated and defaulted when it exists: `agent.k8s.loader` and `agent.k8s.validation`
turn documents into these, or raise `core.errors.InvalidObject` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Union

from core.protocols import PROTOCOL_NUMBERS

# Namespaces carry this label with their own name; identities need it too, so it is defined
# beside them and re-exported here for the loader and its readers.
from identity.security import NAMESPACE_NAME_LABEL as NAMESPACE_NAME_LABEL


class Protocol(str, Enum):
    """A port protocol as Kubernetes writes it (core.protocols.PORT_PROTOCOLS)."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"

    @property
    def number(self) -> int:
        """IANA protocol number, as the datapath sees it."""
        return PROTOCOL_NUMBERS[self.value]


class Operator(str, Enum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions entry."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator is Operator.EXISTS:
            return present
        if self.operator is Operator.DOES_NOT_EXIST:
            return not present
        if self.operator is Operator.IN:
            return present and labels[self.key] in self.values
        # NotIn matches pods without the key, as in Kubernetes.
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector. The empty selector matches everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def of(cls, match_labels: Mapping[str, str] | None = None,
           match_expressions: tuple[Requirement, ...] = ()) -> "LabelSelector":
        return cls(tuple(sorted((match_labels or {}).items())), tuple(match_expressions))

    @property
    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for r in self.match_expressions:
            if r.operator in (Operator.IN, Operator.NOT_IN):
                op = "in" if r.operator is Operator.IN else "notin"
                parts.append(f"{r.key} {op} ({','.join(r.values)})")
            else:
                parts.append(r.key if r.operator is Operator.EXISTS else f"!{r.key}")
        return ",".join(parts) if parts else "<all>"


@dataclass(frozen=True)
class Namespace:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)  # includes NAMESPACE_NAME_LABEL


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None                  # status.podIP
    node_name: str | None = None           # spec.nodeName
    service_account: str = "default"       # spec.serviceAccountName
    ports: tuple[ContainerPort, ...] = ()  # every container's ports
    host_network: bool = False             # hostNetwork pods are not endpoints
    uid: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def named_port(self, name: str, protocol: Protocol) -> int | None:
        """The port a named port resolves to on this pod, for that protocol."""
        for p in self.ports:
            if p.name == name and p.protocol is protocol:
                return p.port
        return None


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: Protocol = Protocol.TCP
    name: str | None = None


@dataclass(frozen=True)
class Service:
    """Only used by the lab's DNS: a name that resolves to the pods it selects."""

    namespace: str
    name: str
    selector: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[ServicePort, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class IPBlock:
    cidr: str                        # normalised network, e.g. "10.0.0.0/24"
    except_: tuple[str, ...] = ()    # normalised networks inside cidr


@dataclass(frozen=True)
class PolicyPeer:
    """One NetworkPolicyPeer: exactly one of ip_block, or one or both selectors.

    pod_selector alone: pods in the policy's namespace. namespace_selector alone: all pods
    in matching namespaces. Both: pods matching pod_selector in matching namespaces (AND).
    """

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """One NetworkPolicyPort. port None means every port of the protocol."""

    protocol: Protocol = Protocol.TCP
    port: int | str | None = None  # a number, or a named port resolved on the destination
    end_port: int | None = None    # only with a numeric port: the range port..end_port


@dataclass(frozen=True)
class PolicyRule:
    """An ingress or egress rule. Empty peers: every peer. Empty ports: every port and protocol."""

    peers: tuple[PolicyPeer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()


class PolicyType(str, Enum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


@dataclass(frozen=True)
class NetworkPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: frozenset[PolicyType]   # already defaulted as the API server does
    ingress: tuple[PolicyRule, ...] = ()
    egress: tuple[PolicyRule, ...] = ()
    resource_version: str = ""
    # Non-empty: this is the fail-closed stand-in for a document that could not be
    # accepted, and says why. It selects what that document covered, in its directions,
    # and allows nothing (agent.k8s.validation.networkpolicy.fail_closed_stand_in).
    fail_closed: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Deployment:
    """A Deployment (or ReplicaSet/StatefulSet/DaemonSet/Job) the loader expands into pods."""

    namespace: str
    name: str
    kind: str
    replicas: int
    template: Pod  # namespace/labels/ports/serviceAccount of each replica; name unused


@dataclass(frozen=True)
class Node:
    """A node: its InternalIP maps to the host identity on itself, remote-node elsewhere."""

    name: str
    ip: str | None = None          # status.addresses[type=InternalIP]
    pod_cidr: str | None = None    # spec.podCIDR
    labels: Mapping[str, str] = field(default_factory=dict)


# Every kind a source hands the store (workloads are expanded into Pods first).
ClusterObject = Union[Namespace, Pod, NetworkPolicy, Service, Node]


@dataclass
class ClusterObjects:
    """What a set of manifests declares, with workloads already expanded into pods."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)             # "ns/name" -> Pod
    policies: dict[str, NetworkPolicy] = field(default_factory=dict)  # "ns/name" -> policy
    services: dict[str, Service] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)           # name -> Node
