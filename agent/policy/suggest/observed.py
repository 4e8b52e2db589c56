"""Observed flows -> the connections they show: who opened what to whom, deduplicated.

A connection is one (source, destination, protocol, port) an application tried: the
first packet of a flow the datapath decided, whether it was forwarded or dropped by
policy. Replies, drops for other reasons (a spoofed source, a full map) and flows
without a destination port (other than ICMP echo requests, which are kept so that
they can be named as what NetworkPolicy cannot express) are not connections. Both
nodes of a cross-node connection report it (egress at the source's, ingress at the
destination's): the two are one connection here.

A side of a connection is a `Peer`: a pod (namespace, name, its own labels read back
from its identity labels, its workload) or an address outside every pod (the world, a
node). Labels are read from the identity, so they are exactly what policies select on:
replica-varying labels (pod-template-hash, ...) are not there, and neither are the keys
the agent writes itself (namespace, its labels, service account, cluster), which come
back as the namespace's labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.protocols import IPProtocol
from identity.labels import SOURCE_K8S, Label
from identity.reserved import ReservedIdentity
from identity.security import (NAMESPACE_LABELS_PREFIX, NAMESPACE_NAME_LABEL,
                               SERVICE_ACCOUNT, SOURCE_POD_OWN, is_reserved_key)
from observe.flow import MSG_DROP, l4_ports
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.reasons import DropReason

ICMP_ECHO_REQUEST = 8
NODE_IDENTITIES = frozenset({int(ReservedIdentity.HOST), int(ReservedIdentity.REMOTE_NODE)})


@dataclass(frozen=True)
class Peer:
    """One side of a connection: a pod (namespace and pod set) or an address."""

    ip: str
    namespace: str = ""
    pod: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    namespace_labels: Mapping[str, str] = field(default_factory=dict, compare=False,
                                                hash=False)
    service_account: str = field(default="default", compare=False, hash=False)
    workload: str = field(default="", compare=False, hash=False)   # its controller's name
    identity: int = field(default=0, compare=False, hash=False)

    @property
    def is_pod(self) -> bool:
        return bool(self.namespace and self.pod)

    @property
    def is_node(self) -> bool:
        return self.identity in NODE_IDENTITIES

    @property
    def key(self) -> str:
        """ns/pod for a pod, the address otherwise."""
        return f"{self.namespace}/{self.pod}" if self.is_pod else self.ip

    @property
    def group(self) -> str:
        """The workload a policy is written for: its controller, else the bare pod."""
        return self.workload or self.pod


@dataclass(frozen=True)
class Connection:
    """One distinct connection; equal when source, destination, protocol and port are."""

    src: Peer
    dst: Peer
    protocol: str            # TCP | UDP | SCTP | ICMP
    port: int                # 0 for ICMP
    dropped: bool = field(default=False, compare=False)   # seen dropped by policy

    @property
    def key(self) -> tuple[str, str, str, int]:
        return self.src.key, self.dst.key, self.protocol, self.port

    @property
    def text(self) -> str:
        where = f"{self.protocol}/{self.port}" if self.port else self.protocol
        return f"{self.src.key} -> {self.dst.key} {where}"


@dataclass(frozen=True)
class IdentityLabels:
    """Identity labels read back: the pod's own, its namespace's, its service account."""

    pod: dict[str, str]
    namespace: dict[str, str]
    service_account: str = "default"


def read_identity_labels(texts: Iterable[str]) -> IdentityLabels:
    """`k8s:app=x`, `k8s:io.cilium.k8s.namespace.labels.team=a`, ... (flows' and
    `endpoint list`'s labels) back into what the pod and its namespace are labelled."""
    labels: dict[str, str] = {}
    namespace_labels: dict[str, str] = {}
    service_account = "default"
    for text in texts:
        try:
            label = Label.parse(text)
        except ValueError:
            continue
        if label.source == SOURCE_POD_OWN:
            labels[label.key] = label.value
        elif label.source != SOURCE_K8S:
            continue
        elif label.key.startswith(NAMESPACE_LABELS_PREFIX):
            namespace_labels[label.key[len(NAMESPACE_LABELS_PREFIX):]] = label.value
        elif label.key == SERVICE_ACCOUNT:
            service_account = label.value
        elif not is_reserved_key(label.key):
            labels[label.key] = label.value
    return IdentityLabels(labels, namespace_labels, service_account)


def peer_of(endpoint: fpb.Endpoint, ip: str) -> Peer:
    read = read_identity_labels(endpoint.labels)
    pod = endpoint.pod_name if endpoint.namespace else ""
    namespace_labels = dict(read.namespace)
    if pod:
        namespace_labels.setdefault(NAMESPACE_NAME_LABEL, endpoint.namespace)
    workload = endpoint.workloads[0].name if endpoint.workloads else ""
    return Peer(ip=ip, namespace=endpoint.namespace if pod else "", pod=pod, labels=read.pod,
                namespace_labels=namespace_labels if pod else {},
                service_account=read.service_account, workload=workload,
                identity=endpoint.identity)


def _protocol_and_port(flow: fpb.Flow) -> tuple[str, int] | None:
    ports = l4_ports(flow)
    if ports is not None:
        kind = flow.l4.WhichOneof("protocol")
        return str(kind), ports[1]
    if flow.l4.WhichOneof("protocol") == "ICMPv4" and flow.l4.ICMPv4.type == ICMP_ECHO_REQUEST:
        return IPProtocol.ICMP.name, 0
    return None


def is_connection(flow: fpb.Flow) -> bool:
    """A forward packet the datapath forwarded, or dropped by policy."""
    if flow.is_reply.value:
        return False
    if flow.verdict == fpb.FORWARDED:
        return True
    if flow.verdict != fpb.DROPPED:
        return False
    reason = flow.drop_reason_desc or (flow.event_type.sub_type
                                       if flow.event_type.type == MSG_DROP else 0)
    return int(reason) == int(DropReason.POLICY_DENIED)


def connection_of(flow: fpb.Flow) -> Connection | None:
    if not flow.HasField("IP") or not is_connection(flow):
        return None
    l4 = _protocol_and_port(flow)
    if l4 is None:
        return None
    src = peer_of(flow.source, flow.IP.source)
    dst = peer_of(flow.destination, flow.IP.destination)
    return Connection(src, dst, l4[0], l4[1], dropped=flow.verdict == fpb.DROPPED)


def connections(responses: Iterable[opb.GetFlowsResponse]) -> list[Connection]:
    """Every distinct connection the flows show, sorted; dropped if any of its flows was."""
    seen: dict[Connection, Connection] = {}
    for resp in responses:
        if resp.WhichOneof("response_types") != "flow":
            continue
        conn = connection_of(resp.flow)
        if conn is None:
            continue
        known = seen.get(conn)
        if known is None or (conn.dropped and not known.dropped):
            seen[conn] = conn
    return sorted(seen.values(), key=lambda c: c.key)


def pods_of(conns: Iterable[Connection]) -> dict[str, Peer]:
    """Every pod the connections name, by ns/pod (the last flow's view of it)."""
    return {peer.key: peer for conn in conns for peer in (conn.src, conn.dst) if peer.is_pod}
