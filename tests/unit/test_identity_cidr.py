"""CIDR identities: node-local numbers for ipBlock prefixes, from 1<<24."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import AllocationError
from identity.cidr import CidrAllocator
from identity.labels import LabelSet
from identity.reserved import MIN_CIDR_IDENTITY, is_cidr


class FakeClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cidr_identities_start_at_1_shl_24() -> None:
    a = CidrAllocator()
    first = a.allocate_prefix("10.0.0.0/24")
    assert first.id == MIN_CIDR_IDENTITY == 1 << 24
    assert is_cidr(first.id)
    assert first.labels.lines() == ["cidr:10.0.0.0/24"]
    assert a.allocate_prefix("10.0.1.0/24").id == (1 << 24) + 1


@pytest.mark.parametrize("same", ["10.0.0.0/24", "10.0.0.9/24"],
                         ids=["the network itself", "a host address with the same mask"])
def test_one_network_gets_one_number_however_it_is_written(same: str) -> None:
    a = CidrAllocator()
    assert a.allocate_prefix(same) == a.allocate_prefix("10.0.0.0/24")
    assert a.allocate(LabelSet.parse([f"cidr:{same}"])) == a.lookup_prefix("10.0.0.0/24")


def test_an_except_prefix_gets_its_own_number() -> None:
    a = CidrAllocator()
    assert a.allocate_prefix("10.0.0.0/16") != a.allocate_prefix("10.0.5.0/24")


def test_cidr_numbers_are_stable_across_a_restart(tmp_path: Path) -> None:
    a = CidrAllocator(tmp_path)
    numbers = [a.allocate_prefix(p).id for p in ("10.0.0.0/24", "0.0.0.0/0", "1.2.3.4/32")]
    a.close()
    b = CidrAllocator(tmp_path)
    assert [b.allocate_prefix(p).id for p in ("1.2.3.4/32", "10.0.0.0/24", "0.0.0.0/0")] \
        == [numbers[2], numbers[0], numbers[1]]


def test_an_unused_prefix_is_freed_after_its_grace_period() -> None:
    clock = FakeClock()
    a = CidrAllocator(None, grace_seconds=10, clock=clock)
    ident = a.allocate_prefix("10.0.0.0/24")
    a.allocate_prefix("10.0.0.0/24")
    a.release(ident)
    clock.now = 100
    assert a.collect_garbage() == []
    a.release(ident)
    clock.now = 109
    assert a.collect_garbage() == []
    clock.now = 110
    assert a.collect_garbage() == [ident]
    assert a.lookup(ident.id) is None
    assert a.allocate_prefix("192.168.0.0/16").id == ident.id


@pytest.mark.parametrize("bad", [
    LabelSet.parse(["k8s:app=web"]),
    LabelSet.parse(["cidr:10.0.0.0/24", "cidr:10.1.0.0/24"]),
], ids=["pod labels", "two prefixes at once"])
def test_only_single_prefix_label_sets_get_cidr_identities(bad: LabelSet) -> None:
    with pytest.raises(AllocationError, match="exactly one"):
        CidrAllocator().allocate(bad)


def test_a_malformed_prefix_is_a_clear_allocation_error() -> None:
    with pytest.raises(AllocationError, match="not an IP prefix"):
        CidrAllocator().allocate_prefix("10.0.0.0/33")
    assert CidrAllocator().lookup_prefix("nonsense") is None


def test_an_ipv6_prefix_gets_one_number_however_it_is_spelled() -> None:
    cidrs = CidrAllocator()
    first = cidrs.allocate_prefix("fd00:10:244::7/48")
    assert first.labels.lines() == ["cidr:fd00-10-244--0/48"]
    assert cidrs.allocate(first.labels) == first                 # its own label reads back
    assert cidrs.lookup_prefix("fd00:10:244::/48") == first
    assert cidrs.allocate_prefix("fd00:10:245::/48") != first


def test_label_and_cidr_state_share_a_directory(tmp_path: Path) -> None:
    from identity.local import LocalAllocator

    with LocalAllocator(tmp_path) as labels, CidrAllocator(tmp_path) as cidrs:
        assert labels.allocate(LabelSet.parse(["k8s:app=web"])).id == 256
        assert cidrs.allocate_prefix("10.0.0.0/8").id == 1 << 24


def test_on_flush_cidr_numbers_are_written_at_flush_and_survive_a_restart(
        tmp_path: Path) -> None:
    from identity.cidr import STATE_FILE

    a = CidrAllocator(tmp_path, persist="on_flush")
    numbers = [a.allocate_prefix(p).id for p in ("10.0.0.0/24", "0.0.0.0/0")]
    assert not (tmp_path / STATE_FILE).exists() and a.dirty
    a.flush()
    assert (tmp_path / STATE_FILE).exists() and not a.dirty
    a.allocate_prefix("192.0.2.0/24")    # never flushed: lost in the crash below
    lock = a._table._lock_file
    assert lock is not None
    lock.close()                          # a crash: no flush, the lock let go
    a._table._lock_file = None
    b = CidrAllocator(tmp_path, persist="on_flush")
    assert [b.lookup_prefix(p).id for p in ("10.0.0.0/24", "0.0.0.0/0")] == numbers
    assert b.lookup_prefix("192.0.2.0/24") is None
    b.close()


def test_cidr_allocator_default_persists_immediately(tmp_path: Path) -> None:
    from identity.cidr import STATE_FILE

    a = CidrAllocator(tmp_path)
    a.allocate_prefix("10.0.0.0/24")
    assert (tmp_path / STATE_FILE).exists() and not a.dirty
    a.close()
