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
                                     TieredPolicy, TierPort)
from agent.k8s.objects import Protocol
from agent.k8s.validation.fields import Field, ValidationWarning, quoted
from agent.k8s.validation.meta import object_ref
from agent.k8s.validation.tierfields import (RuleSchema, exactly_one, integer_in, named_port,
                                             required, rules, subject, tier_metadata)

ANP_SPEC_FIELDS = ("priority", "subject", "ingress", "egress")
BANP_SPEC_FIELDS = ("subject", "ingress", "egress")
PORT_FIELDS = ("portNumber", "namedPort", "portRange")
PORT_NUMBER_FIELDS = ("protocol", "port")
PORT_RANGE_FIELDS = ("protocol", "start", "end")
BANP_NAME = "default"
MAX_RULES = 100
MAX_PEERS = 100
MAX_PORTS = 100


def port(field: Field) -> TierPort:
    key, value = exactly_one(field, PORT_FIELDS)
    if key == "namedPort":
        return named_port(value)
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


ANP_RULES = RuleSchema(
    actions={"Allow": RuleAction.ALLOW, "Deny": RuleAction.DENY, "Pass": RuleAction.PASS},
    ports_key="ports", port=port, max_rules=MAX_RULES, max_peers=MAX_PEERS,
    max_ports=MAX_PORTS,
    egress_peer_fields=("namespaces", "pods", "nodes", "networks", "domainNames"),
    pods_need_namespaces=True, named_port_refuses_networks=True)
BANP_RULES = RuleSchema(
    actions={"Allow": RuleAction.ALLOW, "Deny": RuleAction.DENY},
    ports_key="ports", port=port, max_rules=MAX_RULES, max_peers=MAX_PEERS,
    max_ports=MAX_PORTS,
    egress_peer_fields=("namespaces", "pods", "nodes", "networks"),
    pods_need_namespaces=True, named_port_refuses_networks=True)


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
    schema = BANP_RULES if baseline else ANP_RULES
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
    selected = subject(spec, schema)
    ingress, egress = rules(spec, schema)
    return TieredPolicy(kind=kind, name=meta.name,
                        tier=Tier.BASELINE if baseline else Tier.ADMIN, priority=priority,
                        subject=selected, ingress=ingress, egress=egress, audit=audit,
                        resource_version=meta.resource_version)
