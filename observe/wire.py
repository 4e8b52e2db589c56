"""Protocol buffer wire format, the little of it the flow encoder writes by hand.

A serialized message is the concatenation of its fields, each a tag (field number << 3
| wire type, as a varint) and a value, in any order: parsers accept fields in any order
and merge repeated occurrences of a sub-message. That is what lets observe.flow build
the parts of a flow that do not change from one packet to the next once (serialized by
protobuf itself) and put a fresh timestamp in front of them per packet, instead of
building a message field by field per flow.

Only varints and length-delimited fields are written here; everything else is
protobuf's own serialization.
"""

from __future__ import annotations

LEN = 2      # wire type of length-delimited fields (strings, bytes, sub-messages)
VARINT = 0

# Varints by 14-bit chunks as ready-made bytes: whole for values below 2**14 (lengths of
# flows and their parts), and with the continuation bit on both bytes for the low
# chunks of larger ones (nanoseconds, seconds), so no varint loops in Python.
_CHUNK = 1 << 14


def _varint_slow(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint of a negative number {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# SMALL[n] is the varint of n < 2**14, for callers that know their value is small.
SMALL: list[bytes] = [_varint_slow(i) for i in range(_CHUNK)]
_CONTINUED: list[bytes] = [bytes(((i & 0x7F) | 0x80, (i >> 7) | 0x80)) for i in range(_CHUNK)]


def varint(value: int) -> bytes:
    """The varint encoding of a non-negative integer."""
    if value < _CHUNK:
        return SMALL[value]
    high = value >> 14
    if high < _CHUNK:
        return _CONTINUED[value & 0x3FFF] + SMALL[high]
    if high >> 14 < _CHUNK:
        return _CONTINUED[value & 0x3FFF] + _CONTINUED[high & 0x3FFF] + SMALL[high >> 14]
    return _varint_slow(value)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A sub-message, string or bytes field: tag, length, payload."""
    return tag(field, LEN) + varint(len(payload)) + payload


class TimestampEncoder:
    """google.protobuf.Timestamp{seconds, nanos} from nanoseconds since the epoch.

    The seconds part changes once a second, so its bytes are kept between calls (as one
    tuple, replaced whole: several threads may share an encoder); the nanos part is
    written each time."""

    __slots__ = ("_second",)

    def __init__(self) -> None:
        self._second: tuple[int, bytes] = (-1, b"")

    def encode(self, ns: int) -> bytes:
        second, nanos = divmod(ns, 1_000_000_000)
        known, second_bytes = self._second
        if second != known:
            second_bytes = b"\x08" + varint(second) if second else b""
            self._second = (second, second_bytes)
        if not nanos:
            return second_bytes
        return second_bytes + b"\x10" + varint(nanos)
