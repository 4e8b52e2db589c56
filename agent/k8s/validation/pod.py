"""Pods and pod templates: what Membrane reads of a PodSpec (node, service account,
host network, container ports) and of a Pod's status (its IPv4 and IPv6 addresses), as
pkg/apis/core/validation `ValidatePodSpec` / `validateContainerPorts` and the v1
defaults check them. The rest of a PodSpec (images, volumes, ...) is not Membrane's to
judge and is not read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.k8s.objects import ContainerPort, Pod
from agent.k8s.validation.fields import Field, ValidationWarning, quoted
from agent.k8s.validation.meta import object_meta, object_ref
from agent.k8s.validation.names import dns1123_subdomain_problem, port_name_problem
from agent.k8s.validation.network import parse_ip
from agent.k8s.validation.ports import parse_protocol, required_port_number

# A finished pod's IP goes back to the pool and may already be another pod's.
FINISHED_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class PodSpecFields:
    """What Membrane reads from a PodSpec (a Pod's spec or a workload's template spec)."""

    node_name: str | None
    service_account: str
    ports: tuple[ContainerPort, ...]
    host_network: bool


def pod_from_document(doc: dict[str, Any], source: str = "",
        warnings: list[ValidationWarning] | None = None) -> Pod:
    """ValidatePodCreate for the fields Membrane reads (ValidatePodName =
    NameIsDNSSubdomain), and the pod's address from its status."""
    root = Field(object_ref(doc, "Pod", namespaced=True, source=source, warnings=warnings),
                 "", doc)
    meta = object_meta(root, dns1123_subdomain_problem, namespaced=True)
    spec = pod_spec(root.get("spec"))
    status = root.get("status")
    ip, ipv6 = pod_addresses(status)
    if status.get("phase").optional_string() in FINISHED_PHASES:
        # Keeping a finished pod's IPs would give the pod that now has one this one's
        # identity in the ipcache.
        ip = ipv6 = None
    return Pod(
        namespace=meta.namespace,
        name=meta.name,
        labels=meta.labels,
        ip=ip,
        node_name=spec.node_name,
        service_account=spec.service_account,
        ports=spec.ports,
        host_network=spec.host_network,
        uid=meta.uid,
        ipv6=ipv6,
    )


def pod_spec(spec: Field) -> PodSpecFields:
    """ValidatePodSpec, the fields Membrane reads: nodeName (ValidateNodeName =
    NameIsDNSSubdomain), serviceAccountName, hostNetwork, the containers' ports."""
    return PodSpecFields(
        node_name=spec.get("nodeName").optional_name(dns1123_subdomain_problem),
        service_account=service_account(spec),
        ports=container_ports(spec),
        host_network=spec.get("hostNetwork").boolean(),
    )


def service_account(spec: Field) -> str:
    """ValidateServiceAccountName (NameIsDNSSubdomain). serviceAccount is the deprecated
    alias the v1 conversion still honours when serviceAccountName is empty."""
    field = spec.get("serviceAccountName")
    if field.is_absent or field.value == "":
        field = spec.get("serviceAccount")
    return field.checked_name(field.optional_string() or "default",
                              dns1123_subdomain_problem)


def container_ports(spec: Field) -> tuple[ContainerPort, ...]:
    """Every container's ports, in order. validateContainerPorts checks port names
    unique within one container only: two containers may both name a port "http"
    (the first one's wins for NetworkPolicy, as in kube-network-policies; a warning says
    so). A port number and protocol repeated anywhere in the pod is the warning
    warningsForPodSpecAndMeta gives ("duplicate port definition")."""
    ports: list[ContainerPort] = []
    first_named: dict[tuple[str, str], str] = {}       # (name, protocol) -> field path
    first_number: dict[tuple[int, str], str] = {}      # (port, protocol) -> field path
    for container in spec.get("containers").items():
        if container.is_absent:
            container.fail("must be a container object, not null")
        names_here: set[str] = set()
        for entry in container.get("ports").items():
            port = container_port(entry)
            if port.name is not None:
                if port.name in names_here:
                    entry.get("name").fail(f"Duplicate value {quoted(port.name)}")
                names_here.add(port.name)
                named = (port.name, port.protocol.value)
                if named in first_named:
                    entry.get("name").warn(
                        f"port name {quoted(port.name)} is also used by {first_named[named]}: "
                        "NetworkPolicy named ports resolve to that first one")
                first_named.setdefault(named, entry.path)
            number = (port.port, port.protocol.value)
            if number in first_number:
                entry.warn(f"duplicate port definition with {first_number[number]}")
            first_number.setdefault(number, entry.path)
            ports.append(port)
    return tuple(ports)


def container_port(field: Field) -> ContainerPort:
    """One entry of validateContainerPorts: containerPort required and a port number,
    hostPort (when set) a port number, name an IANA_SVC_NAME, protocol TCP when absent
    or "" (SetDefaults_ContainerPort)."""
    if field.is_absent:
        field.fail("must be a port object with containerPort, not null")
    number = required_port_number(field, "containerPort")
    host_port = field.get("hostPort")
    if host_port.optional_integer():
        required_port_number(field, "hostPort")
    name = field.get("name").optional_name(port_name_problem)
    protocol = parse_protocol(field.get("protocol"), empty_is_tcp=True)
    return ContainerPort(port=number, protocol=protocol, name=name)


def pod_addresses(status: Field) -> tuple[str | None, str | None]:
    """The pod's (IPv4, IPv6) addresses, None for a family it lacks: status.podIP and
    status.podIPs, where a dual-stack pod lists one address of each family in either
    order (podIPs[0] is podIP). Each must be an IP (validatePodIPs,
    IsValidIPForLegacyField). validatePodIPs also refuses a second address of one family;
    a status that has one anyway keeps the first, with a warning."""
    candidates = [status.get("podIP")]
    candidates += [entry.get("ip") for entry in status.get("podIPs").items()]
    found: dict[int, str] = {}
    for field in candidates:
        if not field.value:
            continue
        parsed = parse_ip(field)
        address, version = str(parsed), parsed.version
        if version not in found:
            found[version] = address
        elif found[version] != address:
            field.warn(f"a second IPv{version} address: a pod has at most one per family "
                       f"(validatePodIPs), and {found[version]} is taken")
    return found.get(4), found.get(6)
