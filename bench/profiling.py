"""Optional cProfile around a benchmark worker: MBRB_PROFILE=<dir> writes <dir>/<name>.prof
and a text summary <dir>/<name>.txt (top functions by cumulative time), the evidence
docs/PERFORMANCE.md quotes where a target is missed."""

from __future__ import annotations

import cProfile
import io
import os
import pstats
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def profiled(name: str, fn: Callable[..., T], *args: Any) -> T:
    out_dir = os.environ.get("MBRB_PROFILE")
    if not out_dir:
        return fn(*args)
    os.makedirs(out_dir, exist_ok=True)
    prof = cProfile.Profile()
    try:
        return prof.runcall(fn, *args)
    finally:
        prof.dump_stats(os.path.join(out_dir, f"{name}.prof"))
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(40)
        with open(os.path.join(out_dir, f"{name}.txt"), "w") as f:
            f.write(buf.getvalue())
