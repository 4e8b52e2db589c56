"""The local allocator: numbers from 256, stable across restarts, freed after a grace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from core.errors import AllocationError
from identity import table
from identity.allocator import Allocator, Identity
from identity.labels import LabelSet, decode_labels
from identity.local import STATE_FILE, LocalAllocator
from identity.reserved import MIN_LABEL_IDENTITY, ReservedIdentity
from tests.identity_helpers import FakeClock, labels, race


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make(tmp_path: Path, clock: FakeClock) -> Callable[..., LocalAllocator]:
    def build(**kwargs: object) -> LocalAllocator:
        options: dict[str, object] = {"grace_seconds": 60.0, "clock": clock}
        options.update(kwargs)
        return LocalAllocator(tmp_path, **options)  # type: ignore[arg-type]
    return build


def test_it_satisfies_the_allocator_protocol(tmp_path: Path) -> None:
    allocator: Allocator = LocalAllocator(tmp_path)
    assert allocator.identities() == []


def test_label_identities_start_at_256_and_one_label_set_gets_one_number(
        make: Callable[..., LocalAllocator]) -> None:
    a = make()
    first = a.allocate(labels("app=web"))
    assert first.id == MIN_LABEL_IDENTITY == 256
    assert a.allocate(labels("app=web")) == first
    assert a.allocate(labels("app=db")).id == 257
    assert a.references(first.id) == 2


def test_a_restart_gives_every_label_set_its_old_number(make: Callable[..., LocalAllocator],
                                                        tmp_path: Path) -> None:
    a = make()
    numbers = {t: a.allocate(labels(t)).id for t in ("app=a", "app=b", "app=c")}
    a.close()
    b = make()
    assert {t: b.lookup_labels(labels(t)).id for t in numbers} == numbers  # type: ignore[union-attr]
    assert {t: b.allocate(labels(t)).id for t in reversed(list(numbers))} == numbers
    assert b.allocate(labels("app=d")).id == 259
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file left behind"


def test_identities_loaded_after_a_restart_are_freed_only_if_nobody_takes_them_within_grace(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make()
    kept, dropped = a.allocate(labels("app=kept")), a.allocate(labels("app=dropped"))
    a.close()
    b = make()
    b.allocate(labels("app=kept"))
    clock.advance(61)
    assert b.collect_garbage() == [dropped]
    assert b.lookup(kept.id) == kept
    b.close()
    assert make().lookup(dropped.id) is None, "the freeing was persisted"


def test_a_released_identity_survives_its_grace_period_then_gc_frees_it(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make()
    ident = a.allocate(labels("app=web"))
    a.release(ident)
    clock.advance(59)
    assert a.collect_garbage() == []
    assert a.lookup(ident.id) == ident
    clock.advance(1)
    assert a.collect_garbage() == [ident]
    assert a.lookup(ident.id) is None
    assert a.identities() == []


def test_taking_an_identity_again_within_grace_keeps_its_number(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make()
    ident = a.allocate(labels("app=web"))
    a.release(ident)
    clock.advance(30)
    assert a.allocate(labels("app=web")) == ident     # the pod's replacement
    clock.advance(3600)
    assert a.collect_garbage() == []


def test_an_identity_stays_while_any_reference_remains(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make()
    ident = a.allocate(labels("app=web"))
    a.allocate(labels("app=web"))
    a.release(ident)
    clock.advance(3600)
    assert a.collect_garbage() == []


def test_freed_numbers_are_reused_lowest_first_and_only_after_release(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make(grace_seconds=0)
    one, two, three = (a.allocate(labels(f"app={n}")) for n in ("one", "two", "three"))
    a.release(three)
    a.release(one)
    assert a.allocate(labels("app=four")).id == 259, "in grace is not free"
    assert {i.id for i in a.collect_garbage()} == {one.id, three.id}
    assert a.allocate(labels("app=five")).id == one.id
    assert a.allocate(labels("app=six")).id == three.id
    assert a.allocate(labels("app=seven")).id == 260


def test_gaps_in_a_loaded_table_are_free_numbers(make: Callable[..., LocalAllocator],
                                                 clock: FakeClock) -> None:
    a = make(grace_seconds=0)
    first = a.allocate(labels("app=one"))
    a.allocate(labels("app=two"))
    a.release(first)
    a.collect_garbage()
    a.close()
    assert make().allocate(labels("app=three")).id == first.id


@pytest.mark.parametrize("reserved", list(ReservedIdentity), ids=lambda r: r.label_name)
def test_reserved_identities_are_fixed_and_never_allocated(
        make: Callable[..., LocalAllocator], reserved: ReservedIdentity) -> None:
    a = make()
    expected = Identity(int(reserved), LabelSet.parse([f"reserved:{reserved.label_name}"]))
    assert a.lookup(int(reserved)) == expected
    assert a.allocate(expected.labels) == expected
    assert a.lookup_labels(expected.labels) == expected
    a.release(expected)          # nothing to count: a no-op
    assert a.identities() == []


def test_lookup_of_reserved_host_gives_its_label(make: Callable[..., LocalAllocator]) -> None:
    host = make().lookup(1)
    assert host is not None and host.labels.lines() == ["reserved:host"]


@pytest.mark.parametrize("bad, message", [
    (LabelSet.parse(["reserved:host", "k8s:app=web"]), "reserved labels cannot be combined"),
    (LabelSet.parse(["reserved:superuser"]), "or invented"),
    (LabelSet(), "empty label set"),
    (LabelSet.parse(["cidr:10.0.0.0/24"]), "CidrAllocator"),
], ids=["reserved mixed with pod labels", "an invented reserved label", "no labels",
        "a CIDR label"])
def test_label_sets_it_refuses(make: Callable[..., LocalAllocator], bad: LabelSet,
                               message: str) -> None:
    with pytest.raises(AllocationError, match=message):
        make().allocate(bad)


def test_a_full_identity_space_raises_a_clear_allocation_error(
        make: Callable[..., LocalAllocator]) -> None:
    a = make(max_identity=257)
    a.allocate(labels("app=one"))
    a.allocate(labels("app=two"))
    with pytest.raises(AllocationError, match="no free label identity: all 2 numbers from 256"):
        a.allocate(labels("app=three"))


def test_releasing_more_often_than_allocated_is_an_error(
        make: Callable[..., LocalAllocator]) -> None:
    a = make()
    ident = a.allocate(labels("app=web"))
    a.release(ident)
    with pytest.raises(AllocationError, match="released more often"):
        a.release(ident)
    with pytest.raises(AllocationError, match="not allocated here"):
        a.release(Identity(999, labels("app=ghost")))


def test_the_state_file_is_json_one_identity_per_line(make: Callable[..., LocalAllocator],
                                                      tmp_path: Path) -> None:
    make().allocate(labels("app=web"))
    text = (tmp_path / STATE_FILE).read_text()
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["identities"][0]["id"] == 256
    assert ["k8s", "app", "web"] in doc["identities"][0]["labels"]


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "identities": []}',
                                     '{"version": 1, "identities": [{"id": 3, "labels": []}]}'],
                         ids=["truncated", "a future format", "a reserved number"])
def test_an_unreadable_state_file_is_a_clear_error_naming_it(
        tmp_path: Path, content: str) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with pytest.raises(AllocationError, match=f"{STATE_FILE}.*move it away"):
        LocalAllocator(tmp_path)


def test_two_allocators_cannot_share_a_state_directory(make: Callable[..., LocalAllocator]) -> None:
    a = make()
    with pytest.raises(AllocationError, match="in use by another process"):
        make()
    a.close()
    make().close()


def test_an_in_memory_allocator_writes_nothing(tmp_path: Path) -> None:
    a = LocalAllocator(None)
    assert a.allocate(labels("app=web")).id == 256
    assert list(tmp_path.iterdir()) == []


def test_concurrent_threads_get_one_number_per_label_set(
        make: Callable[..., LocalAllocator]) -> None:
    a = make()

    def run(worker: int) -> list[tuple[str, int]]:
        texts = [f"app=w{(worker + i) % 20}" for i in range(50)]
        return [(text, a.allocate(labels(text)).id) for text in texts]

    by_text: dict[str, set[int]] = {}
    for seen in race(range(8), run):
        for text, number in seen:
            by_text.setdefault(text, set()).add(number)
    assert all(len(n) == 1 for n in by_text.values())
    assert sorted(n.pop() for n in by_text.values()) == list(range(256, 276))
    assert sum(a.references(i.id) for i in a.identities()) == 400


# -- persist="on_flush": one write per batch, durable at flush() ------------------------

def crash(a: LocalAllocator) -> None:
    """What a killed agent leaves: the file as last written, the lock let go, no flush."""
    lock = a._table._lock_file
    assert lock is not None
    lock.close()
    a._table._lock_file = None


def on_disk(tmp_path: Path) -> dict[int, str]:
    path = tmp_path / STATE_FILE
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    return {e["id"]: decode_labels(e["labels"]).key() for e in doc["identities"]}


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    seen: list[Path] = []
    real = table.write_atomically

    def counting(path: Path, data: bytes) -> None:
        seen.append(path)
        real(path, data)

    monkeypatch.setattr(table, "write_atomically", counting)
    return seen


def test_an_unknown_persist_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="persist must be one of"):
        LocalAllocator(tmp_path, persist="sometimes")


def test_immediate_is_the_default_and_writes_inside_allocate(
        make: Callable[..., LocalAllocator], tmp_path: Path, writes: list[Path]) -> None:
    a = make()
    a.allocate(labels("app=a"))
    a.allocate(labels("app=b"))
    assert len(writes) == 2 and not a.dirty
    a.flush()
    assert len(writes) == 2, "flush has nothing to write in immediate mode"
    assert set(on_disk(tmp_path)) == {256, 257}


def test_on_flush_writes_a_batch_of_allocations_once_at_flush(
        make: Callable[..., LocalAllocator], tmp_path: Path, writes: list[Path]) -> None:
    a = make(persist="on_flush")
    numbers = {t: a.allocate(labels(t)).id for t in (f"app=w{i}" for i in range(50))}
    a.allocate(labels("app=w0"))   # a known label set changes nothing
    assert writes == [] and on_disk(tmp_path) == {} and a.dirty
    a.flush()
    assert len(writes) == 1 and not a.dirty
    assert set(on_disk(tmp_path)) == set(numbers.values())
    a.flush()
    assert len(writes) == 1, "a clean table is not written again"
    for i in range(3):
        a.release(a.allocate(labels(f"app=w{i}")))   # references are not persisted
    a.flush()
    assert len(writes) == 1


def test_on_flush_numbers_survive_a_crash_after_flush_and_only_those(
        make: Callable[..., LocalAllocator], clock: FakeClock) -> None:
    a = make(persist="on_flush")
    flushed = {t: a.allocate(labels(t)).id for t in ("app=a", "app=b")}
    a.flush()
    a.allocate(labels("app=late"))     # handed out but never flushed: not used by any map
    crash(a)
    b = make(persist="on_flush")
    assert {t: b.lookup_labels(labels(t)).id for t in flushed} == flushed  # type: ignore[union-attr]
    assert b.lookup_labels(labels("app=late")) is None
    assert {t: b.allocate(labels(t)).id for t in reversed(list(flushed))} == flushed
    assert b.allocate(labels("app=new")).id == 258
    b.close()


def test_on_flush_garbage_collection_is_persisted_at_flush(
        make: Callable[..., LocalAllocator], clock: FakeClock, tmp_path: Path) -> None:
    a = make(persist="on_flush")
    kept, dropped = a.allocate(labels("app=kept")), a.allocate(labels("app=dropped"))
    a.flush()
    a.release(dropped)
    clock.advance(61)
    assert a.collect_garbage() == [dropped]
    assert set(on_disk(tmp_path)) == {kept.id, dropped.id} and a.dirty
    a.flush()
    assert set(on_disk(tmp_path)) == {kept.id}
    crash(a)
    assert make(persist="on_flush").lookup(dropped.id) is None


def test_on_flush_close_writes_what_is_pending(make: Callable[..., LocalAllocator]) -> None:
    a = make(persist="on_flush")
    ident = a.allocate(labels("app=web"))
    a.close()
    assert make().lookup(ident.id) == ident


def test_a_failed_flush_raises_keeps_the_table_dirty_and_the_next_flush_writes_it(
        make: Callable[..., LocalAllocator], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a = make(persist="on_flush")
    ident = a.allocate(labels("app=web"))
    real = table.write_atomically

    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(table, "write_atomically", full_disk)
    with pytest.raises(AllocationError, match=f"{STATE_FILE}: cannot save label identity "
                                              "table.*No space"):
        a.flush()
    assert a.dirty and a.lookup(ident.id) == ident, "the number stays handed out"
    monkeypatch.setattr(table, "write_atomically", real)
    a.flush()
    assert not a.dirty and on_disk(tmp_path) == {ident.id: ident.labels.key()}


def test_on_flush_through_the_allocator_protocol(tmp_path: Path) -> None:
    allocator: Allocator = LocalAllocator(tmp_path, persist="on_flush")
    ident = allocator.allocate(labels("app=web"))
    allocator.flush()
    assert on_disk(tmp_path) == {ident.id: ident.labels.key()}
    allocator.close()


def test_an_in_memory_on_flush_allocator_is_never_dirty(tmp_path: Path) -> None:
    a = LocalAllocator(None, persist="on_flush")
    a.allocate(labels("app=web"))
    assert not a.dirty
    a.flush()
    assert list(tmp_path.iterdir()) == []
