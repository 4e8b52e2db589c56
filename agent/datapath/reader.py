"""Reading the datapath's event ring buffer into observe.events.DatapathEvent.

Records are struct event (bpf/lib/events.h, mirrored by layout.event). Their
timestamps are bpf_ktime_get_ns(), i.e. CLOCK_MONOTONIC; we convert to CLOCK_REALTIME
with an offset measured when the reader opens and refreshed on every poll (cheap, and
it follows wall-clock steps). On kernels without a ring buffer the same records come
through a perf event array (compiler.probe_features), whose lost records are counted
here in user space; ring buffer losses are counted in the kernel (lost_events map).
"""

from __future__ import annotations

import ctypes
import logging
import time
from typing import Any, Callable

from agent.datapath import layout
from observe.events import DatapathEvent, EventType, TrafficDirection

log = logging.getLogger(__name__)

Handler = Callable[[DatapathEvent], None]


def decode(raw: layout.event, node: str, offset_ns: int) -> DatapathEvent:
    """One ring buffer record -> DatapathEvent (pure: tests call it directly)."""
    return DatapathEvent(
        type=EventType(raw.type),
        timestamp_ns=raw.ktime_ns + offset_ns,
        node=node,
        endpoint_id=raw.endpoint_id,
        direction=TrafficDirection(raw.direction),
        allowed=bool(raw.allowed),
        drop_reason=raw.drop_reason,
        match_type=raw.match_type,
        src_identity=raw.src_identity,
        dst_identity=raw.dst_identity,
        src_ip=layout.be32_to_ip(raw.saddr),
        dst_ip=layout.be32_to_ip(raw.daddr),
        protocol=raw.protocol,
        src_port=raw.sport,
        dst_port=raw.dport,
        tcp_flags=raw.tcp_flags,
        is_reply=bool(raw.is_reply),
        packet_len=raw.packet_len,
    )


def monotonic_to_realtime_offset() -> int:
    return time.time_ns() - time.monotonic_ns()


class EventReader:
    def __init__(self, bpf: Any, node: str, ringbuf: bool = True) -> None:
        self.bpf = bpf
        self.node = node
        self.ringbuf = ringbuf
        self.handler: Handler | None = None
        self.user_lost = 0          # perf buffer only
        self.decode_errors = 0
        self._count = 0
        self._offset = monotonic_to_realtime_offset()
        table = bpf[b"events"]
        if ringbuf:
            table.open_ring_buffer(self._on_ring)
        else:
            table.open_perf_buffer(self._on_perf, page_cnt=64, lost_cb=self._on_lost)

    def _deliver(self, data: Any, size: int) -> None:
        if size < ctypes.sizeof(layout.event):
            self.decode_errors += 1
            return
        raw = layout.event.from_buffer_copy(
            ctypes.string_at(data, ctypes.sizeof(layout.event)))
        self._count += 1
        if self.handler is None:
            return
        try:
            ev = decode(raw, self.node, self._offset)
        except ValueError:
            self.decode_errors += 1
            return
        try:
            self.handler(ev)
        except Exception:  # a failing handler must not stop the datapath reader
            log.exception("event handler failed")

    def _on_ring(self, ctx: Any, data: Any, size: int) -> int:
        self._deliver(data, size)
        return 0

    def _on_perf(self, cpu: int, data: Any, size: int) -> None:
        self._deliver(data, size)

    def _on_lost(self, lost: int) -> None:
        self.user_lost += lost

    def poll(self, timeout_ms: int) -> int:
        """Reads what is there (waiting up to timeout_ms for the first record); returns
        how many records were read."""
        self._offset = monotonic_to_realtime_offset()
        self._count = 0
        if self.ringbuf:
            self.bpf.ring_buffer_poll(timeout_ms)
        else:
            self.bpf.perf_buffer_poll(timeout_ms)
        return self._count
