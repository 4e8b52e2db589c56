"""`status` warns before a map is full, and for the two conntrack tables says what their
filling means (bpf/lib/conntrack.h): the oldest connections being evicted, or, for
ct_unreplied, connections not answered yet (someone flooding)."""

from __future__ import annotations

import pytest

from agent.datapath.interface import MapUsage
from agent.status import map_warning, nearly_full


@pytest.mark.parametrize("name, says", [
    ("conntrack", "the oldest connections are being evicted"),
    ("ct_unreplied", "connections not answered yet are being evicted"),
    ("policy", ""),
])
def test_a_nearly_full_map_is_a_warning_that_says_what_it_means(name: str, says: str) -> None:
    usage = MapUsage(name=name, entries=980, max_entries=1000)
    assert nearly_full(usage)
    warning = map_warning(usage)
    assert warning.startswith(f"{name} map 98% full")
    assert says in warning


def test_a_map_with_room_is_no_warning() -> None:
    assert not nearly_full(MapUsage(name="ct_unreplied", entries=10, max_entries=1000))
