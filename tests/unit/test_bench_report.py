"""The arithmetic behind the benchmark's PASS/MISS lines (bench/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.report import (MISS, NA, PASS, Table, at_least, at_most, fmt_ratio, percentile,
                          ratio, summarize, verdicts, write_results)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2], 50) == 1.5
    assert percentile([5], 99) == 5
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([3, 1, 2], 0) == 1 and percentile([3, 1, 2], 100) == 3


def test_percentile_rejects_nothing_and_bad_q() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summarize() -> None:
    s = summarize([10.0, 20.0, 30.0, 40.0])
    assert s["n"] == 4 and s["p50"] == 25.0 and s["max"] == 40.0 and s["mean"] == 25.0
    assert summarize([]) == {"n": 0}


def test_ratio_and_verdicts_never_invent_numbers() -> None:
    assert ratio(95, 100) == 0.95
    assert ratio(None, 100) is None and ratio(1, 0) is None
    assert at_least(0.95, 0.95) == PASS and at_least(0.9499, 0.95) == MISS
    assert at_most(1.1, 1.1) == PASS and at_most(1.2, 1.1) == MISS
    assert at_least(None, 1) == NA and at_most(None, 1) == NA
    assert fmt_ratio(0.9512) == "95.1%" and fmt_ratio(None) == "-"


def test_table_renders_aligned_and_checks_width() -> None:
    t = Table("T", ["rules", "Gbit/s"])
    t.add(10, "17.2")
    t.add(10000, None)
    lines = t.render().splitlines()
    assert lines[0] == "T"
    assert lines[2].startswith("rules") and lines[2].endswith("Gbit/s")
    assert lines[4].endswith("17.2") and lines[5].endswith("-")
    assert len({len(lines[1]), len(lines[3])}) == 1
    with pytest.raises(ValueError):
        t.add(1)


def test_verdict_table_and_results_json(tmp_path: Path) -> None:
    t = verdicts([("events/s >= 200k", "250,000", PASS)])
    assert t.rows == [["events/s >= 200k", "250,000", PASS]]
    out = tmp_path / "r.json"
    write_results(out, {"targets": t.to_dict()})
    assert json.loads(out.read_text())["targets"]["rows"][0][2] == PASS


def _mode(bulk_ratio: float, crr_p99: float, rr_p99_ratio: float = 1.0) -> dict[str, object]:
    return {"gbps_median": 10.0, "gbps_ratio": 1.0, "bulk_gbps": 10.0 * bulk_ratio,
            "bulk_ratio": bulk_ratio, "rr_us": summarize([70.0, 100.0]),
            "rr_p99_ratio": rr_p99_ratio, "crr_us": {"p50": crr_p99 / 2, "p99": crr_p99}}


def _size(mem: float, ipt: float, ctl: float, mem_crr: float = 400.0,
          ipt_crr: float = 900.0, mem_p99: float = 1.0) -> dict[str, object]:
    return {"loadavg": 1.0, "base": _mode(1.0, 400.0), "ctl": _mode(ctl, 400.0),
            "mem": _mode(mem, mem_crr, mem_p99), "ipt": _mode(ipt, ipt_crr)}


def test_datapath_ahead_of_iptables_allows_only_gaps_within_the_controls_resolution() -> None:
    from bench.datapath import ahead_of_iptables, bulk_resolution

    # The control strayed 3% at one size and 0.5% at the other: the run resolves 3%.
    run = {"sizes": {"1000": _size(mem=0.98, ipt=1.00, ctl=1.03),
                     "10000": _size(mem=0.98, ipt=1.00, ctl=1.005)}}
    assert bulk_resolution(run) == pytest.approx(0.03)
    assert ahead_of_iptables(run["sizes"]["10000"], 0.03)  # type: ignore[arg-type]
    # The same 2% gap in a run whose control never strayed past 0.5%: 1% floor, behind.
    quiet = {"sizes": {"10000": _size(mem=0.98, ipt=1.00, ctl=1.005)}}
    assert bulk_resolution(quiet) == pytest.approx(0.01)
    assert not ahead_of_iptables(quiet["sizes"]["10000"], 0.01)  # type: ignore[arg-type]
    # New connections slower than the iptables peer is never ahead.
    assert not ahead_of_iptables(_size(mem=1.0, ipt=1.0, ctl=1.0,  # type: ignore[arg-type]
                                       mem_crr=1000.0, ipt_crr=900.0), 0.05)


def test_datapath_targets_judge_membrane_on_the_interleaved_ratios() -> None:
    from bench.datapath import tables

    results = {"sizes": {"10": _size(mem=0.97, ipt=0.99, ctl=1.0),
                         "1000": _size(mem=0.94, ipt=0.99, ctl=1.0, mem_p99=1.12)}}
    [table], targets = tables(results)
    verdict = {name.split(",")[0]: v for name, _, v in targets}
    assert verdict["throughput >= 95% of baseline"] == MISS      # 94% at 1,000 rules
    assert verdict["RR p99 within 10% of baseline"] == MISS      # 112%
    assert "94.0%" in targets[0][1]
    assert len(table.rows) == 8                                  # 2 sizes x 4 modes


def test_datapath_judges_ipv6_against_the_ipv4_targets_in_lines_of_its_own() -> None:
    from bench.datapath import tables

    results = {"sizes": {"1000": _size(mem=0.97, ipt=0.99, ctl=1.0)},
               "sizes6": {"1000": _size(mem=0.93, ipt=0.99, ctl=1.0, mem_p99=1.05)}}
    [table], targets = tables(results)
    verdict = {name.split(",")[0]: v for name, _, v in targets}
    assert verdict["throughput >= 95% of baseline"] == PASS
    assert verdict["IPv6: throughput >= 95% of baseline"] == MISS    # 93% over IPv6
    assert verdict["IPv6: RR p99 within 10% of baseline"] == PASS
    assert [name for name, _, _ in targets if name.startswith("IPv6: ")] == \
        [f"IPv6: {name}" for name, _, _ in targets[:6]]
    assert [row[1] for row in table.rows] == ["v4"] * 4 + ["v6"] * 4
