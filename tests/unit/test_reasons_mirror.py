"""observe/reasons.py mirrors bpf/lib/drop.h exactly: same names, codes, descriptions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from observe.reasons import DropReason, describe

DROP_H = Path(__file__).resolve().parents[2] / "bpf" / "lib" / "drop.h"
_DEFINE = re.compile(r"^#define\s+DROP_(\w+)\s+(\d+)\s*/\*\s*(.+?)\s*\*/\s*$")


def parse_drop_h() -> dict[str, tuple[int, str]]:
    reasons = {}
    for line in DROP_H.read_text().splitlines():
        m = _DEFINE.match(line)
        if m:
            reasons[m.group(1)] = (int(m.group(2)), m.group(3))
    return reasons


def test_drop_h_defines_reasons() -> None:
    assert len(parse_drop_h()) >= 5


def test_every_c_reason_has_the_same_python_name_code_and_description() -> None:
    c = parse_drop_h()
    py = {r.name: (int(r), r.description) for r in DropReason}
    assert py == c


@pytest.mark.parametrize("reason", list(DropReason), ids=lambda r: r.name)
def test_reason_codes_fit_the_u8_in_events_and_the_counter_array(reason: DropReason) -> None:
    assert 0 < reason < 256


def test_unknown_codes_are_named_by_number_not_hidden() -> None:
    assert describe(133) == "Policy denied"
    assert describe(7) == "Unknown drop reason 7"
