"""Reading the datapath's event ring buffer, in batches.

Records are struct event (bpf/lib/events.h, mirrored by layout.event). Their
timestamps are bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC; we convert to CLOCK_REALTIME
with an offset measured on every poll (cheap, and it follows wall-clock steps).

The hot path has no Python work per record:

- BPF ring buffer (kernels >= 5.8): the reader maps the ring itself (consumer page
  read-write, producer page and the twice-mapped data area read-only, as libbpf does),
  copies everything between the consumer and producer positions with one slice, checks
  the record headers with one `struct.iter_unpack` and decodes the records with another
  into plain tuples (`RECORD_FIELDS` order). No bcc callback, no ctypes object, no
  dataclass per record. Waiting is poll(2) on the map fd. If the ring cannot be mapped,
  bcc's ring_buffer_poll is used with a callback that only copies the bytes.
- perf event array (older kernels, compiler.probe_features): bcc's callback copies the
  bytes into a list; the batch is decoded after perf_buffer_poll returns. Its lost
  records are counted here in user space; ring buffer losses are counted in the kernel
  (lost_events map).

A poll delivers one `observe.events.EventBatch` to the batch handler (records decoded to
DatapathEvent only when something needs them: observe.ring builds flows lazily). That
is the only way events leave the reader.
"""

from __future__ import annotations

import ctypes
import logging
import mmap
import os
import select
import socket
import struct
import time
from operator import itemgetter
from typing import Any, Hashable

from agent.datapath import layout
from agent.datapath.interface import BatchHandler
from core.protocols import Direction
from observe.events import DatapathEvent, EventBatch, EventType

log = logging.getLogger(__name__)


# -- the record layout, derived from the ctypes mirror so a change there follows here --

_UNSIGNED = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _struct_codes(cls: type[ctypes.Structure]) -> tuple[list[str], str]:
    """Field names and a struct format; an array field (the addresses) is its raw bytes."""
    names, codes = [], []
    for name, ctype in cls._fields_:  # type: ignore[misc]
        size = ctypes.sizeof(ctype)
        if issubclass(ctype, ctypes.Array):
            code = f"{size}s"
        else:
            code = _UNSIGNED[size]
            if getattr(ctype, "_type_", "B") in "bhilq":
                code = code.lower()
        names.append(name)
        codes.append(code)
    fmt = "".join(codes)
    if struct.calcsize("<" + fmt) != ctypes.sizeof(cls):
        raise RuntimeError(f"layout.{cls.__name__} has implicit padding; the reader's "
                           "struct format would not match it")
    return names, fmt


RECORD_FIELDS, _FMT = _struct_codes(layout.event)
EVENT_SIZE = ctypes.sizeof(layout.event)
F = {name: i for i, name in enumerate(RECORD_FIELDS)}     # field name -> tuple index
RECORD = struct.Struct("<" + _FMT)

# Ring buffer record header (include/uapi/linux/bpf.h): u32 len with two flag bits, u32
# page offset; records are 8-byte aligned.
RB_BUSY_BIT = 1 << 31
RB_DISCARD_BIT = 1 << 30
RB_HDR_SZ = 8
STRIDE = (RB_HDR_SZ + EVENT_SIZE + 7) & ~7
RING_RECORD = struct.Struct(f"<{RB_HDR_SZ}x{_FMT}{STRIDE - RB_HDR_SZ - EVENT_SIZE}x")
RING_HEADER = struct.Struct(f"<I{STRIDE - 4}x")
_U64 = struct.Struct("<Q")

# What the metrics count by (observe.ring groups a batch by it): everything a flow shows
# but its time and source port.
METRICS_KEY = itemgetter(F["type"], F["direction"], F["allowed"], F["is_reply"],
                         F["match_type"], F["drop_reason"], F["protocol"], F["saddr"],
                         F["src_identity"], F["endpoint_id"], F["daddr"], F["dst_identity"],
                         F["dport"], F["tcp_flags"])
# Everything a flow shows but its time (EventBatch.flow_key): records equal in these
# make the same flow, which observe.encoder builds once.
FLOW_FIELDS = itemgetter(F["type"], F["direction"], F["allowed"], F["is_reply"],
                         F["match_type"], F["drop_reason"], F["protocol"], F["saddr"],
                         F["src_identity"], F["endpoint_id"], F["daddr"], F["dst_identity"],
                         F["dport"], F["tcp_flags"], F["sport"])
_KTIME = F["ktime_ns"]
_TYPE_DIR = itemgetter(F["type"], F["direction"])
_VALID_TYPE_DIR = frozenset((t.value, d.value) for t in EventType for d in Direction)


def decode(raw: layout.event, node: str, offset_ns: int) -> DatapathEvent:
    """One ring buffer record (ctypes) -> DatapathEvent (pure: tests call it directly)."""
    return decode_record(RECORD.unpack(bytes(raw)), node, offset_ns)


def decode_record(rec: tuple[int, ...], node: str, offset_ns: int) -> DatapathEvent:
    """One record tuple (RECORD_FIELDS order) -> DatapathEvent. Raises ValueError on an
    unknown type or direction."""
    return DatapathEvent(
        type=EventType(rec[F["type"]]),
        timestamp_ns=rec[F["ktime_ns"]] + offset_ns,
        node=node,
        endpoint_id=rec[F["endpoint_id"]],
        direction=Direction(rec[F["direction"]]),
        allowed=bool(rec[F["allowed"]]),
        drop_reason=rec[F["drop_reason"]],
        match_type=rec[F["match_type"]],
        src_identity=rec[F["src_identity"]],
        dst_identity=rec[F["dst_identity"]],
        src_ip=_address(rec[F["saddr"]], rec[F["ip_version"]]),
        dst_ip=_address(rec[F["daddr"]], rec[F["ip_version"]]),
        protocol=rec[F["protocol"]],
        src_port=rec[F["sport"]],
        dst_port=rec[F["dport"]],
        tcp_flags=rec[F["tcp_flags"]],
        is_reply=bool(rec[F["is_reply"]]),
        packet_len=rec[F["packet_len"]],
        audit=rec[F["allowed"]] == layout.POLICY_AUDITED,
    )


def _address(raw: Any, version: int) -> str:
    """An event address (16 bytes in network order, IPv4 in the first 4) as text."""
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, raw)
    return ""


def monotonic_to_realtime_offset() -> int:
    return time.time_ns() - time.monotonic_ns()


class _Decoder:
    """The decode function of one batch: node and clock offset bound once."""

    __slots__ = ("node", "offset_ns")

    def __init__(self, node: str, offset_ns: int) -> None:
        self.node, self.offset_ns = node, offset_ns

    def __call__(self, rec: tuple[int, ...]) -> DatapathEvent:
        return decode_record(rec, self.node, self.offset_ns)

    def flow_key(self, rec: tuple[int, ...]) -> tuple[int, Hashable]:
        """(realtime ns, everything else the flow depends on): EventBatch.flow_key."""
        return rec[_KTIME] + self.offset_ns, FLOW_FIELDS(rec)


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_MAP_FAILED = ctypes.c_void_p(-1).value


def _mmap(length: int, prot: int, fd: int, offset: int) -> int:
    addr = _libc.mmap(None, length, prot, mmap.MAP_SHARED, fd, offset)
    if addr is None or addr == _MAP_FAILED:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of the events ring buffer: {os.strerror(err)}")
    return int(addr)


class MappedRing:
    """A BPF ring buffer read directly through mmap, as libbpf's ring_buffer does.

    Layout (kernel/bpf/ringbuf.c): page 0 the consumer position (ours to write); from
    page 1 the producer position page and then the data area, mapped twice in a row, so
    any span of up to `size` bytes from any position is contiguous.

    The positions are read and written as whole aligned u64s through ctypes (one load or
    store each, as the kernel expects; x86-64 orders them as libbpf's acquire/release
    do). `struct` on the mapping would not do: it writes byte by byte, and the kernel
    could see a torn consumer position (a ring that looks full: records lost).
    """

    def __init__(self, fd: int, size: int) -> None:
        self._maps: list[tuple[int, int]] = []
        if size <= 0 or size & (size - 1):
            raise ValueError(f"ring buffer size {size} is not a power of two")
        page = mmap.PAGESIZE
        self.size, self.mask, self.page = size, size - 1, page
        cons = _mmap(page, mmap.PROT_READ | mmap.PROT_WRITE, fd, 0)
        self._maps.append((cons, page))
        try:
            prod = _mmap(page + 2 * size, mmap.PROT_READ, fd, page)
        except OSError:
            self.close()
            raise
        self._maps.append((prod, page + 2 * size))
        self._cons_pos = ctypes.c_uint64.from_address(cons)
        self._prod_pos = ctypes.c_uint64.from_address(prod)
        self._data = prod + page
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self.decode_errors = 0
        self.peak_bytes = 0          # the fullest the ring was seen (diagnostics)

    def close(self) -> None:
        maps, self._maps = getattr(self, "_maps", []), []
        for addr, length in maps:
            _libc.munmap(addr, length)

    def __del__(self) -> None:   # BpfDatapath.close drops the reader without closing it
        self.close()

    def wait(self, timeout_ms: int) -> None:
        try:
            self._poll.poll(timeout_ms)
        except InterruptedError:
            pass

    # The four memory accesses (a test replaces them with a bytearray's).
    def _load_cons(self) -> int:
        return self._cons_pos.value

    def _load_prod(self) -> int:
        return self._prod_pos.value

    def _store_cons(self, pos: int) -> None:
        self._cons_pos.value = pos

    def _copy(self, offset: int, n: int) -> bytes:
        """n bytes of the data area from offset (< size; contiguous, mapped twice)."""
        return ctypes.string_at(self._data + offset, n)

    def read(self) -> list[tuple[int, ...]]:
        """Every committed record up to the first one still being written; advances the
        consumer position past them."""
        if not self._maps and type(self) is MappedRing:
            return []
        cons = self._load_cons()
        prod = self._load_prod()
        avail = prod - cons
        if avail <= 0:
            return []
        if avail > self.peak_bytes:
            self.peak_bytes = avail
        start = cons & self.mask
        span = self._copy(start, avail)
        # The headers say which records are committed. Read the records themselves from
        # a second copy made after that: a record's bytes are complete before its header
        # loses the busy bit, and a copy made later cannot see them older.
        n_fast = 0
        if avail % STRIDE == 0:
            hdrs = [h for (h,) in RING_HEADER.iter_unpack(span)]
            if hdrs.count(EVENT_SIZE) == len(hdrs):
                n_fast = len(hdrs)
            else:
                n_fast = next(i for i, h in enumerate(hdrs) if h != EVENT_SIZE)
        consumed, extra = self._walk(span, n_fast * STRIDE)
        if consumed == 0:
            return []
        data = self._copy(start, consumed)
        recs = list(RING_RECORD.iter_unpack(data[:n_fast * STRIDE])) if n_fast else []
        for off in extra:
            recs.append(RECORD.unpack_from(data, off))
        self._store_cons(cons + consumed)
        return recs

    def _walk(self, span: bytes, pos: int) -> tuple[int, list[int]]:
        """Record by record from `pos` (the slow path: a record still being written, a
        discarded one, or one of another size). Returns (bytes consumed, offsets of the
        event payloads found)."""
        extra: list[int] = []
        end = len(span)
        while pos + RB_HDR_SZ <= end:
            hdr = struct.unpack_from("<I", span, pos)[0]
            if hdr & RB_BUSY_BIT:
                break
            length = hdr & ~(RB_BUSY_BIT | RB_DISCARD_BIT)
            total = (RB_HDR_SZ + length + 7) & ~7
            if pos + total > end:
                break
            if not hdr & RB_DISCARD_BIT:
                if length == EVENT_SIZE:
                    extra.append(pos + RB_HDR_SZ)
                else:
                    self.decode_errors += 1
            pos += total
        return pos, extra


class EventReader:
    def __init__(self, bpf: Any, node: str, ringbuf: bool = True) -> None:
        self.bpf = bpf
        self.node = node
        self.ringbuf = ringbuf
        self.batch_handler: BatchHandler | None = None
        self.user_lost = 0          # perf buffer only
        self._decode_errors = 0
        self._raw: list[bytes] = []   # the callback paths' records of the current poll
        self._mapped: MappedRing | None = None
        self.mode = ""
        table = bpf[b"events"]
        if ringbuf:
            if os.environ.get("MEMBRANE_EVENTS_BCC_CALLBACK") != "1":
                try:
                    self._mapped = MappedRing(table.map_fd, int(table.max_entries))
                    self.mode = "mmap"
                except (OSError, ValueError, AttributeError) as err:
                    log.warning("cannot map the events ring buffer (%s): reading it "
                                "through bcc callbacks", err)
            if self._mapped is None:
                table.open_ring_buffer(self._on_ring)
                self.mode = "ringbuf-callback"
        else:
            table.open_perf_buffer(self._on_perf, page_cnt=64, lost_cb=self._on_lost)
            self.mode = "perf-callback"

    @property
    def decode_errors(self) -> int:
        return self._decode_errors + (self._mapped.decode_errors if self._mapped else 0)

    @decode_errors.setter
    def decode_errors(self, value: int) -> None:
        self._decode_errors = value - (self._mapped.decode_errors if self._mapped else 0)

    # -- callbacks (fallback paths): copy the bytes, nothing else ---------------------
    def _on_ring(self, ctx: Any, data: Any, size: int) -> int:
        self._raw.append(ctypes.string_at(data, size))
        return 0

    def _on_perf(self, cpu: int, data: Any, size: int) -> None:
        self._raw.append(ctypes.string_at(data, size))

    def _on_lost(self, lost: int) -> None:
        self.user_lost += lost

    def _take_raw(self) -> list[tuple[int, ...]]:
        raw, self._raw = self._raw, []
        if not raw:
            return []
        good = [r[:EVENT_SIZE] for r in raw if len(r) >= EVENT_SIZE]
        self._decode_errors += len(raw) - len(good)
        return list(RECORD.iter_unpack(b"".join(good)))

    # -- polling ----------------------------------------------------------------------
    def _read(self, timeout_ms: int) -> list[tuple[int, ...]]:
        if self._mapped is not None:
            recs = self._mapped.read()
            if recs or timeout_ms == 0:
                # More may have landed while we decoded: one more look, no waiting.
                return recs + self._mapped.read() if recs else recs
            self._mapped.wait(timeout_ms)
            return self._mapped.read()
        if self.ringbuf:
            self.bpf.ring_buffer_poll(timeout_ms)
        else:
            self.bpf.perf_buffer_poll(timeout_ms)
        return self._take_raw()

    def poll(self, timeout_ms: int) -> int:
        """Reads what is there (waiting up to timeout_ms for the first record), hands
        it over as one batch; returns how many records were read."""
        recs = self._read(timeout_ms)
        if not recs:
            return 0
        n = len(recs)
        if not _VALID_TYPE_DIR.issuperset(map(_TYPE_DIR, recs)):
            recs = [r for r in recs if _TYPE_DIR(r) in _VALID_TYPE_DIR]
            self._decode_errors += n - len(recs)
        decoder = _Decoder(self.node, monotonic_to_realtime_offset())
        if self.batch_handler is not None:
            try:
                self.batch_handler(EventBatch(recs, decoder, METRICS_KEY, decoder.flow_key))
            except Exception:  # a failing handler must not stop the datapath reader
                log.exception("event batch handler failed")
        return n

    def close(self) -> None:
        if self._mapped is not None:
            self._mapped.close()
            self._mapped = None
