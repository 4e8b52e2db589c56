"""`python -m bench` (`make bench`): every benchmark of issue 6, tables, bench/results.json.

    --quick              shorter runs of everything (a few minutes)
    --only a,b           some of: datapath, programming, startup, events, memory
    --sizes 10,100,...   rule counts of the datapath benchmark
    --families 4,6       IP families the datapath benchmark measures (default both)
    --endpoints 100,...  endpoint counts of the programming benchmark
    --out PATH           where the JSON goes (default bench/results.json)

Needs root, bpffs and bcc (scripts/setup.sh). Every namespace is mbrb-<pid>-*, recorded
when created and deleted by that name at the end even on failure; a failing benchmark is
reported and the others run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from bench import datapath, events, memory, programming, startup
from bench.report import Table, verdicts, write_results
from bench.topology import remove_leftovers

NAMES = ("datapath", "programming", "startup", "events", "memory")
log = logging.getLogger("bench")


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default=",".join(NAMES))
    ap.add_argument("--sizes", default="")
    ap.add_argument("--families", default="4,6")
    ap.add_argument("--endpoints", default="")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")))
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    for noisy in ("agent", "observe", "identity"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if os.geteuid() != 0:
        print("bench: needs root (network namespaces, tc, BPF)", file=sys.stderr)
        return 2
    only = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = set(only) - set(NAMES)
    if unknown:
        print(f"bench: unknown benchmark(s) {sorted(unknown)}; choose from {NAMES}",
              file=sys.stderr)
        return 2

    dp_params = datapath.QUICK if a.quick else datapath.Params()
    if a.sizes:
        dp_params = replace(dp_params, sizes=tuple(int(s) for s in a.sizes.split(",")))
    dp_params = replace(dp_params, families=tuple(int(f) for f in a.families.split(",") if f))
    prog_params = programming.QUICK if a.quick else programming.Params()
    if a.endpoints:
        prog_params = replace(prog_params,
                              endpoints=tuple(int(s) for s in a.endpoints.split(",")))
    runs: dict[str, tuple[Callable[[], dict[str, Any]], Callable[..., Any]]] = {
        "datapath": (lambda: datapath.run(dp_params), datapath.tables),
        "programming": (lambda: programming.run(prog_params), programming.tables),
        "startup": (lambda: startup.run(a.quick), startup.tables),
        "events": (lambda: events.run(a.quick), events.tables),
        "memory": (lambda: memory.run(a.quick), memory.tables),
    }
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "quick": a.quick,
        "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                    "loadavg_start": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], text=True,
                              capture_output=True, cwd=Path(__file__).parents[1]).stdout.strip(),
    }
    all_tables: list[Table] = []
    targets: list[tuple[str, str, str]] = []
    try:
        for name in only:
            run, tables = runs[name]
            t0 = time.monotonic()
            log.info("running %s", name)
            try:
                res = run()
            except Exception as e:   # report it, run the others
                log.error("%s failed: %s", name, e)
                results[name] = {"error": str(e), "traceback": traceback.format_exc()}
                targets.append((f"{name} benchmark ran", f"failed: {e}"[:80], "MISS"))
                continue
            res["wall_seconds"] = time.monotonic() - t0
            results[name] = res
            tabs, tg = tables(res)
            all_tables += tabs
            targets += tg
            for tab in tabs:
                print(tab.render() + "\n", flush=True)
    finally:
        remove_leftovers()
    summary = verdicts(targets)
    results["targets"] = summary.to_dict()
    results["tables"] = [t.to_dict() for t in all_tables]
    results["machine"]["loadavg_end"] = os.getloadavg()
    print(summary.render())
    write_results(Path(a.out), results)
    print(f"\nresults: {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
