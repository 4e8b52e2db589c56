"""ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2), as its CRD validates it
(config/crd/{standard,experimental}/policy.networking.k8s.io_clusternetworkpolicies.yaml
of kubernetes-sigs/network-policy-api): spec.tier Admin|Baseline, spec.priority 0..1000,
spec.subject exactly one of namespaces / pods, at most 25 ingress and 25 egress rules,
each with action Accept|Deny|Pass, 1..25 peers and optionally 1..25 protocols.

Channels: the experimental channel's egress peers `nodes` and `domainNames` are accepted.
Its CEL rule "networks/nodes/domainNames peer cannot be set with namedPorts" is applied
to nodes and domainNames (no channel accepts those with a named port); with networks the
standard channel accepts it, so it is accepted with a warning (the named port then
matches only pod addresses inside the networks).
"""

from __future__ import annotations

from typing import Any

from agent.k8s.clusterpolicy import (CNP_KIND, RuleAction, Tier, TieredPolicy, TierPeer,
                                     TierPort, TierRule, TierSelector)
from agent.k8s.objects import LabelSelector, Protocol
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import object_ref
from agent.k8s.validation.names import port_name_problem
from agent.k8s.validation.tierfields import (bounded_items, cel_cidr, crd_selector,
                                             domain_name, enum, exactly_one, integer_in,
                                             required, rule_name, string_set, tier_metadata)
from agent.k8s.validation.tierfields import action as rule_action

SPEC_FIELDS = ("tier", "priority", "subject", "ingress", "egress")
SUBJECT_FIELDS = ("namespaces", "pods")
NAMESPACED_POD_FIELDS = ("namespaceSelector", "podSelector")
INGRESS_RULE_FIELDS = ("name", "action", "from", "protocols")
EGRESS_RULE_FIELDS = ("name", "action", "to", "protocols")
INGRESS_PEER_FIELDS = ("namespaces", "pods")
EGRESS_PEER_FIELDS = ("namespaces", "pods", "nodes", "networks", "domainNames")
PROTOCOL_FIELDS = ("tcp", "udp", "sctp", "destinationNamedPort")
PORT_FIELDS = ("number", "range")
RANGE_FIELDS = ("start", "end")
ACTIONS = {"Accept": RuleAction.ALLOW, "Deny": RuleAction.DENY, "Pass": RuleAction.PASS}
MAX_RULES = 25
MAX_PEERS = 25
MAX_PROTOCOLS = 25
MAX_NETWORKS = 25
_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP, "sctp": Protocol.SCTP}


def cluster_network_policy_from_document(doc: dict[str, Any], source: str = "",
                                         warnings: list[ValidationWarning] | None = None
                                         ) -> TieredPolicy:
    ref = object_ref(doc, CNP_KIND, namespaced=False, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta, audit = tier_metadata(root)
    spec = required(root.get("spec"))
    spec.fields(SPEC_FIELDS)
    tier = Tier(enum(spec.get("tier"), tuple(t.value for t in Tier)))
    priority = integer_in(spec.get("priority"), 0, 1000)
    subject = pod_selection(*exactly_one(required(spec.get("subject")), SUBJECT_FIELDS),
                            pods_need_namespaces=False)
    ingress = tuple(rule(item, "from", INGRESS_RULE_FIELDS, INGRESS_PEER_FIELDS)
                    for item in bounded_items(spec.get("ingress"), MAX_RULES))
    egress = tuple(rule(item, "to", EGRESS_RULE_FIELDS, EGRESS_PEER_FIELDS)
                   for item in bounded_items(spec.get("egress"), MAX_RULES))
    return TieredPolicy(kind=CNP_KIND, name=meta.name, tier=tier, priority=priority,
                        subject=subject, ingress=ingress, egress=egress, audit=audit,
                        resource_version=meta.resource_version)


def pod_selection(key: str, value: Field, pods_need_namespaces: bool) -> TierSelector:
    """A subject's (or a peer's) `namespaces` or `pods` field: namespaces S is every pod
    of S; pods {namespaceSelector, podSelector} both (podSelector required;
    namespaceSelector too in v1alpha1, optional and "all namespaces" in v1alpha2)."""
    if key == "namespaces":
        return TierSelector(namespace_selector=crd_selector(value))
    value.fields(NAMESPACED_POD_FIELDS)
    namespaces = value.get("namespaceSelector")
    if pods_need_namespaces:
        required(namespaces)
    return TierSelector(
        namespace_selector=crd_selector(namespaces) if not namespaces.is_absent
        else LabelSelector(),
        pod_selector=crd_selector(required(value.get("podSelector"))))


def rule(field: Field, peers_key: str, allowed: tuple[str, ...],
         peer_fields: tuple[str, ...]) -> TierRule:
    if field.is_absent or not isinstance(field.value, dict):
        field.fail("must be an object with action and " + peers_key)
    field.fields(allowed)
    name = rule_name(field.get("name"))
    act = rule_action(field.get("action"), ACTIONS)
    peers = tuple(peer(item, peer_fields)
                  for item in bounded_items(required(field.get(peers_key)), MAX_PEERS, 1))
    protocols = field.get("protocols")
    ports = tuple(protocol(item) for item in bounded_items(protocols, MAX_PROTOCOLS, 1))
    if any(p.name is not None for p in ports):
        named = next(i for i, p in enumerate(ports) if p.name is not None)
        if any(p.nodes is not None or p.domain_names for p in peers):
            field.fail("networks/nodes/domainNames peer cannot be set with namedPorts since "
                       "there are no namedPorts for networks/nodes/domainNames")
        if any(p.networks for p in peers):
            protocols.items()[named].warn(
                "a named port with a networks peer matches only pod addresses inside the "
                "networks (the experimental channel's CRD refuses this rule)")
    if any(p.domain_names for p in peers) and act is not RuleAction.ALLOW:
        field.get("action").warn("domainNames are meant for Accept rules only")
    return TierRule(name=name, action=act, peers=peers, ports=ports)


def peer(field: Field, allowed: tuple[str, ...]) -> TierPeer:
    key, value = exactly_one(field, allowed)
    if key in ("namespaces", "pods"):
        return TierPeer(pods=pod_selection(key, value, pods_need_namespaces=False))
    if key == "nodes":
        return TierPeer(nodes=crd_selector(value))
    if key == "networks":
        return TierPeer(networks=tuple(cel_cidr(item)
                                       for item in string_set(value, MAX_NETWORKS)))
    value.warn("domainNames peers are not enforced by Membrane yet: this peer matches "
               "nothing")
    return TierPeer(domain_names=tuple(domain_name(item)
                                       for item in string_set(value, MAX_NETWORKS)))


def protocol(field: Field) -> TierPort:
    key, value = exactly_one(field, PROTOCOL_FIELDS)
    if key == "destinationNamedPort":
        name = value.string()
        problem = port_name_problem(name)
        if problem:
            value.warn(f"{name!r} can name no container port ({problem}): matches nothing")
        return TierPort(name=name)
    value.fields(("destinationPort",))
    port_field = value.get("destinationPort")
    if port_field.is_absent:
        value.fail("should have at least 1 properties")
    which, port_value = exactly_one(port_field, PORT_FIELDS)
    if which == "number":
        number = integer_in(port_value, 1, 65535)
        return TierPort(protocol=_PROTOCOLS[key], start=number, end=number)
    port_value.fields(RANGE_FIELDS)
    start = integer_in(port_value.get("start"), 1, 65535)
    end = integer_in(port_value.get("end"), 1, 65535)
    if not start < end:
        port_value.fail("Start port must be less than End port")
    return TierPort(protocol=_PROTOCOLS[key], start=start, end=end)
