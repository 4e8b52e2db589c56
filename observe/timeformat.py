"""The time formats `hubble observe --time-format` offers, by the same names.

    StampMilli              Jan _2 15:04:05.000        (the default)
    YearMonthDay            2006-01-02
    YearMonthDayHour        2006-01-02T15Z07:00
    YearMonthDayHourMinute  2006-01-02T15:04Z07:00
    RFC3339                 2006-01-02T15:04:05Z07:00
    RFC3339Milli            2006-01-02T15:04:05.000Z07:00
    RFC3339Micro            2006-01-02T15:04:05.000000Z07:00
    RFC3339Nano             2006-01-02T15:04:05.999999999Z07:00 (trailing zeros dropped)
    RFC1123Z                Mon, 02 Jan 2006 15:04:05 -0700

(Go's reference layouts: "Z07:00" is "Z" in UTC, else the offset as +hh:mm.) Times are
shown in the given zone, the local one by default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

DEFAULT = "StampMilli"


def _zone(when: dt.datetime) -> str:
    offset = when.utcoffset() or dt.timedelta(0)
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _fraction(nanos: int, digits: int) -> str:
    return f"{nanos // 10 ** (9 - digits):0{digits}d}"


def _nano(when: dt.datetime, nanos: int) -> str:
    frac = f"{nanos:09d}".rstrip("0")
    return f"{when:%Y-%m-%dT%H:%M:%S}{'.' + frac if frac else ''}{_zone(when)}"


Formatter = Callable[[dt.datetime, int], str]
FORMATS: dict[str, Formatter] = {
    "StampMilli": lambda w, n: f"{w:%b} {w.day:2d} {w:%H:%M:%S}.{_fraction(n, 3)}",
    "YearMonthDay": lambda w, n: f"{w:%Y-%m-%d}",
    "YearMonthDayHour": lambda w, n: f"{w:%Y-%m-%dT%H}{_zone(w)}",
    "YearMonthDayHourMinute": lambda w, n: f"{w:%Y-%m-%dT%H:%M}{_zone(w)}",
    "RFC3339": lambda w, n: f"{w:%Y-%m-%dT%H:%M:%S}{_zone(w)}",
    "RFC3339Milli": lambda w, n: f"{w:%Y-%m-%dT%H:%M:%S}.{_fraction(n, 3)}{_zone(w)}",
    "RFC3339Micro": lambda w, n: f"{w:%Y-%m-%dT%H:%M:%S}.{_fraction(n, 6)}{_zone(w)}",
    "RFC3339Nano": _nano,
    "RFC1123Z": lambda w, n: f"{w:%a, %d %b %Y %H:%M:%S %z}",
}


def local_zone() -> dt.tzinfo:
    return dt.datetime.now().astimezone().tzinfo or dt.timezone.utc


def format_ns(ns: int, layout: str = DEFAULT, tz: dt.tzinfo | None = None) -> str:
    """Nanoseconds since the epoch in one of FORMATS; ValueError names the known ones."""
    try:
        fmt = FORMATS[layout]
    except KeyError:
        raise ValueError(f"time format {layout!r}: use one of {', '.join(FORMATS)}") from None
    when = dt.datetime.fromtimestamp(ns // 1_000_000_000, tz=tz or local_zone())
    return fmt(when, ns % 1_000_000_000)
