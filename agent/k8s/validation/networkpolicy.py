"""NetworkPolicy (networking.k8s.io/v1), as kube-apiserver validates and defaults it:
pkg/apis/networking/validation `ValidateNetworkPolicy` and pkg/apis/networking/v1
`SetDefaults_NetworkPolicy`, `SetDefaults_NetworkPolicyPort`. Unknown fields are
rejected, as `kubectl apply`'s strict field validation does (a typo must not silently
widen a policy).

A document that cannot be accepted (a field a newer API server knows and Membrane does
not, a document edited in the lab's store) still says which pods it means to isolate.
`fail_closed_stand_in` reads just that, and the stand-in is enforced in its place: the
pods it covers are isolated in its directions and nothing is allowed by it. What it
covers, read as narrowly as is safe:

    namespace    metadata.namespace ("default" when absent); unreadable: no stand-in,
                 since no pod can live in a namespace with an invalid name
    pods         spec.podSelector when it reads strictly; otherwise every pod of the
                 namespace (a selector with a field Membrane does not know could select
                 more than the rest of it says)
    directions   spec.policyTypes when it reads; absent: Ingress, plus Egress when
                 spec.egress is present; unreadable (or spec itself): both
"""

from __future__ import annotations

from typing import Any

from agent.k8s.objects import IPBlock, NetworkPolicy, PolicyPeer, PolicyPort, PolicyRule, PolicyType
from agent.k8s.objects import LabelSelector
from agent.k8s.validation.fields import Field, ObjectRef, ValidationWarning, quoted
from agent.k8s.validation.meta import DEFAULT_NAMESPACE, display_name, object_meta, object_ref
from agent.k8s.validation.names import (dns1123_label_problem, dns1123_subdomain_problem,
                                        port_number_problem)
from core.errors import InvalidObject
from agent.k8s.validation.network import is_strict_subnet, parse_cidr
from agent.k8s.validation.ports import int_or_port_name, parse_protocol
from agent.k8s.validation.selectors import label_selector

API_VERSION = "networking.k8s.io/v1"
# `status` existed in networking.k8s.io/v1 from 1.24 to 1.27; exports from those clusters
# carry it, so it is accepted and ignored rather than called unknown.
TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
SPEC_FIELDS = ("podSelector", "policyTypes", "ingress", "egress")
INGRESS_RULE_FIELDS = ("ports", "from")
EGRESS_RULE_FIELDS = ("ports", "to")
PEER_FIELDS = ("podSelector", "namespaceSelector", "ipBlock")
IP_BLOCK_FIELDS = ("cidr", "except")
PORT_FIELDS = ("protocol", "port", "endPort")


def network_policy_from_document(doc: dict[str, Any], source: str = "",
                   warnings: list[ValidationWarning] | None = None) -> NetworkPolicy:
    """ValidateNetworkPolicy, then the defaults; warnings go to `warnings`."""
    ref = object_ref(doc, "NetworkPolicy", namespaced=True, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    root.fields(TOP_FIELDS)
    # ValidateNetworkPolicyName = NameIsDNSSubdomain
    meta = object_meta(root, dns1123_subdomain_problem, namespaced=True, strict=True)
    spec = root.get("spec")
    spec.fields(SPEC_FIELDS)
    ingress = tuple(policy_rule(rule, "from", INGRESS_RULE_FIELDS)
                    for rule in spec.get("ingress").items())
    egress = tuple(policy_rule(rule, "to", EGRESS_RULE_FIELDS)
                   for rule in spec.get("egress").items())
    return NetworkPolicy(
        namespace=meta.namespace,
        name=meta.name,
        pod_selector=label_selector(spec.get("podSelector")),
        policy_types=policy_types(spec.get("policyTypes"), has_egress_rules=bool(egress)),
        ingress=ingress,
        egress=egress,
        resource_version=meta.resource_version,
    )


def fail_closed_stand_in(doc: dict[str, Any], source: str, reason: str) -> NetworkPolicy | None:
    """The policy enforced in place of a NetworkPolicy document that was rejected for
    `reason` (see the module docstring), or None when it can cover no pod."""
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    namespace = meta.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str) or dns1123_label_problem(namespace):
        return None
    # A throwaway ref: the rejection has been reported; nothing read here is news.
    spec = Field(ObjectRef("NetworkPolicy", "", source), "spec", doc.get("spec"))
    everything = frozenset(PolicyType)
    if spec.value is not None and not isinstance(spec.value, dict):
        return NetworkPolicy(namespace, display_name(meta.get("name")), LabelSelector(),
                             everything, fail_closed=reason)
    try:
        selector = label_selector(spec.get("podSelector"))
    except InvalidObject:
        selector = LabelSelector()          # every pod of the namespace
    egress = spec.get("egress").value
    try:
        types = policy_types(spec.get("policyTypes"),
                             has_egress_rules=egress is not None and egress != [])
    except InvalidObject:
        types = everything
    return NetworkPolicy(namespace, display_name(meta.get("name")), selector, types,
                         fail_closed=reason)


def policy_types(field: Field, has_egress_rules: bool) -> frozenset[PolicyType]:
    """ValidateNetworkPolicySpec checks the count (at most two) and each value, not
    repeats: [Ingress, Ingress] is valid and means Ingress. When absent or empty,
    Ingress, plus Egress when the policy has egress rules (SetDefaults_NetworkPolicy)."""
    items = field.items()
    if len(items) > len(PolicyType):
        field.fail("may not specify more than two policyTypes")
    seen: set[PolicyType] = set()
    for item in items:
        policy_type = parse_policy_type(item)
        if policy_type in seen:
            # Not an error upstream; worth saying, as it often hides a missing Egress.
            item.warn(f"repeated value {quoted(policy_type.value)} has no effect")
        seen.add(policy_type)
    if seen:
        return frozenset(seen)
    if has_egress_rules:
        return frozenset({PolicyType.INGRESS, PolicyType.EGRESS})
    return frozenset({PolicyType.INGRESS})


def parse_policy_type(field: Field) -> PolicyType:
    text = field.string()
    for policy_type in PolicyType:
        if policy_type.value == text:
            return policy_type
    field.fail(f'Unsupported value {quoted(text)}: supported values: "Ingress", "Egress"')


def policy_rule(field: Field, peers_key: str, allowed: tuple[str, ...]) -> PolicyRule:
    """An ingress or egress rule. Missing and empty `from`/`to`/`ports` both mean "all":
    `ingress: [{}]` is one rule allowing everything. A null rule decodes as {} in Go."""
    field.fields(allowed)
    peers = tuple(policy_peer(peer) for peer in field.get(peers_key).items())
    ports = tuple(policy_port(port) for port in field.get("ports").items())
    return PolicyRule(peers=peers, ports=ports)


def policy_peer(field: Field) -> PolicyPeer:
    """ValidateNetworkPolicyPeer: at least one of the three ("must specify a peer"), and
    ipBlock alone. A selector given as {} is present (a non-nil pointer)."""
    fields = field.fields(PEER_FIELDS)
    present = {key for key, value in fields.items() if not value.is_absent}
    if not present:
        field.fail("must specify a peer: podSelector, namespaceSelector or ipBlock")
    if "ipBlock" in present and len(present) > 1:
        field.get("ipBlock").fail("may not specify both ipBlock and another peer")
    if "ipBlock" in present:
        return PolicyPeer(ip_block=ip_block(field.get("ipBlock")))
    pod = field.get("podSelector")
    namespace = field.get("namespaceSelector")
    return PolicyPeer(
        pod_selector=None if pod.is_absent else label_selector(pod),
        namespace_selector=None if namespace.is_absent else label_selector(namespace),
    )


def ip_block(field: Field) -> IPBlock:
    """ValidateIPBlock: cidr required and valid; each except valid and "a strict subset
    of `cidr`"."""
    field.fields(IP_BLOCK_FIELDS)
    cidr = parse_cidr(field.get("cidr"))
    excepts = []
    for item in field.get("except").items():
        excepted = parse_cidr(item)
        if not is_strict_subnet(excepted, cidr):
            item.fail(f"must be a strict subset of cidr {cidr}")
        excepts.append(str(excepted))
    return IPBlock(cidr=str(cidr), except_=tuple(excepts))


def policy_port(field: Field) -> PolicyPort:
    """ValidateNetworkPolicyPort, after SetDefaults_NetworkPolicyPort (TCP when nil)."""
    field.fields(PORT_FIELDS)
    protocol = parse_protocol(field.get("protocol"), empty_is_tcp=False)
    port_field = field.get("port")
    end_field = field.get("endPort")
    port = int_or_port_name(port_field)
    end_port = end_field.optional_integer()
    if end_port is not None:
        if port is None:
            end_field.fail("may not be specified when port is not specified")
        if isinstance(port, str):
            end_field.fail("may not be specified when port is a named port")
        problem = port_number_problem(end_port)
        if problem:
            end_field.fail(f"invalid value {end_port}: {problem}")
        if end_port < port:
            end_field.fail("must be >= port")
    return PolicyPort(protocol=protocol, port=port, end_port=end_port)
