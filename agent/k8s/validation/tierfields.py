"""What both Network Policy API front-ends validate the same way, as their CRDs do.

A custom resource is checked by its CRD's OpenAPI schema and CEL rules, not by Go
validation code: types, required fields, enums, minItems/maxItems, minProperties/
maxProperties ("exactly one of"), maxLength, patterns and `x-kubernetes-validations`.
What the schema leaves unchecked is accepted, as the API server accepts it; where that
leaves a value Membrane cannot use, it says so with a ValidationWarning and the value
matches nothing (a label selector with an unknown operator, as kube-network-policies'
LabelSelectorAsSelector error does).

Both channels of each CRD are served by one validator: the experimental channel's
fields are accepted, and a CEL rule is applied where no channel would accept what it
refuses (agent.k8s.validation.clusternetworkpolicy and .adminnetworkpolicy say which).
Unknown fields are rejected, as `kubectl apply`'s strict field validation rejects them
for custom resources too; a null is absent (the API server drops nulls of non-nullable
fields before validating).

Rules, peers and subjects are shared too: `subject` and `rules` read them as a
RuleSchema says, which holds what differs between the API versions (the action names,
the ports field and its parser, the list limits, whether a pods selector needs a
namespaceSelector, the egress peers and whether a named port beside a networks peer is
refused or only warned about). Each front-end keeps its own ports parser and its
top-level fields.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.k8s.clusterpolicy import (AUDIT_ANNOTATION, AUDIT_TRUE, RuleAction, TierPeer,
                                     TierPort, TierRule, TierSelector)
from agent.k8s.objects import LabelSelector, Operator, Requirement
from agent.k8s.validation.fields import Field, describe_type, quoted
from agent.k8s.validation.meta import ObjectMeta, object_meta
from agent.k8s.validation.names import (dns1123_subdomain_problem, label_value_problem,
                                        port_name_problem, qualified_name_problem)

TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
SUBJECT_FIELDS = ("namespaces", "pods")
NAMESPACED_POD_FIELDS = ("namespaceSelector", "podSelector")
INGRESS_PEER_FIELDS = ("namespaces", "pods")
REQUIREMENT_FIELDS = ("key", "operator", "values")
RULE_NAME_MAX = 100            # `name` of a rule: maxLength 100
CIDR_MAX_LENGTH = 43           # the CIDR type: maxLength 43
MAX_NETWORKS = 25              # networks and domainNames of a peer: maxItems 25
# DomainName's pattern, as the CRD writes it (its `A-z` ranges included).
DOMAIN_NAME = re.compile(
    r"(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?")

# A selector Membrane cannot evaluate matches nothing: no pod has a value in the empty set.
NOTHING = LabelSelector(match_expressions=(Requirement("membrane.invalid/selector",
                                                       Operator.IN, ()),))


def tier_metadata(root: Field) -> tuple[ObjectMeta, bool]:
    """Top-level fields and metadata of a cluster-scoped policy: (meta, audit)."""
    root.fields(TOP_FIELDS)
    meta = object_meta(root, dns1123_subdomain_problem, namespaced=False, strict=True)
    # The annotations were validated with the rest of the metadata just above.
    field = root.get("metadata").get("annotations").get(AUDIT_ANNOTATION)
    text = field.value if isinstance(field.value, str) else None
    audit = text is not None and text.lower() in AUDIT_TRUE
    if text is not None and not audit and text.lower() not in ("false", "disabled"):
        field.warn(f"{quoted(text)} is not \"true\" or \"false\": audit mode stays off")
    return meta, audit


def required(field: Field) -> Field:
    if field.is_absent:
        field.fail("Required value")
    return field


def bounded_items(field: Field, max_items: int, min_items: int = 0) -> list[Field]:
    """A list with the schema's minItems/maxItems (absent: no items)."""
    items = field.items()
    if not field.is_absent and len(items) < min_items:
        field.fail(f"should have at least {min_items} item{'s' if min_items > 1 else ''}")
    if len(items) > max_items:
        field.fail(f"Too many: {len(items)}: must have at most {max_items} items")
    return items


def exactly_one(field: Field, allowed: tuple[str, ...]) -> tuple[str, Field]:
    """minProperties 1, maxProperties 1 over the allowed fields: (key, value)."""
    present = {k: f for k, f in field.fields(allowed).items() if not f.is_absent}
    if field.is_absent or not isinstance(field.value, dict):
        field.fail(f"must be an object with exactly one of {', '.join(allowed)}, not "
                   f"{describe_type(field.value)}")
    if len(present) != 1:
        field.fail(f"must have exactly one of {', '.join(allowed)}"
                   + (f", not {len(present)} ({', '.join(sorted(present))})" if present else ""))
    [(key, value)] = present.items()
    return key, value


def integer_in(field: Field, low: int, high: int) -> int:
    """A required int32 with the schema's minimum and maximum."""
    value = required(field).integer()
    if not low <= value <= high:
        field.fail(f"Invalid value: {value}: should be between {low} and {high}")
    return value


def enum(field: Field, values: tuple[str, ...]) -> str:
    text = required(field).string()
    if text not in values:
        field.fail(f"Unsupported value: {quoted(text)}: supported values: "
                   + ", ".join(f'"{v}"' for v in values))
    return text


def action(field: Field, names: dict[str, RuleAction]) -> RuleAction:
    return names[enum(field, tuple(names))]


def rule_name(field: Field) -> str:
    text = field.optional_string() or ""
    if len(text) > RULE_NAME_MAX:
        field.fail(f"Too long: may not be longer than {RULE_NAME_MAX}")
    return text


def crd_selector(field: Field) -> LabelSelector:
    """A metav1.LabelSelector as a CRD schema checks it: its shape only. Keys, values
    and operators the schema does not check but a selector needs are warned about, and
    the selector then matches nothing."""
    field.fields(SELECTOR_FIELDS)
    problems: list[tuple[Field, str]] = []
    labels: dict[str, str] = {}
    for key, value in field.get("matchLabels").fields().items():
        labels[key] = "" if value.is_absent else value.string()
        if qualified_name_problem(key) or label_value_problem(labels[key]):
            problems.append((value, f"invalid label {quoted(key)}: {quoted(labels[key])}"))
    requirements: list[Requirement] = []
    for item in field.get("matchExpressions").items():
        if item.is_absent or not isinstance(item.value, dict):
            item.fail(f"must be an object with key and operator, not {describe_type(item.value)}")
        item.fields(REQUIREMENT_FIELDS)
        key = required(item.get("key")).string()
        operator = required(item.get("operator")).string()
        values = tuple(v.string() for v in item.get("values").items())
        problem = _requirement_problem(key, operator, values)
        if problem is not None:
            problems.append((item, problem))
        else:
            requirements.append(Requirement(key, Operator(operator), tuple(sorted(set(values)))))
    if problems:
        where, text = problems[0]
        where.warn(f"{text}: the API server accepts it, but the selector selects nothing "
                   "(as kube-network-policies reads it)")
        return NOTHING
    return LabelSelector.of(labels, tuple(requirements))


def _requirement_problem(key: str, operator: str, values: tuple[str, ...]) -> str | None:
    """What metav1.LabelSelectorAsSelector refuses in one matchExpressions entry."""
    if qualified_name_problem(key):
        return f"invalid label key {quoted(key)}"
    if operator not in {o.value for o in Operator}:
        return f"unknown operator {quoted(operator)}"
    if operator in (Operator.IN.value, Operator.NOT_IN.value) and not values:
        return f"operator {operator} needs values"
    if operator in (Operator.EXISTS.value, Operator.DOES_NOT_EXIST.value) and values:
        return f"operator {operator} takes no values"
    bad = next((v for v in values if label_value_problem(v)), None)
    return None if bad is None else f"invalid label value {quoted(bad)}"


def cel_cidr(field: Field) -> str:
    """The CIDR type: maxLength 43 and `isCIDR(self)` (netip.ParsePrefix, IPv4-mapped
    IPv6 refused). Host bits are allowed, as netip allows them; the prefix's network
    is what matches (warned about). Returns the normalised network."""
    text = required(field).string()
    if len(text) > CIDR_MAX_LENGTH:
        field.fail(f"Too long: may not be longer than {CIDR_MAX_LENGTH}")
    invalid = "Invalid CIDR format provided"
    address, slash, bits = text.partition("/")
    if not slash or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0") or "%" in address:
        field.fail(invalid)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        field.fail(invalid)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        field.fail(invalid)
    if int(bits) > parsed.max_prefixlen:
        field.fail(invalid)
    network = ipaddress.ip_network((parsed, int(bits)), strict=False)
    if network.network_address != parsed:
        field.warn(f"{quoted(text)} has host bits set: it matches {network}")
    return str(network)


def domain_name(field: Field) -> str:
    text = required(field).string()
    if not DOMAIN_NAME.fullmatch(text):
        field.fail(f"Invalid value: {quoted(text)}: should match the DomainName pattern "
                   "(a DNS name, optionally starting with '*.')")
    return text


def named_port(field: Field) -> TierPort:
    """A named port: a plain string in the schema; one no container port can have is
    accepted, with a warning, and matches nothing."""
    name = field.string()
    problem = port_name_problem(name)
    if problem:
        field.warn(f"{name!r} can name no container port ({problem}): matches nothing")
    return TierPort(name=name)


def string_set(field: Field, max_items: int) -> list[Field]:
    """x-kubernetes-list-type set with minItems 1: duplicates are refused."""
    items = bounded_items(field, max_items, min_items=1)
    seen: set[Any] = set()
    for item in items:
        if item.value in seen:
            item.fail(f"Duplicate value: {quoted(item.value)}")
        seen.add(item.value)
    return items


@dataclass(frozen=True)
class RuleSchema:
    """What one API version's CRD says of its rules, peers and subjects."""
    actions: dict[str, RuleAction]     # the action enum, by the CRD's spelling
    ports_key: str                     # the rule's ports field ("ports", "protocols")
    port: Callable[[Field], TierPort]  # reads one item of that field
    max_rules: int                     # ingress and egress: maxItems each
    max_peers: int                     # from/to: minItems 1, maxItems
    max_ports: int                     # the ports field: minItems 1, maxItems
    egress_peer_fields: tuple[str, ...]
    pods_need_namespaces: bool         # `pods` requires its namespaceSelector
    named_port_refuses_networks: bool  # the CEL rule refuses networks too (else: a warning)


def subject(spec: Field, schema: RuleSchema) -> TierSelector:
    """spec.subject: required, exactly one of namespaces / pods."""
    return pod_selection(*exactly_one(required(spec.get("subject")), SUBJECT_FIELDS),
                         pods_need_namespaces=schema.pods_need_namespaces)


def rules(spec: Field, schema: RuleSchema) -> tuple[tuple[TierRule, ...], tuple[TierRule, ...]]:
    """spec.ingress and spec.egress: (ingress, egress)."""
    ingress = tuple(rule(item, "from", INGRESS_PEER_FIELDS, schema)
                    for item in bounded_items(spec.get("ingress"), schema.max_rules))
    egress = tuple(rule(item, "to", schema.egress_peer_fields, schema)
                   for item in bounded_items(spec.get("egress"), schema.max_rules))
    return ingress, egress


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


def rule(field: Field, peers_key: str, peer_fields: tuple[str, ...],
         schema: RuleSchema) -> TierRule:
    """One ingress (peers_key "from") or egress ("to") rule."""
    if field.is_absent or not isinstance(field.value, dict):
        field.fail("must be an object with action and " + peers_key)
    field.fields(("name", "action", peers_key, schema.ports_key))
    name = rule_name(field.get("name"))
    act = action(field.get("action"), schema.actions)
    peers = tuple(peer(item, peer_fields, schema.pods_need_namespaces)
                  for item in bounded_items(required(field.get(peers_key)), schema.max_peers, 1))
    ports_field = field.get(schema.ports_key)
    ports = tuple(schema.port(item)
                  for item in bounded_items(ports_field, schema.max_ports, 1))
    named = next((i for i, p in enumerate(ports) if p.name is not None), None)
    if named is not None:
        if any(p.nodes is not None or p.domain_names
               or (schema.named_port_refuses_networks and p.networks) for p in peers):
            field.fail("networks/nodes/domainNames peer cannot be set with namedPorts since "
                       "there are no namedPorts for networks/nodes/domainNames")
        if any(p.networks for p in peers):
            ports_field.items()[named].warn(
                "a named port with a networks peer matches only pod addresses inside the "
                "networks (the experimental channel's CRD refuses this rule)")
    if any(p.domain_names for p in peers) and act is not RuleAction.ALLOW:
        allow = next(k for k, v in schema.actions.items() if v is RuleAction.ALLOW)
        field.get("action").warn(f"domainNames are meant for {allow} rules only")
    return TierRule(name=name, action=act, peers=peers, ports=ports)


def peer(field: Field, allowed: tuple[str, ...], pods_need_namespaces: bool) -> TierPeer:
    """One peer: exactly one of the allowed fields."""
    key, value = exactly_one(field, allowed)
    if key in ("namespaces", "pods"):
        return TierPeer(pods=pod_selection(key, value, pods_need_namespaces))
    if key == "nodes":
        return TierPeer(nodes=crd_selector(value))
    if key == "networks":
        return TierPeer(networks=tuple(cel_cidr(item)
                                       for item in string_set(value, MAX_NETWORKS)))
    value.warn("domainNames peers are not enforced by Membrane yet: this peer matches "
               "nothing")
    return TierPeer(domain_names=tuple(domain_name(item)
                                       for item in string_set(value, MAX_NETWORKS)))
