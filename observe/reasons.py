"""Drop reasons: Hubble's names and numbers for what bpf/lib/drop.h emits.

`DropReason` mirrors every DROP_* of drop.h by the Hubble enum name written in its
comment, its code and the text Hubble prints for it; the generated flow.proto enum has
each name with the same number. tests/unit/test_reasons_mirror.py parses drop.h and
compares all three, so a code added in C without its Python name (or the other way
round) fails the tests. Pure Python.
"""

from __future__ import annotations

from enum import IntEnum


class DropReason(IntEnum):
    INVALID_SOURCE_IP = 132
    POLICY_DENIED = 133
    INVALID_PACKET_DROPPED = 134
    CT_TRUNCATED_OR_INVALID_HEADER = 135
    UNSUPPORTED_L3_PROTOCOL = 139
    MISSED_TAIL_CALL = 140
    NO_MATCHING_LOCAL_CONTAINER_FOUND = 152
    CT_MAP_INSERTION_FAILED = 155
    INVALID_IPV6_EXTENSION_HEADER = 156

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[DropReason, str] = {
    DropReason.INVALID_SOURCE_IP: "Invalid source ip",
    DropReason.POLICY_DENIED: "Policy denied",
    DropReason.INVALID_PACKET_DROPPED: "Invalid packet",
    DropReason.CT_TRUNCATED_OR_INVALID_HEADER: "CT: Truncated or invalid header",
    DropReason.UNSUPPORTED_L3_PROTOCOL: "Unsupported L3 protocol",
    DropReason.MISSED_TAIL_CALL: "Missed tail call",
    DropReason.NO_MATCHING_LOCAL_CONTAINER_FOUND: "No matching local container found",
    DropReason.CT_MAP_INSERTION_FAILED: "CT: Map insertion failed",
    DropReason.INVALID_IPV6_EXTENSION_HEADER: "Invalid IPv6 extension header",
}


def describe(code: int) -> str:
    """Description of a drop reason code; unknown codes are named by number, never
    hidden (an older agent reading a newer datapath)."""
    try:
        return DropReason(code).description
    except ValueError:
        return f"Unknown drop reason {code}"
