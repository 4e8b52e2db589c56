"""A/B of two builds' per-packet cost: tests/datapath/prog_cost.py run alternately.

    .venv/bin/python -m tests.datapath.prog_ab OLD_CHECKOUT NEW_CHECKOUT [--rounds 6]
                     [--repeat 300000] [--runs 3]

Each round runs prog_cost once in each checkout (the order swapped every round, so a
slow spell of the shared machine lands on both), with PYTHONPATH pointing at it and its
bpf/ compiled. Prints, per row, the median over rounds of each build's median and the
difference: what a change saved, in ns per packet, on this machine at this hour.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

ROW = re.compile(r"^\s+(IPv\d .+?)\s+median\s+(\d+) ns/packet")


def run(checkout: str, repeat: int, runs: int) -> dict[str, int]:
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run([sys.executable, "-m", "tests.datapath.prog_cost", "--repeat",
                          str(repeat), "--runs", str(runs)], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True).stdout
    return {m.group(1).strip(): int(m.group(2))
            for m in map(ROW.match, out.splitlines()) if m}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=300_000)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    got: dict[str, dict[str, list[int]]] = {"old": {}, "new": {}}
    for r in range(a.rounds):
        order = (("old", a.old), ("new", a.new))
        for which, path in (order if r % 2 == 0 else order[::-1]):
            for row, ns in run(os.path.abspath(path), a.repeat, a.runs).items():
                got[which].setdefault(row, []).append(ns)
    print(f"{a.rounds} rounds alternated, {a.repeat:,} runs x {a.runs} each; "
          "median over rounds of each build's median (ns/packet)")
    for row in got["old"]:
        old, new = statistics.median(got["old"][row]), statistics.median(got["new"].get(row, [0]))
        print(f"  {row:45s} old {old:6.1f}  new {new:6.1f}  saved {old - new:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
