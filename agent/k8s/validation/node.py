"""Nodes, as pkg/apis/core/validation `ValidateNode` checks them: the name
(ValidateNodeName = NameIsDNSSubdomain), spec.podCIDR and spec.podCIDRs (each a CIDR;
dual-stack nodes have one per family). "All status fields are
optional": the API server does not validate status.addresses, so neither is a bad one
an error here: it is skipped, with a warning."""

from __future__ import annotations

from typing import Any

from core.errors import InvalidObject
from agent.k8s.objects import Node
from agent.k8s.validation.fields import Field, ValidationWarning
from agent.k8s.validation.meta import object_meta, object_ref
from agent.k8s.validation.names import dns1123_subdomain_problem
from agent.k8s.validation.network import parse_cidr, parse_ip


def node_from_document(doc: dict[str, Any], source: str = "",
         warnings: list[ValidationWarning] | None = None) -> Node:
    ref = object_ref(doc, "Node", namespaced=False, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta = object_meta(root, dns1123_subdomain_problem, namespaced=False)
    # spec.podCIDR is podCIDRs[0] after conversion; each is IsValidCIDRForLegacyField.
    spec = root.get("spec")
    cidr_field = spec.get("podCIDR")
    pod_cidr = None if not cidr_field.value else str(parse_cidr(cidr_field))
    pod_cidrs = tuple(str(parse_cidr(entry)) for entry in spec.get("podCIDRs").items())
    ipv4, ipv6 = internal_addresses(root.get("status").get("addresses"))
    return Node(name=meta.name, ip=ipv4, pod_cidr=pod_cidr or next(iter(pod_cidrs), None),
                labels=meta.labels, ipv6=ipv6, pod_cidrs=pod_cidrs)


def internal_addresses(addresses: Field) -> tuple[str | None, str | None]:
    """The first IPv4 and the first IPv6 InternalIP (a dual-stack node has one of each);
    addresses that are not IPs are skipped, with a warning."""
    found: dict[int, str] = {}
    for entry in addresses.items():
        if entry.get("type").optional_string() != "InternalIP":
            continue
        field = entry.get("address")
        text = field.optional_string()
        if not text:
            continue
        try:
            address = parse_ip(field)
        except InvalidObject as error:   # unvalidated upstream: not fatal here
            field.warn(f"skipped: {error.problem}")
            continue
        found.setdefault(address.version, str(address))
    return found.get(4), found.get(6)
