"""Connections -> least-privilege NetworkPolicy documents, one per workload and direction.

For every workload (pods of one controller in one namespace; a bare pod alone) that
opened a connection there is an egress policy, and for every one that accepted a
connection an ingress policy. Each selects its pods by the labels their identities
share (never by pod name: identity labels carry no replica-varying label), and allows
exactly the peers and ports seen:

  a pod peer      podSelector with its workload's labels, and a namespaceSelector on
                  kubernetes.io/metadata.name when it lives in another namespace
  an address      ipBlock of the address (/32, or the --cidr-prefix network around it):
                  the world, and nodes other than the pod's own
  ports           (protocol, port) exactly as seen; peers with the same set of ports
                  share one rule, so a rule allows no pair that was not seen

The node's own traffic into its pods needs no rule (the agent always allows it; a
NetworkPolicy cannot name the node anyway) and is left out. ICMP cannot be written in a
NetworkPolicy: it is left out here, and verification names the connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.protocols import Direction
from identity.reserved import ReservedIdentity
from identity.security import NAMESPACE_NAME_LABEL
from agent.k8s.loader import Document
from agent.policy.suggest.observed import Connection, Peer

PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
CREATED_BY = {"app.kubernetes.io/created-by": "membrane-policy-suggest"}
_NAME_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Options:
    cidr_prefix: int = 32                       # ipBlock width for addresses
    namespaces: frozenset[str] = frozenset()    # write policies only for these (all if empty)


@dataclass(frozen=True, order=True)
class Workload:
    namespace: str
    name: str


@dataclass
class Suggestion:
    documents: list[Document] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # what was left out, and why

    def names(self) -> list[str]:
        return [f"{d['metadata']['namespace']}/{d['metadata']['name']}" for d in self.documents]


def workload_of(peer: Peer) -> Workload:
    return Workload(peer.namespace, peer.group)


def selectors(conns: Iterable[Connection]) -> dict[Workload, dict[str, str]]:
    """Each workload's selector: the identity labels every one of its pods carries."""
    common: dict[Workload, dict[str, str]] = {}
    for conn in conns:
        for peer in (conn.src, conn.dst):
            if not peer.is_pod:
                continue
            w = workload_of(peer)
            if w not in common:
                common[w] = dict(peer.labels)
            else:
                common[w] = {k: v for k, v in common[w].items() if peer.labels.get(k) == v}
    return common


def policy_name(workload: Workload, direction: Direction) -> str:
    base = _NAME_INVALID.sub("-", workload.name.lower()).strip("-")[:240] or "pods"
    return f"{base}-{direction.name.lower()}"


def address_block(peer: Peer, prefix: int) -> str:
    """The peer's address widened to `prefix` (an IPv4 length); an IPv6 address keeps as
    many host bits (/32 -> /128, /24 -> /120), so one option means the same block size
    in both families."""
    address = ipaddress.ip_address(peer.ip)
    length = prefix + 96 if address.version == 6 else prefix
    return str(ipaddress.ip_network(f"{peer.ip}/{length}", strict=False))


def _peer_document(subject: Workload, peer: Peer, labels: Mapping[str, str],
                   options: Options) -> Document:
    if not peer.is_pod:
        return {"ipBlock": {"cidr": address_block(peer, options.cidr_prefix)}}
    out: Document = {"podSelector": _selector(labels)}
    if peer.namespace != subject.namespace:
        out["namespaceSelector"] = {"matchLabels": {NAMESPACE_NAME_LABEL: peer.namespace}}
    return out


def _selector(labels: Mapping[str, str]) -> Document:
    return {"matchLabels": dict(sorted(labels.items()))} if labels else {}


def _port_documents(ports: Iterable[tuple[str, int]]) -> list[Document]:
    return [{"protocol": proto, "port": port} for proto, port in sorted(ports)]


def _freeze(doc: Document) -> str:
    return repr(sorted(_flatten(doc)))


def _flatten(value: object, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [item for k, v in value.items() for item in _flatten(v, f"{path}.{k}")]
    return [f"{path}={value}"]


def suggest(conns: Iterable[Connection], options: Options | None = None) -> Suggestion:
    options = options or Options()
    conns = list(conns)
    labels = selectors(conns)
    # (subject, direction) -> peer document (frozen) -> (peer document, ports)
    rules: dict[tuple[Workload, Direction], dict[str, tuple[Document, set[tuple[str, int]]]]]
    rules = defaultdict(dict)
    out = Suggestion()
    for conn in conns:
        if conn.src.key == conn.dst.key:
            continue   # a pod's traffic to itself never leaves it
        if conn.protocol not in PORT_PROTOCOLS:
            out.notes.append(f"{conn.text}: NetworkPolicy cannot allow {conn.protocol}; "
                             "left out")
            continue
        port = (conn.protocol, conn.port)
        for subject_peer, other, direction in ((conn.src, conn.dst, Direction.EGRESS),
                                               (conn.dst, conn.src, Direction.INGRESS)):
            if not subject_peer.is_pod:
                continue
            subject = workload_of(subject_peer)
            if options.namespaces and subject.namespace not in options.namespaces:
                continue
            if (direction is Direction.INGRESS and other.identity == ReservedIdentity.HOST
                    and not other.is_pod):
                continue   # the node reaches its own pods whatever the policies say
            peer_labels = labels.get(workload_of(other), {}) if other.is_pod else {}
            doc = _peer_document(subject, other, peer_labels, options)
            entry = rules[(subject, direction)].setdefault(_freeze(doc), (doc, set()))
            entry[1].add(port)
    for (subject, direction), peers in sorted(rules.items(),
                                              key=lambda item: (item[0][0], item[0][1])):
        out.documents.append(_policy(subject, direction, labels.get(subject, {}), peers))
        if not labels.get(subject):
            out.notes.append(f"{subject.namespace}/{subject.name}: its pods have no labels, "
                             f"so {policy_name(subject, direction)} selects every pod of "
                             f"namespace {subject.namespace}")
    return out


def _policy(subject: Workload, direction: Direction, labels: Mapping[str, str],
            peers: Mapping[str, tuple[Document, set[tuple[str, int]]]]) -> Document:
    # Peers with the same ports share a rule: the rule allows each peer each port, which
    # is exactly what was seen.
    by_ports: dict[tuple[tuple[str, int], ...], list[Document]] = defaultdict(list)
    for frozen in sorted(peers):
        doc, ports = peers[frozen]
        by_ports[tuple(sorted(ports))].append(doc)
    side = "from" if direction is Direction.INGRESS else "to"
    rules = [{side: docs, "ports": _port_documents(ports)}
             for ports, docs in sorted(by_ports.items())]
    key = "ingress" if direction is Direction.INGRESS else "egress"
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(subject, direction), "namespace": subject.namespace,
                     "labels": dict(CREATED_BY)},
        "spec": {"podSelector": _selector(labels),
                 "policyTypes": [key.capitalize()],
                 key: rules},
    }
