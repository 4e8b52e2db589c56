"""What the Agent gRPC service needs from the agent: small Protocols and the records they
return. The servicer (`agent.api.server`) sees only these, never the agent's parts or
their locks; the parts implement them (`agent.endpoint_manager.EndpointApi`,
`agent.flowmeta.AgentMetadata`, `agent.regeneration.PolicyQueries`,
`agent.status.StatusReporter`, and the `Datapath` itself for map dumps), and tests hand
the servicer fakes.

Every method may be called from any gRPC worker thread at any time: implementations do
their own locking and return copies, so a reply is never built from a record the
regenerator is changing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol

from agent.api.status import AgentStatus
from agent.datapath.interface import ConntrackEntry, KernelPolicyEntry
from agent.k8s.objects import NetworkPolicy, TieredPolicy
from agent.k8s.rejection import Rejection
from agent.k8s.validation.fields import ValidationWarning
from agent.policy.trace import TraceResult
from core.errors import MembraneError
from identity.allocator import Identity


class InvalidRegistration(MembraneError):
    """A RegisterEndpoint request that can never be an endpoint (a field that is not an
    IPv4 address, an interface name or a Kubernetes name): the API answers
    INVALID_ARGUMENT, and nothing is recorded."""


@dataclass(frozen=True)
class EndpointView:
    """A local endpoint at one moment (agent.endpoints.Endpoint, copied)."""

    id: int
    namespace: str
    pod: str
    ifname: str
    ipv4: str
    ifindex: int
    identity: int
    state: str               # waiting-for-identity | regenerating | ready | not-ready |
                             # disconnecting | unmanaged (a pod without an endpoint; id 0)
    error: str
    ingress_enforced: bool
    egress_enforced: bool
    policy_revision: int
    policy_entries: int
    last_regeneration_ms: float
    audit: bool = False      # policy audit mode: what policy denies passes, as AUDIT
    labels_left_out: tuple[str, ...] = ()   # "k8s:<key>=<value>: why", for endpoint get
    ipv6: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.pod}"


class EndpointService(Protocol):
    def register(self, namespace: str, pod: str, ifname: str, ipv4: str,
                 container_id: str, timeout: float, ipv6: str = "") -> EndpointView:
        """Returns once the endpoint is enforced; raises InvalidRegistration for a request
        that can never be an endpoint, MembraneError when it cannot be enforced (no such
        interface, not ready, or still waiting after timeout). ipv4 and ipv6: the pod's
        addresses, "" for a family it lacks (one of them is needed)."""

    def deregister(self, namespace: str, pod: str) -> None:
        """Idempotent, as CNI DEL must be."""

    def endpoints(self) -> list[EndpointView]:
        """Every local endpoint, by id, then every unmanaged pod of this node."""

    def find(self, endpoint_id: int, pod_key: str) -> EndpointView | None:
        """By id when endpoint_id is not 0, else by "namespace/pod"."""


class IdentityView(Protocol):
    def identities(self) -> list[Identity]:
        """Every label identity the allocator knows, by number."""

    def identity_labels(self, identity: int) -> list[str]:
        """Labels of any identity (reserved, label or CIDR); empty if unknown."""


@dataclass(frozen=True)
class LoadedPolicies:
    revision: int                                  # the source revision they came with
    policies: Mapping[str, NetworkPolicy]          # "namespace/name" -> policy (stand-ins
                                                   # of rejected ones included, marked)
    rejected: tuple[Rejection, ...]                # objects validation refused, why
    selected_endpoints: Mapping[str, tuple[int, ...]]   # policy key -> local endpoint ids
    warnings: tuple[ValidationWarning, ...] = ()   # about accepted objects, any kind
    # "Kind/name" -> ClusterNetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy
    cluster_policies: Mapping[str, TieredPolicy] = field(default_factory=dict)
    notes: tuple[str, ...] = ()     # tier policies sharing a priority: the order used


class PolicyView(Protocol):
    def loaded(self) -> LoadedPolicies:
        """The policies of the snapshot last applied, and the endpoints each selects."""

    def trace(self, src: str, dst: str, port: int, protocol: str, family: int = 4
              ) -> TraceResult:
        """Why src -> dst is allowed or denied over IPv<family>, on the live engine (the
        agent's own identity numbers). Raises MembraneError for an unknown pod, protocol
        or family."""


class MapDumps(Protocol):
    """The kernel maps, decoded (the Datapath protocol has these)."""

    def dump_policy(self, endpoint_id: int) -> list[KernelPolicyEntry]: ...

    def dump_conntrack(self) -> list[ConntrackEntry]: ...

    def dump_ipcache(self) -> tuple[dict[str, int], dict[str, int]]: ...


class StatusProvider(Protocol):
    def status(self) -> AgentStatus: ...

    def applied_revision(self) -> int:
        """The newest source revision written to every endpoint's maps."""

    def wait_for_revision(self, revision: int, timeout: float) -> bool:
        """Blocks until `revision` (or a newer one) is applied; False on timeout."""
