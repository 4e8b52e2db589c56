"""bpf/lib/drop.h, observe/reasons.py and the generated flow.DropReason agree: every
reason the datapath emits has Hubble's name and number in all three."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from observe.gen.flow import flow_pb2 as fpb
from observe.reasons import DropReason, describe

DROP_H = Path(__file__).resolve().parents[2] / "bpf" / "lib" / "drop.h"
_DEFINE = re.compile(
    r"^#define\s+DROP_(\w+)\s+(\d+)\s*/\*\s*([A-Z0-9_]+):\s*(.+?)\s*\*/\s*$")


def drop_defines() -> dict[str, str]:
    """C define name ("DROP_POLICY") -> the Hubble name its comment gives."""
    return {f"DROP_{m.group(1)}": m.group(3) for m in map(_DEFINE.match,
                                                           DROP_H.read_text().splitlines())
            if m}


def parse_drop_h() -> dict[str, tuple[int, str]]:
    """Hubble name -> (code, description), from each define's line."""
    reasons = {}
    for line in DROP_H.read_text().splitlines():
        m = _DEFINE.match(line)
        if m:
            reasons[m.group(3)] = (int(m.group(2)), m.group(4))
    return reasons


def test_drop_h_defines_reasons_each_with_its_hubble_name() -> None:
    defines = [line for line in DROP_H.read_text().splitlines()
               if re.match(r"#define\s+DROP_\w+\s+\d+", line)
               and not line.split()[1] == "DROP_REASON_MAX"]
    assert len(parse_drop_h()) == len(defines) >= 5


def test_every_c_reason_has_the_same_python_name_code_and_description() -> None:
    py = {r.name: (int(r), r.description) for r in DropReason}
    assert py == parse_drop_h()


@pytest.mark.parametrize("reason", list(DropReason), ids=lambda r: r.name)
def test_each_reason_has_hubbles_name_and_number_in_the_generated_enum(
        reason: DropReason) -> None:
    assert fpb.DropReason.Value(reason.name) == int(reason)


@pytest.mark.parametrize("reason", list(DropReason), ids=lambda r: r.name)
def test_reason_codes_fit_the_u8_in_events_and_the_counter_array(reason: DropReason) -> None:
    assert 0 < reason < 256


def test_190_is_no_longer_ours_it_is_hubbles_ct_no_map_found() -> None:
    assert 190 not in set(DropReason)
    assert fpb.DropReason.Name(fpb.DropReason.ValueType(190)) == "CT_NO_MAP_FOUND"


def test_unknown_codes_are_named_by_number_not_hidden() -> None:
    assert describe(133) == "Policy denied"
    assert describe(7) == "Unknown drop reason 7"
