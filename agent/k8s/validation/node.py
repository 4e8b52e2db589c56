"""Nodes, as pkg/apis/core/validation `ValidateNode` checks them: the name
(ValidateNodeName = NameIsDNSSubdomain) and spec.podCIDR. "All status fields are
optional": the API server does not validate status.addresses, so neither is a bad one
an error here: it is skipped, with a warning."""

from __future__ import annotations

import ipaddress
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
    cidr_field = root.get("spec").get("podCIDR")
    pod_cidr = None if not cidr_field.value else str(parse_cidr(cidr_field))
    return Node(name=meta.name, ip=internal_ipv4(root.get("status").get("addresses")),
                pod_cidr=pod_cidr, labels=meta.labels)


def internal_ipv4(addresses: Field) -> str | None:
    """The first IPv4 InternalIP. IPv6 ones (dual-stack nodes) are skipped, as the
    datapath is IPv4 only; so are addresses that are not IPs (with a warning)."""
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
        if isinstance(address, ipaddress.IPv4Address):
            return str(address)
    return None
