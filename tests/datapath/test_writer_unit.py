"""The map writer without a kernel: port ranges as LPM prefixes, diffs, order, full maps.

Pure (no root): the writer talks to a dict-backed map with the same interface."""

from __future__ import annotations

import errno
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.datapath import layout
from agent.datapath.writer import (EntryValue, PolicyMapKey, PolicyWriter, expand, port_prefixes,
                                   read_prefix_map, sync_prefix_map)
from core.errors import MapFullError
from agent.policy.mapstate import Direction, EndpointPolicy, MatchType, PolicyKey

IN, EG = Direction.INGRESS, Direction.EGRESS


class DictMap:
    def __init__(self, name: str = "policy", max_entries: int = 1000) -> None:
        self.name = name
        self.max_entries = max_entries
        self.data: dict[bytes, tuple[Any, Any]] = {}
        self.log: list[tuple[str, bytes]] = []

    def update(self, key: Any, value: Any) -> None:
        k = bytes(key)
        if k not in self.data and len(self.data) >= self.max_entries:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.data[k] = (type(key).from_buffer_copy(k), type(value).from_buffer_copy(bytes(value)))
        self.log.append(("update", k))

    def delete(self, key: Any) -> bool:
        self.log.append(("delete", bytes(key)))
        return self.data.pop(bytes(key), None) is not None

    def items(self) -> list[tuple[Any, Any]]:
        return list(self.data.values())


@pytest.mark.parametrize("low,high,expected", [
    (80, 80, [(80, 16)]),
    (0, 65535, [(0, 0)]),
    (8080, 8081, [(8080, 15)]),
    (1024, 2047, [(1024, 6)]),
    (79, 81, [(79, 16), (80, 15)]),
], ids=["one port", "every port", "an aligned pair", "an aligned block",
        "an unaligned range"])
def test_port_ranges_become_aligned_prefixes(low: int, high: int,
                                             expected: list[tuple[int, int]]) -> None:
    assert port_prefixes(low, high) == expected


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_prefixes_cover_exactly_the_range_with_at_most_thirty_blocks(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    blocks = port_prefixes(low, high)
    covered = []
    for port, bits in blocks:
        size = 1 << (16 - bits)
        assert port % size == 0
        covered.append((port, port + size - 1))
    assert covered[0][0] == low and covered[-1][1] == high
    assert all(x[1] + 1 == y[0] for x, y in zip(covered, covered[1:]))
    assert len(blocks) <= 30


def test_expand_uses_prefix_56_for_any_protocol_and_64_for_every_port() -> None:
    pol = EndpointPolicy(ingress_enforced=True, entries=frozenset({
        PolicyKey(IN, 300, 0), PolicyKey(IN, 301, 6), PolicyKey(EG, 0, 17, 53, 53)}))
    got = expand(9, pol)
    assert got == {
        PolicyMapKey(9, 0, 300, 0, 0, 56): EntryValue(MatchType.L3_ONLY),
        PolicyMapKey(9, 0, 301, 6, 0, 64): EntryValue(MatchType.L3_ONLY),
        PolicyMapKey(9, 1, 0, 17, 53, 80): EntryValue(MatchType.L4_ONLY),
    }


def test_kernel_keys_round_trip_through_ctypes_with_a_big_endian_port() -> None:
    mk = PolicyMapKey(9, 1, 300, 6, 8080, 80)
    c = mk.to_c()
    assert bytes(c)[12:14] == (8080).to_bytes(2, "big")
    assert PolicyMapKey.from_c(c) == mk
    assert mk.to_policy_key() == PolicyKey(EG, 300, 6, 8080, 8080)


def test_sync_writes_only_the_difference_and_deletes_first() -> None:
    m = DictMap()
    w = PolicyWriter(m)
    a = PolicyKey(IN, 300, 6, 80, 80)
    b = PolicyKey(IN, 301, 6, 80, 80)
    c = PolicyKey(IN, 302, 6, 80, 80)
    assert w.sync(1, EndpointPolicy(True, False, frozenset({a, b}))).added == 2
    m.log.clear()
    res = w.sync(1, EndpointPolicy(True, False, frozenset({b, c})))
    assert (res.added, res.deleted, res.changed) == (1, 1, 0)
    assert [op for op, _ in m.log] == ["delete", "update"]
    assert w.sync(1, EndpointPolicy(True, False, frozenset({b, c}))).writes == 0


def test_sync_leaves_other_endpoints_alone_and_reads_pinned_state_once() -> None:
    m = DictMap()
    PolicyWriter(m).sync(1, EndpointPolicy(True, False, frozenset({PolicyKey(IN, 5, 6)})))
    w = PolicyWriter(m)   # a restarted agent: diff against what the kernel holds
    assert w.sync(2, EndpointPolicy(True, False, frozenset({PolicyKey(IN, 5, 6)}))).added == 1
    assert w.sync(1, EndpointPolicy(True, False, frozenset({PolicyKey(IN, 5, 6)}))).writes == 0
    assert len(m.data) == 2


def test_a_full_map_raises_map_full_after_applying_the_deletes() -> None:
    m = DictMap(max_entries=3)
    w = PolicyWriter(m)
    w.sync(4, EndpointPolicy(True, False, frozenset({PolicyKey(IN, 1, 6, 80, 80)})))
    want = EndpointPolicy(True, False, frozenset(PolicyKey(IN, 10 + i, 6, 443, 443)
                                                 for i in range(5)))
    with pytest.raises(MapFullError, match=r"endpoint 4.*'policy' is full"):
        w.sync(4, want, "endpoint 4")
    keys = {PolicyMapKey.from_c(k).peer for k, _ in m.items()}
    assert 1 not in keys and len(keys) == 3


def test_prefix_maps_sync_by_difference() -> None:
    m = DictMap("ipcache")
    assert sync_prefix_map(m, {"10.0.0.1/32": 300, "0.0.0.0/0": 2}).added == 2
    res = sync_prefix_map(m, {"10.0.0.1/32": 301, "10.0.0.2": 302, "0.0.0.0/0": 2})
    assert (res.added, res.changed, res.deleted) == (1, 1, 0)
    assert read_prefix_map(m) == {"10.0.0.1/32": 301, "10.0.0.2/32": 302, "0.0.0.0/0": 2}
    k = layout.prefix_key("10.1.2.0/24")
    assert (k.prefixlen, layout.be32_to_ip(k.addr)) == (24, "10.1.2.0")
