"""Wire constants every layer shares: IP protocols and traffic directions.

One source for each: the datapath (bpf/lib/common.h), the policy map state, flows and the
CLIs all read these. tests/unit/test_c_mirrors.py checks them against the C and the
kernel's headers.
"""

from __future__ import annotations

from enum import IntEnum


class IPProtocol(IntEnum):
    """IANA protocol numbers the datapath decides on (IPv4 `protocol`, IPv6 next header)."""

    ICMP = 1
    TCP = 6
    UDP = 17
    ICMPV6 = 58
    SCTP = 132


# In a policy map entry: every protocol (and so every port).
ANY_PROTOCOL = 0

# How people and the Kubernetes API write them. NetworkPolicy ports take only the three
# port protocols; ICMP appears in flows, traces and map dumps.
PROTOCOL_NAMES: dict[int, str] = {
    ANY_PROTOCOL: "ANY",
    IPProtocol.ICMP: "ICMP",
    IPProtocol.TCP: "TCP",
    IPProtocol.UDP: "UDP",
    IPProtocol.ICMPV6: "ICMPv6",
    IPProtocol.SCTP: "SCTP",
}
PORT_PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")
PROTOCOL_NUMBERS: dict[str, int] = {name: number for number, name in PROTOCOL_NAMES.items()
                                    if number != ANY_PROTOCOL}


def protocol_name(number: int) -> str:
    """'TCP' for 6; the number itself for a protocol without a name here."""
    return PROTOCOL_NAMES.get(number, str(number))


def protocol_number(name: str) -> int:
    """6 for 'TCP' or 'tcp'; ValueError naming the choices otherwise."""
    for known, number in PROTOCOL_NUMBERS.items():
        if known.upper() == name.upper():
            return number
    raise ValueError(f"unknown protocol {name!r}: expected one of "
                     f"{', '.join(PROTOCOL_NUMBERS)}")


class Direction(IntEnum):
    """A direction as the datapath encodes it (policy keys, conntrack, events), seen from
    the local endpoint."""

    INGRESS = 0   # into the endpoint: decided at to-container (the veth's clsact egress)
    EGRESS = 1    # out of the endpoint: decided at from-container (clsact ingress)

    @property
    def label(self) -> str:
        return self.name
