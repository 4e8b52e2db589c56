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
    audit: bool = False   # annotation policy.membrane.io/audit-mode: policy drops pass


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
    ip: str | None = None                  # the IPv4 one of status.podIP / podIPs
    node_name: str | None = None           # spec.nodeName
    service_account: str = "default"       # spec.serviceAccountName
    ports: tuple[ContainerPort, ...] = ()  # every container's ports
    host_network: bool = False             # hostNetwork pods are not endpoints
    uid: str = ""
    ipv6: str | None = None                # the IPv6 one of status.podIP / podIPs

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every address the pod has: IPv4 first, then IPv6 (at most one of each)."""
        return tuple(a for a in (self.ip, self.ipv6) if a)

    def address(self, family: int) -> str | None:
        """The pod's address of one IP family (4 or 6), None when it has none."""
        return self.ip if family == 4 else self.ipv6

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
    """A node: its InternalIPs map to the host identity on itself, remote-node elsewhere."""

    name: str
    ip: str | None = None          # the first IPv4 status.addresses[type=InternalIP]
    pod_cidr: str | None = None    # spec.podCIDR (= podCIDRs[0])
    labels: Mapping[str, str] = field(default_factory=dict)
    ipv6: str | None = None        # the first IPv6 InternalIP (a dual-stack node)
    pod_cidrs: tuple[str, ...] = ()   # spec.podCIDRs as given: one per family on dual-stack

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for a in (self.ip, self.ipv6) if a)


# --- cluster-wide policy tiers (agent.k8s.clusterpolicy describes them) ---------------

API_GROUP = "policy.networking.k8s.io"
CNP_KIND = "ClusterNetworkPolicy"
ANP_KIND = "AdminNetworkPolicy"
BANP_KIND = "BaselineAdminNetworkPolicy"
CNP_API_VERSION = f"{API_GROUP}/v1alpha2"
ANP_API_VERSION = f"{API_GROUP}/v1alpha1"
TIER_KINDS = (CNP_KIND, ANP_KIND, BANP_KIND)

MAX_PRIORITY = 1000
# Where the BANP sorts in the Baseline tier: after every priority a CNP can have.
BANP_PRIORITY = MAX_PRIORITY + 1


class Tier(str, Enum):
    ADMIN = "Admin"
    BASELINE = "Baseline"


class RuleAction(str, Enum):
    """ClusterNetworkPolicy's Accept and AdminNetworkPolicy's Allow are ALLOW."""

    ALLOW = "Allow"
    DENY = "Deny"
    PASS = "Pass"


@dataclass(frozen=True)
class TierSelector:
    """Pods picked by a namespace selector AND a pod selector (a subject, or a peer of
    kind `namespaces` / `pods`: `namespaces: S` is S with every pod)."""

    namespace_selector: LabelSelector = LabelSelector()
    pod_selector: LabelSelector = LabelSelector()

    def __str__(self) -> str:
        return f"pods {self.pod_selector} in namespaces {self.namespace_selector}"


@dataclass(frozen=True)
class TierPeer:
    """One peer: exactly one of the fields (validation keeps it so).

    pods         pods of matching namespaces (both peer kinds namespaces and pods)
    nodes        node addresses (InternalIP) of matching nodes (egress only)
    networks     CIDRs, either family (egress only); cluster traffic matches too
    domain_names FQDNs (egress only): accepted and reported, never enforced
    """

    pods: TierSelector | None = None
    nodes: LabelSelector | None = None
    networks: tuple[str, ...] = ()       # normalised prefixes, "10.0.0.0/8"
    domain_names: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.pods is not None:
            return "pods"
        if self.nodes is not None:
            return "nodes"
        return "networks" if self.networks else "domainNames"

    def __str__(self) -> str:
        if self.pods is not None:
            return str(self.pods)
        if self.nodes is not None:
            return f"nodes {self.nodes}"
        if self.networks:
            return f"networks {', '.join(self.networks)}"
        return f"domainNames {', '.join(self.domain_names)} (not enforced)"


@dataclass(frozen=True)
class TierPort:
    """One port match. A number or range of one protocol, or a named port (the
    destination pod's container port of that name, whatever its protocol). Neither (no
    protocol, no name): a port the API server stored but nothing can match (a v1alpha1
    protocol other than TCP, UDP and SCTP, an inverted range)."""

    protocol: Protocol | None = None     # None only for a named port
    start: int = 0
    end: int = 0                         # inclusive; == start for one port
    name: str | None = None

    def __str__(self) -> str:
        if self.name is not None:
            return f"named port {self.name!r}"
        if self.protocol is None:
            return "a port nothing matches"
        number = f"{self.start}" if self.start == self.end else f"{self.start}-{self.end}"
        return f"{self.protocol.value}/{number}"


@dataclass(frozen=True)
class TierRule:
    """One ingress or egress rule. No ports: every port of every protocol."""

    name: str
    action: RuleAction
    peers: tuple[TierPeer, ...]
    ports: tuple[TierPort, ...] = ()


@dataclass(frozen=True)
class TieredPolicy:
    """A ClusterNetworkPolicy, AdminNetworkPolicy or BaselineAdminNetworkPolicy."""

    kind: str                            # one of TIER_KINDS
    name: str
    tier: Tier
    priority: int                        # 0..1000; BANP_PRIORITY for the BANP
    subject: TierSelector
    ingress: tuple[TierRule, ...] = ()
    egress: tuple[TierRule, ...] = ()
    audit: bool = False                  # AUDIT_ANNOTATION
    resource_version: str = ""

    @property
    def key(self) -> str:
        """"ClusterNetworkPolicy/name": cluster-scoped, and two kinds may share a name."""
        return f"{self.kind}/{self.name}"

    @property
    def order_key(self) -> tuple[int, int, str]:
        """Evaluation order within the tier (see the module docstring)."""
        return self.priority, TIER_KINDS.index(self.kind), self.name

    @property
    def shown_priority(self) -> str:
        return "-" if self.kind == BANP_KIND else str(self.priority)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


# Every kind a source hands the store (workloads are expanded into Pods first).
ClusterObject = Union[Namespace, Pod, NetworkPolicy, Service, Node, TieredPolicy]


@dataclass
class ClusterObjects:
    """What a set of manifests declares, with workloads already expanded into pods."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)             # "ns/name" -> Pod
    policies: dict[str, NetworkPolicy] = field(default_factory=dict)  # "ns/name" -> policy
    services: dict[str, Service] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)           # name -> Node
    # "ClusterNetworkPolicy/name" (AdminNetworkPolicy/..., BaselineAdminNetworkPolicy/...)
    cluster_policies: dict[str, TieredPolicy] = field(default_factory=dict)
