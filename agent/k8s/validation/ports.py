"""Protocols and ports, as the API server defaults and validates them in NetworkPolicy
ports, container ports and Service ports."""

from __future__ import annotations

from agent.k8s.objects import Protocol
from agent.k8s.validation.fields import Field, describe_type, quoted
from agent.k8s.validation.names import port_name_problem, port_number_problem

_SUPPORTED = ", ".join(f'"{p.value}"' for p in Protocol)


def parse_protocol(field: Field, empty_is_tcp: bool) -> Protocol:
    """TCP when absent. An explicit "" is TCP where the Go field is a plain string that
    defaulting fills in (SetDefaults_ContainerPort, SetDefaults_Service:
    `empty_is_tcp`), and unsupported where it is a pointer that "" does not leave nil
    (NetworkPolicyPort.Protocol: ValidateNetworkPolicyPort)."""
    if field.is_absent:
        return Protocol.TCP
    text = field.string()
    if text == "" and empty_is_tcp:
        return Protocol.TCP
    for protocol in Protocol:
        if protocol.value == text:
            return protocol
    field.fail(f"Unsupported value {quoted(text)}: supported values: {_SUPPORTED}")


def int_or_port_name(field: Field) -> int | str | None:
    """An IntOrString port (ValidatePortNumOrName): a number 1..65535 (IsValidPortNum)
    or an IANA_SVC_NAME (IsValidPortName)."""
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


def required_port_number(field: Field, key: str) -> int:
    """field[key]: present, an integer, and IsValidPortNum."""
    number_field = field.get(key)
    if number_field.is_absent:
        number_field.fail("Required value")
    number = number_field.integer()
    problem = port_number_problem(number)
    if problem:
        number_field.fail(f"invalid value {number}: {problem}")
    return number
