"""Map sizes on a real kernel: a changed size takes effect at start (the pinned map is
recreated, with a warning naming the cost; an unchanged map is reused with its contents),
status reports the kernel's size, and a full ipcache or cidr map still gets every entry
that fits in both maps before sync_cluster_maps raises."""

from __future__ import annotations

import logging
import os
from typing import Iterator

import pytest

from agent.datapath.bpf import BpfDatapath
from agent.datapath.pinsize import pinned_size
from agent.policy.mapstate import ClusterMaps
from core.errors import MapFullError
from tests.datapath.conftest import PIN_ROOT

WORLD = {"0.0.0.0/0": 2}


def cidrs(n: int) -> dict[str, int]:
    return {f"198.18.0.{i + 1}/32": (1 << 24) + i for i in range(n)}


def pods(n: int) -> dict[str, int]:
    return {**WORLD, **{f"10.9.0.{i + 1}/32": 300 + i for i in range(n)}}


@pytest.fixture
def pin_dir(request: pytest.FixtureRequest) -> Iterator[str]:
    path = f"{PIN_ROOT}/{request.node.name[:40]}"
    yield path
    BpfDatapath(node="sizes", pin_dir=path).close(unpin=True)   # removes the pins only


def test_a_changed_size_recreates_its_pinned_map_and_the_others_keep_their_contents(
        pin_dir: str, caplog: pytest.LogCaptureFixture) -> None:
    first = BpfDatapath(node="sizes", pin_dir=pin_dir, max_cidr=64, max_ipcache=64)
    first.start()
    first.sync_cluster_maps(ClusterMaps(pods(3), cidrs(10)))
    assert pinned_size(os.path.join(pin_dir, "cidr")) == 64
    first.close()                      # an agent restart: the pins stay
    second = BpfDatapath(node="sizes", pin_dir=pin_dir, max_cidr=128, max_ipcache=64)
    with caplog.at_level(logging.WARNING, logger="agent.datapath.pinsize"):
        second.start()
    try:
        # cidr6 takes cidr's size (bpf/lib/common.h): both are recreated.
        assert second.resized == {"cidr": (64, 128), "cidr6": (64, 128)}
        assert pinned_size(os.path.join(pin_dir, "cidr")) == 128
        assert "recreating it at 128" in caplog.text and "cidr" in caplog.text
        ipcache, cidr = second.dump_ipcache()
        assert ipcache == pods(3) and cidr == {}           # rebuilt by the first sync
        assert {m.name: m.max_entries for m in second.stats().maps}["cidr"] == 128
        assert second.sync_cluster_maps(ClusterMaps(pods(3), cidrs(100))) == 100
    finally:
        second.close()


def test_a_full_map_gets_every_entry_that_fits_in_both_maps_before_it_raises(
        pin_dir: str) -> None:
    dp = BpfDatapath(node="sizes", pin_dir=pin_dir, max_ipcache=4, max_cidr=8)
    dp.start()
    try:
        with pytest.raises(MapFullError, match="'ipcache' is full .*2 of 6 entries"):
            dp.sync_cluster_maps(ClusterMaps(pods(5), cidrs(3)))
        ipcache, cidr = dp.dump_ipcache()
        assert len(ipcache) == 4 and cidr == cidrs(3)      # the cidr map was synced too
        # An address moving to another identity still lands in the full map.
        moved = {**pods(5), "10.9.0.1/32": 999}
        with pytest.raises(MapFullError):
            dp.sync_cluster_maps(ClusterMaps(moved, cidrs(3)))
        assert dp.dump_ipcache()[0]["10.9.0.1/32"] == 999
    finally:
        dp.close()
