"""The datapath event reader without a kernel: the mapped ring's record walk (busy,
discarded and odd-sized records, wrap-around), the callback fallback, batches and the
old per-event handler."""

from __future__ import annotations

import ctypes
import struct
from typing import Any

from agent.datapath import layout
from agent.datapath import reader as rd
from core.protocols import Direction
from observe.events import EventBatch, EventType

PAGE = 4096
SIZE = 4096            # a tiny ring: 51 records of 80 bytes


def raw_event(i: int, **kw: int) -> layout.event:
    ev = layout.event()
    ev.ktime_ns = 1_000 + i
    ev.type = kw.get("type", 2)
    ev.direction = kw.get("direction", 1)
    ev.allowed = 0
    ev.drop_reason = 133
    ev.protocol = 17
    ev.endpoint_id = 7
    ev.sport = 40000 + i
    ev.dport = 5204
    ev.src_identity = 900
    ev.dst_identity = 901
    ev.ip_version = 4
    ev.saddr[0] = int.from_bytes(bytes([10, 0, 0, 1]), "little")
    ev.daddr[0] = int.from_bytes(bytes([10, 0, 0, 2]), "little")
    ev.packet_len = 60
    return ev


class FakeRing(rd.MappedRing):
    """MappedRing over bytearrays laid out like the kernel's mapping (data twice)."""

    def __init__(self) -> None:          # no mmap, no fd
        self.size, self.mask, self.page = SIZE, SIZE - 1, PAGE
        self._cons = bytearray(PAGE)
        self._prod = bytearray(PAGE + 2 * SIZE)
        self.decode_errors = 0
        self.peak_bytes = 0
        self.prod_pos = 0
        self._maps = []

    def _load_cons(self) -> int:
        return int(struct.unpack_from("<Q", self._cons, 0)[0])

    def _load_prod(self) -> int:
        return int(struct.unpack_from("<Q", self._prod, 0)[0])

    def _store_cons(self, pos: int) -> None:
        struct.pack_into("<Q", self._cons, 0, pos)

    def _copy(self, offset: int, n: int) -> bytes:
        return bytes(self._prod[PAGE + offset:PAGE + offset + n])

    def put(self, payload: bytes, flags: int = 0) -> int:
        """Writes one record at the producer position (both mappings); returns its
        header offset in the data area."""
        total = (rd.RB_HDR_SZ + len(payload) + 7) & ~7
        pos = self.prod_pos & self.mask
        rec = struct.pack("<II", len(payload) | flags, 0) + payload
        rec += b"\0" * (total - len(rec))
        for k, byte in enumerate(rec):
            off = (pos + k) % SIZE          # the data area is mapped twice in a row
            self._prod[PAGE + off] = self._prod[PAGE + SIZE + off] = byte
        self.prod_pos += total
        struct.pack_into("<Q", self._prod, 0, self.prod_pos)
        return pos

    def set_flags(self, pos: int, length: int, flags: int) -> None:
        for base in (PAGE, PAGE + SIZE):
            struct.pack_into("<I", self._prod, base + pos, length | flags)

    @property
    def cons_pos(self) -> int:
        return int(struct.unpack_from("<Q", self._cons, 0)[0])


def test_the_struct_format_matches_the_ctypes_mirror() -> None:
    assert rd.RECORD.size == ctypes.sizeof(layout.event) == rd.EVENT_SIZE
    assert rd.STRIDE == 80 and rd.RING_RECORD.size == rd.STRIDE
    ev = raw_event(3)
    rec = rd.RECORD.unpack(bytes(ev))
    assert rec[rd.F["sport"]] == 40003 and rec[rd.F["ktime_ns"]] == 1003


def test_decode_record_makes_the_same_event_as_decode() -> None:
    ev = raw_event(1)
    a = rd.decode(ev, "n1", 5)
    b = rd.decode_record(rd.RECORD.unpack(bytes(ev)), "n1", 5)
    assert a == b
    assert a.type is EventType.DROP and a.direction is Direction.EGRESS
    assert (a.src_ip, a.dst_ip, a.src_port, a.timestamp_ns) == ("10.0.0.1", "10.0.0.2",
                                                               40001, 1006)


def test_an_ipv6_event_decodes_its_16_byte_addresses() -> None:
    ev = raw_event(2)
    ev.ip_version = 6
    ev.saddr = layout.ip6_to_words("fd00:10:244:1::2")
    ev.daddr = layout.ip6_to_words("2001:db8::10")
    a = rd.decode_record(rd.RECORD.unpack(bytes(ev)), "n1", 0)
    assert (a.src_ip, a.dst_ip) == ("fd00:10:244:1::2", "2001:db8::10")


def test_an_event_of_no_ip_packet_has_no_addresses() -> None:
    ev = raw_event(2)
    ev.ip_version = 0
    a = rd.decode_record(rd.RECORD.unpack(bytes(ev)), "n1", 0)
    assert (a.src_ip, a.dst_ip) == ("", "")


def test_the_mapped_ring_reads_every_committed_record_and_advances() -> None:
    ring = FakeRing()
    for i in range(10):
        ring.put(bytes(raw_event(i)))
    recs = ring.read()
    assert [r[rd.F["sport"]] for r in recs] == [40000 + i for i in range(10)]
    assert ring.cons_pos == 10 * rd.STRIDE
    assert ring.read() == []


def test_a_record_still_being_written_stops_the_read_until_it_is_committed() -> None:
    ring = FakeRing()
    ring.put(bytes(raw_event(0)))
    busy = ring.put(bytes(raw_event(1)), flags=rd.RB_BUSY_BIT)
    ring.put(bytes(raw_event(2)))
    assert [r[rd.F["sport"]] for r in ring.read()] == [40000]
    assert ring.cons_pos == rd.STRIDE
    ring.set_flags(busy, rd.EVENT_SIZE, 0)
    assert [r[rd.F["sport"]] for r in ring.read()] == [40001, 40002]


def test_discarded_and_odd_sized_records_are_skipped_and_counted() -> None:
    ring = FakeRing()
    ring.put(bytes(raw_event(0)))
    ring.put(bytes(raw_event(1)), flags=rd.RB_DISCARD_BIT)
    ring.put(b"x" * 12)
    ring.put(bytes(raw_event(3)))
    recs = ring.read()
    assert [r[rd.F["sport"]] for r in recs] == [40000, 40003]
    assert ring.decode_errors == 1
    assert ring.cons_pos == ring.prod_pos


def test_records_wrapping_around_the_end_read_whole() -> None:
    ring = FakeRing()
    got: list[int] = []
    for i in range(300):            # 4 times around a 73-record ring
        ring.put(bytes(raw_event(i)))
        if i % 50 == 49:
            got += [r[rd.F["sport"]] - 40000 for r in ring.read()]
    got += [r[rd.F["sport"]] - 40000 for r in ring.read()]
    assert got == list(range(300))


class FakeTable:
    def __init__(self) -> None:
        self.cb: Any = None
        self.map_fd = -1
        self.max_entries = 3   # not a power of two: mapping refused, callbacks used

    def open_ring_buffer(self, cb: Any) -> None:
        self.cb = cb


class FakeBpf:
    def __init__(self) -> None:
        self.table = FakeTable()
        self.queued: list[bytes] = []

    def __getitem__(self, name: bytes) -> FakeTable:
        return self.table

    def ring_buffer_poll(self, timeout_ms: int) -> None:
        for data in self.queued:
            buf = ctypes.create_string_buffer(data, len(data))
            self.table.cb(None, ctypes.cast(buf, ctypes.c_void_p), len(data))
        self.queued = []


def test_the_callback_fallback_hands_over_one_batch_per_poll() -> None:
    bpf = FakeBpf()
    r = rd.EventReader(bpf, "n1")
    assert r.mode == "ringbuf-callback"
    batches: list[EventBatch] = []
    r.batch_handler = batches.append
    bpf.queued = [bytes(raw_event(i)) for i in range(5)] + [b"short"]
    assert r.poll(0) == 5
    assert r.decode_errors == 1
    (batch,) = batches
    events = batch.events()
    assert [e.src_port for e in events] == [40000 + i for i in range(5)]
    assert all(e.node == "n1" for e in events)
    assert len({batch.key(rec) for rec in batch.records}) == 1


def test_records_of_an_unknown_type_are_counted_and_left_out_of_the_batch() -> None:
    bpf = FakeBpf()
    r = rd.EventReader(bpf, "n1")
    batches: list[EventBatch] = []
    r.batch_handler = batches.append
    bpf.queued = [bytes(raw_event(0)), bytes(raw_event(1, type=9))]
    assert r.poll(0) == 2
    (batch,) = batches
    assert [e.src_port for e in batch.events()] == [40000]
    assert r.decode_errors == 1


def test_a_failing_batch_handler_does_not_stop_the_reader() -> None:
    bpf = FakeBpf()
    r = rd.EventReader(bpf, "n1")

    def boom(batch: EventBatch) -> None:
        raise RuntimeError("boom")
    r.batch_handler = boom
    bpf.queued = [bytes(raw_event(0))]
    assert r.poll(0) == 1
