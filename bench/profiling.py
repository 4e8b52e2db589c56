"""Optional cProfile around a benchmark worker: MBRB_PROFILE=<dir> writes <dir>/<name>.prof
and a text summary <dir>/<name>.txt (top functions by cumulative time), the evidence
docs/PERFORMANCE.md quotes where a target is missed."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
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


def serve_worker(args: argparse.Namespace, name: str, worker: Callable[[Any], Any]) -> bool:
    """A benchmark module's `worker` subcommand: runs `worker(args)` (profiled when asked)
    and prints its JSON result, the line bench.topology.run_worker reads. False when the
    command line asked for the report instead."""
    if getattr(args, "cmd", None) != "worker":
        return False
    print(json.dumps(profiled(name, worker, args)))
    return True
