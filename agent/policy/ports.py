"""NetworkPolicyPort -> the (protocol, port range) triples a map entry carries.

No ports in a rule means every protocol and every port (`ANY_PORTS`). A port entry
without a port number means every port *of its protocol* (TCP when omitted), so
`ports: [{}]` allows any TCP port and nothing else. A named port is resolved on pods:
the name and the protocol must both match, or it resolves to nothing.
"""

from __future__ import annotations

from typing import Iterable

from core.protocols import ANY_PROTOCOL, protocol_name
from agent.k8s.objects import Pod, PolicyPort

# (IP protocol number or ANY_PROTOCOL, first port, last port), inclusive.
PortRange = tuple[int, int, int]

ANY_PORTS: PortRange = (ANY_PROTOCOL, 0, 65535)


def is_named(port: PolicyPort) -> bool:
    return isinstance(port.port, str)


def numeric_range(port: PolicyPort) -> PortRange:
    """The range of a port entry that is not named."""
    proto = port.protocol.number
    if port.port is None:
        return proto, 0, 65535
    if isinstance(port.port, str):
        raise ValueError(f"named port {port.port!r} needs pods to resolve against")
    return proto, port.port, port.end_port if port.end_port is not None else port.port


def named_on(port: PolicyPort, pods: Iterable[Pod]) -> set[PortRange]:
    """What a named port resolves to on these pods (a union: replicas may differ)."""
    assert isinstance(port.port, str)
    found: set[PortRange] = set()
    for pod in pods:
        number = pod.named_port(port.port, port.protocol)
        if number is not None:
            found.add((port.protocol.number, number, number))
    return found


def describe_port(port: PolicyPort | None) -> str:
    if port is None:
        return "any protocol and port"
    proto = port.protocol.value
    if port.port is None:
        return f"{proto} any port"
    if isinstance(port.port, str):
        return f"{proto} named port {port.port!r}"
    if port.end_port is not None and port.end_port != port.port:
        return f"{proto}/{port.port}-{port.end_port}"
    return f"{proto}/{port.port}"


def describe_range(protocol: int, low: int, high: int) -> str:
    if protocol == ANY_PROTOCOL:
        return "any protocol and port"
    name = protocol_name(protocol)
    if (low, high) == (0, 65535):
        return f"{name} any port"
    return f"{name}/{low}" if low == high else f"{name}/{low}-{high}"


def port_blocks(low: int, high: int) -> list[tuple[int, int]]:
    """Inclusive port range -> [(first port, prefix bits over the 16-bit port)], the
    fewest power-of-two aligned blocks that cover it exactly (80-8080 -> 14 blocks): one
    policy map entry each (agent/datapath/writer.py)."""
    if not 0 <= low <= high <= 65535:
        raise ValueError(f"bad port range {low}-{high}")
    out: list[tuple[int, int]] = []
    while low <= high:
        size = (low & -low) if low else 1 << 16
        while size > high - low + 1:
            size >>= 1
        out.append((low, 16 - (size.bit_length() - 1)))
        low += size
    return out


def map_entries(protocol: int, low: int, high: int) -> int:
    """Policy map entries one (protocol, port range) takes per peer: any protocol or
    every port is one prefix, a range its port blocks."""
    if protocol == ANY_PROTOCOL or (low, high) == (0, 65535):
        return 1
    return len(port_blocks(low, high))
