"""The fast path (bpf/lib/fastpath.h) and its tail calls into the full programs, run with
BPF_PROG_TEST_RUN on the session datapath.

- a packet the fast path does not pass (a packet on an interface without an endpoint:
  loopback here) reaches the full program through tail_calls and is decided there;
- an empty tail-call slot fails closed: the packet is dropped and counted as
  MISSED_TAIL_CALL, never passed without the full program having seen it.
The verdicts themselves (the fast path passes exactly what the full program's own fast
path passed) are every other datapath test: they all go through the fast program.
"""

from __future__ import annotations

import ctypes
from typing import Any

from agent.datapath import layout
from observe.reasons import DropReason
from tests.datapath.progrun import TCP_SYN, prog_test_run, tcp_frame

TC_ACT_SHOT = 2
FRAME = tcp_frame("10.99.0.1", "10.99.0.2", 40000, 80, TCP_SYN)   # new: never fast


def _dropped(datapath: Any, reason: DropReason) -> int:
    drops = datapath._bpf[b"drop_metrics"]
    return sum(int(c.packets) for c in drops[ctypes.c_uint32(int(reason))])


def test_a_packet_the_fast_path_leaves_is_decided_by_the_full_program(datapath: Any) -> None:
    # No endpoint on the test run's interface: only the full program drops (and counts)
    # that; the fast path never drops.
    before = _dropped(datapath, DropReason.NO_MATCHING_LOCAL_CONTAINER_FOUND)
    rc, _ = prog_test_run(datapath._progs["to_container"].fd, FRAME, 1)
    assert rc == TC_ACT_SHOT
    assert _dropped(datapath, DropReason.NO_MATCHING_LOCAL_CONTAINER_FOUND) == before + 1


def test_an_empty_tail_call_slot_drops_and_counts(datapath: Any) -> None:
    slots = datapath._bpf[b"tail_calls"]
    key = ctypes.c_int(layout.TAIL_TO_CONTAINER)
    before = _dropped(datapath, DropReason.MISSED_TAIL_CALL)
    del slots[key]
    try:
        rc, _ = prog_test_run(datapath._progs["to_container"].fd, FRAME, 1)
        assert rc == TC_ACT_SHOT
        assert _dropped(datapath, DropReason.MISSED_TAIL_CALL) == before + 1
    finally:
        slots[key] = ctypes.c_int(datapath._progs["to_container_full"].fd)
    rc, _ = prog_test_run(datapath._progs["to_container"].fd, FRAME, 1)
    assert _dropped(datapath, DropReason.MISSED_TAIL_CALL) == before + 1
