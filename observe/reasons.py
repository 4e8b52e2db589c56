"""Drop reasons, mirrored by value and description from bpf/lib/drop.h (the source).

tests/unit/test_reasons_mirror.py parses drop.h and compares, so a code added in C
without its Python name (or the other way round) fails the tests. Pure Python.
"""

from __future__ import annotations

from enum import IntEnum


class DropReason(IntEnum):
    INVALID_SIP = 132
    POLICY = 133
    INVALID = 134
    CT_INVALID_HDR = 135
    UNSUPPORTED_L3 = 139
    CT_MAP_INSERTION = 155
    INVALID_EXTHDR = 156
    NO_ENDPOINT = 190

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS: dict[DropReason, str] = {
    DropReason.INVALID_SIP: "Invalid source ip",
    DropReason.POLICY: "Policy denied",
    DropReason.INVALID: "Invalid packet",
    DropReason.CT_INVALID_HDR: "CT: Truncated or invalid header",
    DropReason.UNSUPPORTED_L3: "Unsupported L3 protocol",
    DropReason.CT_MAP_INSERTION: "CT: Map insertion failed",
    DropReason.INVALID_EXTHDR: "Invalid IPv6 extension header",
    DropReason.NO_ENDPOINT: "Unknown endpoint",
}


def describe(code: int) -> str:
    """Description of a drop reason code; unknown codes are named by number, never
    hidden (an older agent reading a newer datapath)."""
    try:
        return DropReason(code).description
    except ValueError:
        return f"Unknown drop reason {code}"
