"""AdminNetworkPolicy and BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1,
as last published in network-policy-api v0.1.7), as their CRDs validate them
(config/crd/{standard,experimental}/policy.networking.k8s.io_{admin,baselineadmin}
networkpolicies.yaml at v0.1.7).

AdminNetworkPolicy: spec.priority 0..1000, spec.subject exactly one of namespaces / pods
(pods needs both namespaceSelector and podSelector), at most 100 ingress and 100 egress
rules, action Allow|Deny|Pass, 1..100 peers, optionally 1..100 ports (exactly one of
portNumber {protocol, port}, portRange {protocol, start, end}, namedPort).
BaselineAdminNetworkPolicy: the same without priority and Pass, no domainNames, and the
CEL rule `self.metadata.name == 'default'` (one per cluster).

Channels: the experimental fields (namedPort, egress peers nodes and domainNames) are
accepted, and so is the experimental CEL rule refusing a named port beside a
networks/nodes/domainNames peer (the standard channel has no named ports at all).
`protocol` is a plain string in these CRDs (defaulted to TCP, no enum): a value other
than TCP, UDP or SCTP is accepted, with a warning, and that port matches nothing.
`portRange` has no start < end rule in v0.1.7: an inverted range matches nothing.
"""

from __future__ import annotations

from typing import Any

from agent.k8s.clusterpolicy import (ANP_KIND, BANP_KIND, BANP_PRIORITY, RuleAction, Tier,
                                     TieredPolicy, TierPeer, TierPort, TierRule)
from agent.k8s.objects import Protocol
from agent.k8s.validation.clusternetworkpolicy import pod_selection
from agent.k8s.validation.fields import Field, ValidationWarning, quoted
from agent.k8s.validation.meta import object_ref
from agent.k8s.validation.names import port_name_problem
from agent.k8s.validation.tierfields import (bounded_items, cel_cidr, crd_selector,
                                             domain_name, exactly_one, integer_in, required,
                                             rule_name, string_set, tier_metadata)
from agent.k8s.validation.tierfields import action as rule_action

ANP_SPEC_FIELDS = ("priority", "subject", "ingress", "egress")
BANP_SPEC_FIELDS = ("subject", "ingress", "egress")
SUBJECT_FIELDS = ("namespaces", "pods")
INGRESS_RULE_FIELDS = ("name", "action", "from", "ports")
EGRESS_RULE_FIELDS = ("name", "action", "to", "ports")
INGRESS_PEER_FIELDS = ("namespaces", "pods")
ANP_EGRESS_PEER_FIELDS = ("namespaces", "pods", "nodes", "networks", "domainNames")
BANP_EGRESS_PEER_FIELDS = ("namespaces", "pods", "nodes", "networks")
PORT_FIELDS = ("portNumber", "namedPort", "portRange")
PORT_NUMBER_FIELDS = ("protocol", "port")
PORT_RANGE_FIELDS = ("protocol", "start", "end")
ANP_ACTIONS = {"Allow": RuleAction.ALLOW, "Deny": RuleAction.DENY, "Pass": RuleAction.PASS}
BANP_ACTIONS = {"Allow": RuleAction.ALLOW, "Deny": RuleAction.DENY}
BANP_NAME = "default"
MAX_RULES = 100
MAX_PEERS = 100
MAX_PORTS = 100
MAX_NETWORKS = 25


def admin_network_policy_from_document(doc: dict[str, Any], source: str = "",
                                       warnings: list[ValidationWarning] | None = None
                                       ) -> TieredPolicy:
    return _from_document(doc, ANP_KIND, source, warnings)


def baseline_admin_network_policy_from_document(doc: dict[str, Any], source: str = "",
                                                warnings: list[ValidationWarning] | None = None
                                                ) -> TieredPolicy:
    return _from_document(doc, BANP_KIND, source, warnings)


def _from_document(doc: dict[str, Any], kind: str, source: str,
                   warnings: list[ValidationWarning] | None) -> TieredPolicy:
    baseline = kind == BANP_KIND
    ref = object_ref(doc, kind, namespaced=False, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta, audit = tier_metadata(root)
    if baseline and meta.name != BANP_NAME:
        root.get("metadata").get("name").fail(
            'Only one baseline admin network policy with metadata.name="default" can be '
            "created in the cluster")
    spec = required(root.get("spec"))
    spec.fields(BANP_SPEC_FIELDS if baseline else ANP_SPEC_FIELDS)
    priority = BANP_PRIORITY if baseline else integer_in(spec.get("priority"), 0, 1000)
    subject = pod_selection(*exactly_one(required(spec.get("subject")), SUBJECT_FIELDS),
                            pods_need_namespaces=True)
    actions = BANP_ACTIONS if baseline else ANP_ACTIONS
    egress_peers = BANP_EGRESS_PEER_FIELDS if baseline else ANP_EGRESS_PEER_FIELDS
    ingress = tuple(rule(item, "from", INGRESS_RULE_FIELDS, INGRESS_PEER_FIELDS, actions)
                    for item in bounded_items(spec.get("ingress"), MAX_RULES))
    egress = tuple(rule(item, "to", EGRESS_RULE_FIELDS, egress_peers, actions)
                   for item in bounded_items(spec.get("egress"), MAX_RULES))
    return TieredPolicy(kind=kind, name=meta.name,
                        tier=Tier.BASELINE if baseline else Tier.ADMIN, priority=priority,
                        subject=subject, ingress=ingress, egress=egress, audit=audit,
                        resource_version=meta.resource_version)


def rule(field: Field, peers_key: str, allowed: tuple[str, ...], peer_fields: tuple[str, ...],
         actions: dict[str, RuleAction]) -> TierRule:
    if field.is_absent or not isinstance(field.value, dict):
        field.fail("must be an object with action and " + peers_key)
    field.fields(allowed)
    name = rule_name(field.get("name"))
    act = rule_action(field.get("action"), actions)
    peers = tuple(peer(item, peer_fields)
                  for item in bounded_items(required(field.get(peers_key)), MAX_PEERS, 1))
    ports = tuple(port(item) for item in bounded_items(field.get("ports"), MAX_PORTS, 1))
    if any(p.name is not None for p in ports) and any(
            p.networks or p.nodes is not None or p.domain_names for p in peers):
        field.fail("networks/nodes/domainNames peer cannot be set with namedPorts since "
                   "there are no namedPorts for networks/nodes/domainNames")
    if any(p.domain_names for p in peers) and act is not RuleAction.ALLOW:
        field.get("action").warn("domainNames are meant for Allow rules only")
    return TierRule(name=name, action=act, peers=peers, ports=ports)


def peer(field: Field, allowed: tuple[str, ...]) -> TierPeer:
    key, value = exactly_one(field, allowed)
    if key in ("namespaces", "pods"):
        return TierPeer(pods=pod_selection(key, value, pods_need_namespaces=True))
    if key == "nodes":
        return TierPeer(nodes=crd_selector(value))
    if key == "networks":
        return TierPeer(networks=tuple(cel_cidr(item)
                                       for item in string_set(value, MAX_NETWORKS)))
    value.warn("domainNames peers are not enforced by Membrane yet: this peer matches "
               "nothing")
    return TierPeer(domain_names=tuple(domain_name(item)
                                       for item in string_set(value, MAX_NETWORKS)))


def port(field: Field) -> TierPort:
    key, value = exactly_one(field, PORT_FIELDS)
    if key == "namedPort":
        name = value.string()
        problem = port_name_problem(name)
        if problem:
            value.warn(f"{name!r} can name no container port ({problem}): matches nothing")
        return TierPort(name=name)
    if key == "portNumber":
        value.fields(PORT_NUMBER_FIELDS)
        proto = _protocol(value.get("protocol"))
        number = integer_in(value.get("port"), 1, 65535)
        return TierPort(protocol=proto, start=number, end=number) if proto else TierPort()
    value.fields(PORT_RANGE_FIELDS)
    proto = _protocol(value.get("protocol"))
    start = integer_in(value.get("start"), 1, 65535)
    end = integer_in(value.get("end"), 1, 65535)
    if end < start:
        value.warn(f"start {start} is after end {end}: this range matches no port")
        return TierPort()
    return TierPort(protocol=proto, start=start, end=end) if proto else TierPort()


def _protocol(field: Field) -> Protocol | None:
    """v1.Protocol, defaulted to TCP; any other string is stored by the API server."""
    if field.is_absent:
        return Protocol.TCP
    text = field.string()
    for protocol in Protocol:
        if protocol.value == text:
            return protocol
    field.warn(f"protocol {quoted(text)} is not TCP, UDP or SCTP: this port matches nothing")
    return None
