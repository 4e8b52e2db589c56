"""Services, as pkg/apis/core/validation `ValidateService` / `validateServicePort` check
them and pkg/apis/core/v1 `SetDefaults_Service` defaults them. Membrane keeps a Service
for the lab's DNS only (a name that resolves to the pods it selects)."""

from __future__ import annotations

from typing import Any

from agent.k8s.objects import Service, ServicePort
from agent.k8s.validation.fields import Field, ValidationWarning, quoted
from agent.k8s.validation.meta import labels, object_meta, object_ref
from agent.k8s.validation.names import dns1035_label_problem, dns1123_label_problem
from agent.k8s.validation.ports import int_or_port_name, parse_protocol, required_port_number

HEADLESS = "None"                 # spec.clusterIP of a headless Service
EXTERNAL_NAME = "ExternalName"    # spec.type of a Service that is a DNS alias


def service_from_document(doc: dict[str, Any], source: str = "",
            warnings: list[ValidationWarning] | None = None) -> Service:
    """ValidateService (ValidateServiceName = NameIsDNS1035Label), the fields Membrane
    reads: selector (ValidateLabels) and ports."""
    ref = object_ref(doc, "Service", namespaced=True, source=source, warnings=warnings)
    root = Field(ref, "", doc)
    meta = object_meta(root, dns1035_label_problem, namespaced=True)
    spec = root.get("spec")
    return Service(namespace=meta.namespace, name=meta.name,
                   selector=labels(spec.get("selector")), ports=service_ports(spec))


def service_ports(spec: Field) -> tuple[ServicePort, ...]:
    """spec.ports: required unless the Service is headless or an ExternalName; with more
    than one port each needs a name; names unique; (port, protocol) pairs unique."""
    ports_field = spec.get("ports")
    items = ports_field.items()
    if not items and not _portless_allowed(spec):
        ports_field.fail("Required value: a Service needs ports unless it is headless "
                         "(clusterIP: None) or of type ExternalName")
    ports: list[ServicePort] = []
    names: set[str] = set()
    numbers: set[tuple[int, str]] = set()
    for item in items:
        port = service_port(item, name_required=len(items) > 1)
        if port.name is not None:
            if port.name in names:
                item.get("name").fail(f"Duplicate value {quoted(port.name)}")
            names.add(port.name)
        number = (port.port, port.protocol.value)
        if number in numbers:
            item.fail(f"Duplicate value: port {port.port}/{port.protocol.value}")
        numbers.add(number)
        ports.append(port)
    return tuple(ports)


def _portless_allowed(spec: Field) -> bool:
    """isHeadlessService (clusterIPs[0] == "None"; clusterIP is its legacy form) or
    type ExternalName."""
    cluster_ips = [item.optional_string() for item in spec.get("clusterIPs").items()]
    cluster_ip = spec.get("clusterIP").optional_string()
    headless = HEADLESS in (cluster_ip, cluster_ips[0] if cluster_ips else None)
    return headless or spec.get("type").optional_string() == EXTERNAL_NAME


def service_port(field: Field, name_required: bool) -> ServicePort:
    """validateServicePort after SetDefaults_Service: protocol TCP when absent or "",
    targetPort the port when absent, 0 or "" (Go's zero values)."""
    if field.is_absent:
        field.fail("must be a port object with port, not null")
    port = required_port_number(field, "port")
    target_field = field.get("targetPort")
    zero = target_field.value == "" or (type(target_field.value) is int and target_field.value == 0)
    target = None if zero else int_or_port_name(target_field)
    name_field = field.get("name")
    name = name_field.optional_name(dns1123_label_problem)
    if name is None and name_required:
        name_field.fail("Required value: every port of a Service with several ports "
                        "needs a name")
    return ServicePort(port=port, target_port=port if target is None else target,
                       protocol=parse_protocol(field.get("protocol"), empty_is_tcp=True),
                       name=name)
