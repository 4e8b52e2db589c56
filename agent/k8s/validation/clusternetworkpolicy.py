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

from agent.k8s.clusterpolicy import CNP_KIND, RuleAction, Tier, TieredPolicy, TierPort
from agent.k8s.objects import Protocol
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import object_ref
from agent.k8s.validation.tierfields import (RuleSchema, enum, exactly_one, integer_in,
                                             named_port, required, rules, subject,
                                             tier_metadata)

SPEC_FIELDS = ("tier", "priority", "subject", "ingress", "egress")
PROTOCOL_FIELDS = ("tcp", "udp", "sctp", "destinationNamedPort")
PORT_FIELDS = ("number", "range")
RANGE_FIELDS = ("start", "end")
_PROTOCOLS = {"tcp": Protocol.TCP, "udp": Protocol.UDP, "sctp": Protocol.SCTP}


def protocol(field: Field) -> TierPort:
    key, value = exactly_one(field, PROTOCOL_FIELDS)
    if key == "destinationNamedPort":
        return named_port(value)
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


CNP_RULES = RuleSchema(
    actions={"Accept": RuleAction.ALLOW, "Deny": RuleAction.DENY, "Pass": RuleAction.PASS},
    ports_key="protocols", port=protocol, max_rules=25, max_peers=25, max_ports=25,
    egress_peer_fields=("namespaces", "pods", "nodes", "networks", "domainNames"),
    pods_need_namespaces=False, named_port_refuses_networks=False)


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
    selected = subject(spec, CNP_RULES)
    ingress, egress = rules(spec, CNP_RULES)
    return TieredPolicy(kind=CNP_KIND, name=meta.name, tier=tier, priority=priority,
                        subject=selected, ingress=ingress, egress=egress, audit=audit,
                        resource_version=meta.resource_version)
