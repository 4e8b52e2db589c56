"""Validation of Kubernetes documents as the API server does it, turning them into objects.

The rules follow kube-apiserver: `ValidateNetworkPolicy` (pkg/apis/networking/validation),
metav1 label selector validation, object metadata names, and strict field validation
(unknown fields in a NetworkPolicy are rejected, as `kubectl apply` does by default).
Every problem raises `InvalidObject` naming the object and the field path, e.g.

    networkpolicy default/web: spec.ingress[0].ports[1].endPort: must be >= port

Documents are untrusted input: every access goes through `Field`, which checks the type
before using a value, so a malformed document gives a message, never a traceback.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, NoReturn

from core.errors import InvalidObject
from agent.k8s.objects import (
    ContainerPort,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Operator,
    PolicyPeer,
    PolicyPort,
    PolicyRule,
    PolicyType,
    Protocol,
    Requirement,
)

# --- names and values, as k8s.io/apimachinery/pkg/util/validation checks them ------------

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_IANA_SVC_NAME_CHARS = re.compile(r"[-a-z0-9]+")

MAX_LABEL_LENGTH = 63
MAX_SUBDOMAIN_LENGTH = 253
MAX_PORT_NAME_LENGTH = 15

_DNS1123_LABEL_RULE = ("must be a lowercase RFC 1123 label: at most 63 lowercase letters, "
                       "digits and '-', starting and ending with a letter or digit")
_DNS1123_SUBDOMAIN_RULE = ("must be a lowercase RFC 1123 subdomain: at most 253 lowercase "
                           "letters, digits, '-' and '.', each dot-separated part starting "
                           "and ending with a letter or digit")
_DNS1035_LABEL_RULE = ("must be an RFC 1035 label: at most 63 lowercase letters, digits and "
                       "'-', starting with a letter and ending with a letter or digit")
_NAME_PART_RULE = ("at most 63 letters, digits, '-', '_' and '.', starting and ending with "
                   "a letter or digit")


def dns1123_label_problem(value: str) -> str | None:
    """None when value is a valid DNS-1123 label (namespace names), else what is wrong."""
    if len(value) > MAX_LABEL_LENGTH or not _DNS1123_LABEL.fullmatch(value):
        return _DNS1123_LABEL_RULE
    return None


def dns1123_subdomain_problem(value: str) -> str | None:
    """None when value is a valid DNS-1123 subdomain (most object names)."""
    if len(value) > MAX_SUBDOMAIN_LENGTH or not _DNS1123_SUBDOMAIN.fullmatch(value):
        return _DNS1123_SUBDOMAIN_RULE
    return None


def dns1035_label_problem(value: str) -> str | None:
    """None when value is a valid DNS-1035 label (Service names: they become DNS names)."""
    if len(value) > MAX_LABEL_LENGTH or not _DNS1035_LABEL.fullmatch(value):
        return _DNS1035_LABEL_RULE
    return None


def qualified_name_problem(value: str) -> str | None:
    """None when value is a valid label key: `[prefix/]name`, prefix a DNS subdomain."""
    prefix, slash, name = value.rpartition("/")
    if slash:
        if "/" in prefix:
            return "a label key may contain at most one '/'"
        if not prefix:
            return "the prefix before '/' must not be empty"
        if dns1123_subdomain_problem(prefix):
            return "the prefix before '/' " + _DNS1123_SUBDOMAIN_RULE
    if not name:
        return "the name part must not be empty"
    if len(name) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME_PART.fullmatch(name):
        return "the name part must be " + _NAME_PART_RULE
    return None


def label_value_problem(value: str) -> str | None:
    """None when value is a valid label value (empty is allowed)."""
    if value and (len(value) > MAX_LABEL_LENGTH or not _QUALIFIED_NAME_PART.fullmatch(value)):
        return "a label value must be empty or " + _NAME_PART_RULE
    return None


def port_name_problem(value: str) -> str | None:
    """None when value is a valid IANA_SVC_NAME (RFC 6335), the form of named ports."""
    if len(value) > MAX_PORT_NAME_LENGTH:
        return "a port name must be at most 15 characters"
    if not _IANA_SVC_NAME_CHARS.fullmatch(value):
        return "a port name may contain only lowercase letters, digits and '-'"
    if not re.search(r"[a-z]", value):
        if value.isdigit():
            return "a port name must contain at least one letter (write a number without quotes)"
        return "a port name must contain at least one letter"
    if "--" in value:
        return "a port name must not contain '--'"
    if value.startswith("-") or value.endswith("-"):
        return "a port name must not begin or end with '-'"
    return None


def port_number_problem(value: int) -> str | None:
    if not 1 <= value <= 65535:
        return "must be a port number between 1 and 65535"
    return None


# --- typed access to untrusted documents ----------------------------------------------------

@dataclass(frozen=True)
class ObjectRef:
    """The object a document describes, for error messages: kind, "ns/name", source."""

    kind: str
    name: str
    source: str = ""

    def invalid(self, path: str, problem: str) -> InvalidObject:
        return InvalidObject(self.kind, self.name, path, problem, self.source)


def describe_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def quoted(value: object, limit: int = 60) -> str:
    """A value for a message, quoted and shortened so a huge value cannot flood a log."""
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    return text if len(text) <= limit else text[: limit - 4] + '..."'


@dataclass(frozen=True)
class Field:
    """A value found at a field path of a document; reading it checks its type."""

    ref: ObjectRef
    path: str
    value: Any

    def fail(self, problem: str) -> NoReturn:
        raise self.ref.invalid(self.path or "(document)", problem)

    def _wrong_type(self, expected: str) -> NoReturn:
        self.fail(f"must be {expected}, not {describe_type(self.value)}")

    @property
    def is_absent(self) -> bool:
        # Kubernetes (Go) decodes an explicit null exactly like a missing field.
        return self.value is None

    def child_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str) -> "Field":
        """The field `key` of this object (absent when this object is absent)."""
        if self.value is None:
            return Field(self.ref, self.child_path(key), None)
        if not isinstance(self.value, dict):
            self._wrong_type("an object")
        return Field(self.ref, self.child_path(key), self.value.get(key))

    def fields(self, allowed: Iterable[str] | None = None) -> dict[str, "Field"]:
        """The fields of this object. With `allowed`, any other field is rejected, as the
        API server's strict field validation does (a typo must not silently widen a policy)."""
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            self._wrong_type("an object")
        known = None if allowed is None else tuple(allowed)
        result: dict[str, Field] = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                self.fail(f"field names must be strings, not {describe_type(key)} {quoted(key)}")
            if known is not None and key not in known:
                Field(self.ref, self.child_path(key), value).fail(unknown_field_problem(key, known))
            result[key] = Field(self.ref, self.child_path(key), value)
        return result

    def items(self) -> list["Field"]:
        """The elements of this list (none when absent)."""
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            self._wrong_type("a list")
        return [Field(self.ref, f"{self.path}[{i}]", v) for i, v in enumerate(self.value)]

    def string_map(self) -> dict[str, str]:
        """A map of strings to strings (labels, selectors), keys in entry paths."""
        result: dict[str, str] = {}
        for key, entry in self.fields().items():
            entry = Field(self.ref, f"{self.path}[{key}]", entry.value)
            result[key] = entry.string()
        return result

    def string(self) -> str:
        if not isinstance(self.value, str):
            self._wrong_type("a string")
        return self.value

    def optional_string(self) -> str | None:
        return None if self.value is None else self.string()

    def required_string(self) -> str:
        if self.value is None or self.value == "":
            self.fail("Required value")
        return self.string()

    def integer(self) -> int:
        # bool is an int in Python but never in a Kubernetes document.
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self._wrong_type("an integer")
        return self.value

    def optional_integer(self) -> int | None:
        return None if self.value is None else self.integer()

    def boolean(self, default: bool = False) -> bool:
        if self.value is None:
            return default
        if not isinstance(self.value, bool):
            self._wrong_type("a boolean")
        return self.value


def unknown_field_problem(key: str, known: tuple[str, ...]) -> str:
    guess = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else f"; known fields: {', '.join(known)}"
    return f"unknown field {quoted(key)}{hint}"


# --- metadata ---------------------------------------------------------------------------------

# ObjectMeta as serialised by the API server: anything else under metadata is unknown.
OBJECT_META_FIELDS = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)

DEFAULT_NAMESPACE = "default"


def display_name(value: object) -> str:
    """A name from an unvalidated document, for messages only."""
    if isinstance(value, str) and value:
        # Escaped when unprintable: a name with a newline must not forge a log line.
        text = value if value.isprintable() else repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    return "<unnamed>" if value in (None, "") else "<invalid name>"


def object_ref(doc: dict[str, Any], kind: str, namespaced: bool, source: str) -> ObjectRef:
    """How messages name the object in doc, before anything in it is trusted."""
    meta = doc.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    name = display_name(meta.get("name"))
    if namespaced:
        namespace = meta.get("namespace")
        namespace = DEFAULT_NAMESPACE if namespace in (None, "") else display_name(namespace)
        name = f"{namespace}/{name}"
    return ObjectRef(kind, name, source)


def object_name(meta: Field,
                name_problem: Callable[[str], str | None] = dns1123_subdomain_problem) -> str:
    field = meta.get("name")
    name = field.required_string()
    problem = name_problem(name)
    if problem:
        field.fail(f"invalid value {quoted(name)}: {problem}")
    return name


def object_namespace(meta: Field) -> str:
    field = meta.get("namespace")
    namespace = field.optional_string() or DEFAULT_NAMESPACE
    problem = dns1123_label_problem(namespace)
    if problem:
        field.fail(f"invalid value {quoted(namespace)}: {problem}")
    return namespace


def labels(field: Field) -> dict[str, str]:
    """metadata.labels (or any label map): keys qualified names, values label values."""
    result = field.string_map()
    for key, value in result.items():
        entry = Field(field.ref, f"{field.path}[{key}]", value)
        key_problem = qualified_name_problem(key)
        if key_problem:
            entry.fail(f"invalid label key {quoted(key)}: {key_problem}")
        value_problem = label_value_problem(value)
        if value_problem:
            entry.fail(f"invalid value {quoted(value)}: {value_problem}")
    return result


# --- label selectors (metav1 ValidateLabelSelector) -------------------------------------------

SELECTOR_FIELDS = ("matchLabels", "matchExpressions")
REQUIREMENT_FIELDS = ("key", "operator", "values")


def label_selector(field: Field, strict: bool = True) -> LabelSelector:
    """A LabelSelector; absent or {} is the empty selector, which matches everything."""
    field.fields(SELECTOR_FIELDS if strict else None)
    match_labels = labels(field.get("matchLabels"))
    expressions = tuple(requirement(item, strict) for item in field.get("matchExpressions").items())
    return LabelSelector.of(match_labels, expressions)


def requirement(field: Field, strict: bool) -> Requirement:
    if field.is_absent:
        field.fail("must be an object with key and operator, not null")
    field.fields(REQUIREMENT_FIELDS if strict else None)
    key_field = field.get("key")
    key = key_field.required_string()
    key_problem = qualified_name_problem(key)
    if key_problem:
        key_field.fail(f"invalid value {quoted(key)}: {key_problem}")
    operator = selector_operator(field.get("operator"))
    values = requirement_values(field.get("values"))
    values_field = field.get("values")
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        values_field.fail("must be specified when operator is 'In' or 'NotIn'")
    if operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        values_field.fail("may not be specified when operator is 'Exists' or 'DoesNotExist'")
    # Sorted, as labels.NewRequirement does: the order of values has no meaning.
    return Requirement(key, operator, tuple(sorted(set(values))))


def selector_operator(field: Field) -> Operator:
    text = field.required_string()
    for operator in Operator:
        if operator.value == text:
            return operator
    supported = ", ".join(f'"{o.value}"' for o in Operator)
    field.fail(f"Unsupported value {quoted(text)}: supported values: {supported}")


def requirement_values(field: Field) -> list[str]:
    values = []
    for item in field.items():
        value = item.string()
        problem = label_value_problem(value)
        if problem:
            item.fail(f"invalid value {quoted(value)}: {problem}")
        values.append(value)
    return values


# --- NetworkPolicy ------------------------------------------------------------------------------

NETWORK_POLICY_API_VERSION = "networking.k8s.io/v1"
# `status` existed in networking.k8s.io/v1 from 1.24 to 1.27; exports from those clusters
# carry it, so it is accepted and ignored rather than called unknown.
POLICY_TOP_FIELDS = ("apiVersion", "kind", "metadata", "spec", "status")
POLICY_SPEC_FIELDS = ("podSelector", "policyTypes", "ingress", "egress")
INGRESS_RULE_FIELDS = ("ports", "from")
EGRESS_RULE_FIELDS = ("ports", "to")
PEER_FIELDS = ("podSelector", "namespaceSelector", "ipBlock")
IP_BLOCK_FIELDS = ("cidr", "except")
POLICY_PORT_FIELDS = ("protocol", "port", "endPort")


def network_policy(doc: dict[str, Any], source: str = "") -> NetworkPolicy:
    """Validates a NetworkPolicy document and returns it, defaulted as the API server does."""
    ref = object_ref(doc, "NetworkPolicy", namespaced=True, source=source)
    root = Field(ref, "", doc)
    root.fields(POLICY_TOP_FIELDS)
    meta = root.get("metadata")
    meta.fields(OBJECT_META_FIELDS)
    name = object_name(meta)
    namespace = object_namespace(meta)
    labels(meta.get("labels"))
    resource_version = meta.get("resourceVersion").optional_string() or ""
    spec = root.get("spec")
    spec.fields(POLICY_SPEC_FIELDS)
    ingress = tuple(policy_rule(rule, "from", INGRESS_RULE_FIELDS)
                    for rule in spec.get("ingress").items())
    egress = tuple(policy_rule(rule, "to", EGRESS_RULE_FIELDS)
                   for rule in spec.get("egress").items())
    return NetworkPolicy(
        namespace=namespace,
        name=name,
        pod_selector=label_selector(spec.get("podSelector")),
        policy_types=policy_types(spec.get("policyTypes"), has_egress_rules=bool(egress)),
        ingress=ingress,
        egress=egress,
        resource_version=resource_version,
    )


def policy_types(field: Field, has_egress_rules: bool) -> frozenset[PolicyType]:
    """Validated policyTypes; when absent or empty, Ingress, plus Egress when the policy
    has egress rules (SetDefaults_NetworkPolicy)."""
    items = field.items()
    if len(items) > len(PolicyType):
        field.fail("may not specify more than two policyTypes")
    seen: set[PolicyType] = set()
    for item in items:
        policy_type = parse_policy_type(item)
        if policy_type in seen:
            item.fail(f"Duplicate value {quoted(policy_type.value)}")
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
    """Exactly one of ipBlock, or podSelector and/or namespaceSelector."""
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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidr(field: Field) -> Network:
    """A CIDR such as 10.0.0.0/8; host bits are allowed and cleared, as the API server's
    sloppy parser accepts them. A bare address is not a CIDR."""
    text = field.required_string()
    if "/" not in text:
        field.fail(f"invalid CIDR {quoted(text)}: must have a prefix length, e.g. {text}/32")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        field.fail(f"invalid CIDR {quoted(text)}: {error}")


def ip_block(field: Field) -> IPBlock:
    field.fields(IP_BLOCK_FIELDS)
    cidr = parse_cidr(field.get("cidr"))
    excepts = []
    for item in field.get("except").items():
        excepted = parse_cidr(item)
        if not is_strict_subnet(excepted, cidr):
            item.fail(f"must be a strict subset of cidr {cidr}")
        excepts.append(str(excepted))
    return IPBlock(cidr=str(cidr), except_=tuple(excepts))


def is_strict_subnet(inner: Network, outer: Network) -> bool:
    return (inner.version == outer.version and inner.prefixlen > outer.prefixlen
            and inner.subnet_of(outer))  # type: ignore[arg-type]


def parse_protocol(field: Field) -> Protocol:
    """TCP when absent; an explicit empty string is not absent, and is rejected."""
    if field.is_absent:
        return Protocol.TCP
    text = field.string()
    for protocol in Protocol:
        if protocol.value == text:
            return protocol
    field.fail(f'Unsupported value {quoted(text)}: supported values: "TCP", "UDP", "SCTP"')


def policy_port(field: Field) -> PolicyPort:
    field.fields(POLICY_PORT_FIELDS)
    protocol = parse_protocol(field.get("protocol"))
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


def int_or_port_name(field: Field) -> int | str | None:
    """An IntOrString port: a number 1..65535 or an IANA_SVC_NAME."""
    value = field.value
    if value is None:
        return None
    if isinstance(value, str):
        problem = port_name_problem(value)
        if problem:
            field.fail(f"invalid value {quoted(value)}: {problem}")
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        field.fail(f"must be a port number or a port name, not {describe_type(value)}")
    problem = port_number_problem(value)
    if problem:
        field.fail(f"invalid value {value}: {problem}")
    return value


# --- pods -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PodSpecFields:
    """What Membrane reads from a PodSpec (a Pod's spec or a workload's template spec)."""

    node_name: str | None
    service_account: str
    ports: tuple[ContainerPort, ...]
    host_network: bool


def pod_spec(spec: Field) -> PodSpecFields:
    node_field = spec.get("nodeName")
    node_name = node_field.optional_string() or None
    if node_name is not None and dns1123_subdomain_problem(node_name):
        node_field.fail(f"invalid value {quoted(node_name)}: {_DNS1123_SUBDOMAIN_RULE}")
    return PodSpecFields(
        node_name=node_name,
        service_account=service_account(spec),
        ports=container_ports(spec),
        host_network=spec.get("hostNetwork").boolean(),
    )


def service_account(spec: Field) -> str:
    # serviceAccount is the deprecated alias the API server still honours.
    field = spec.get("serviceAccountName")
    if field.is_absent or field.value == "":
        field = spec.get("serviceAccount")
    name = field.optional_string() or "default"
    problem = dns1123_subdomain_problem(name)
    if problem:
        field.fail(f"invalid value {quoted(name)}: {problem}")
    return name


def container_ports(spec: Field) -> tuple[ContainerPort, ...]:
    """Every container's ports; port names must be unique across the pod."""
    ports: list[ContainerPort] = []
    names: set[str] = set()
    for container in spec.get("containers").items():
        if container.is_absent:
            container.fail("must be a container object, not null")
        for entry in container.get("ports").items():
            port = container_port(entry)
            if port.name is not None:
                if port.name in names:
                    entry.get("name").fail(f"Duplicate value {quoted(port.name)}")
                names.add(port.name)
            ports.append(port)
    return tuple(ports)


def required_port_number(field: Field, key: str) -> int:
    """field[key]: present, an integer, and a valid port number."""
    number_field = field.get(key)
    if number_field.is_absent:
        number_field.fail("Required value")
    number = number_field.integer()
    problem = port_number_problem(number)
    if problem:
        number_field.fail(f"invalid value {number}: {problem}")
    return number


def container_port(field: Field) -> ContainerPort:
    if field.is_absent:
        field.fail("must be a port object with containerPort, not null")
    number = required_port_number(field, "containerPort")
    name_field = field.get("name")
    name = name_field.optional_string() or None
    if name is not None:
        name_problem = port_name_problem(name)
        if name_problem:
            name_field.fail(f"invalid value {quoted(name)}: {name_problem}")
    return ContainerPort(port=number, protocol=parse_protocol(field.get("protocol")), name=name)


def ipv4_address(field: Field) -> str | None:
    """An IPv4 address, or None when absent: Membrane's datapath is IPv4 only."""
    text = field.optional_string()
    if not text:
        return None
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        field.fail(f"invalid value {quoted(text)}: must be an IPv4 address")
