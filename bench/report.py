"""Numbers into tables: percentiles, ratios, target verdicts, fixed-width text tables.

Pure functions only (no I/O beyond `render`'s return value), so tests/unit can check the
arithmetic the benchmark's conclusions rest on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

PASS = "PASS"
MISS = "MISS"
NA = "n/a"


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (the
    same definition as numpy's default), so p50 of [1, 2] is 1.5, not 1 or 2."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    ordered = sorted(samples)
    pos = (len(ordered) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """p50/p90/p99/max/mean and the count: what every latency cell is built from."""
    if not samples:
        return {"n": 0}
    return {"n": len(samples), "p50": percentile(samples, 50), "p90": percentile(samples, 90),
            "p99": percentile(samples, 99), "max": max(samples),
            "mean": sum(samples) / len(samples)}


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(value: float | None, base: float | None) -> float | None:
    """value / base, None when either is missing or the base is zero (no made-up ratios)."""
    if value is None or base is None or base == 0:
        return None
    return value / base


def at_least(value: float | None, target: float) -> str:
    if value is None:
        return NA
    return PASS if value >= target else MISS


def at_most(value: float | None, target: float) -> str:
    if value is None:
        return NA
    return PASS if value <= target else MISS


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r * 100:.1f}%"


def fmt_num(v: float | None, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 10_000 and not unit:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}{unit}"


@dataclass
class Table:
    """A titled table of strings; columns right-aligned except the first."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.headers):
            raise ValueError(f"{self.title}: row has {len(cells)} cells, "
                             f"table has {len(self.headers)} columns")
        self.rows.append(["-" if c is None else str(c) for c in cells])

    def render(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]

        def line(cells: Sequence[str]) -> str:
            out = [cells[0].ljust(widths[0])]
            out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
            return "  ".join(out).rstrip()

        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        parts = [self.title, rule, line(self.headers), rule]
        parts += [line(r) for r in self.rows]
        parts.append(rule)
        parts += [f"  {n}" for n in self.notes]
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "headers": self.headers, "rows": self.rows,
                "notes": self.notes}


def verdicts(targets: Iterable[tuple[str, str, str]]) -> Table:
    """(target, measured, PASS/MISS/n/a) triples -> the summary table."""
    t = Table("Targets", ["target", "measured", "verdict"])
    for name, measured, verdict in targets:
        t.add(name, measured, verdict)
    return t


def write_results(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")


def print_report(tables: Iterable[Table], targets: Iterable[tuple[str, str, str]]) -> None:
    """What every benchmark module prints when run alone: its tables, then its targets."""
    for table in tables:
        print(table.render())
    for target in targets:
        print(*target, sep="  |  ")
