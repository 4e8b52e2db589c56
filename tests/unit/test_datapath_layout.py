"""C/Python struct parity (Cilium's alignchecker idea): every ctypes mirror in
agent/datapath/layout.py has the size and field offsets of the struct bcc compiled.

Privileged: it compiles bpf/bpf_lxc.c (maps pinned under a throwaway bpffs dir). The
unprivileged half (every struct, constant and map against the C text, including the
ring buffer's struct event, which bcc gives no type for) is tests/unit/test_c_mirrors.py."""

from __future__ import annotations

import ctypes
import os
import shutil
from typing import Any, Iterator

import pytest

from agent.datapath import layout
from agent.datapath.compiler import CompileOptions, compile_datapath

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def compiled() -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("needs root to compile and load BPF")
    pytest.importorskip("bcc")
    pin_dir = f"/sys/fs/bpf/mbrt-{os.getpid()}-layout"
    try:
        yield compile_datapath(CompileOptions(pin_dir=pin_dir))
    finally:
        shutil.rmtree(pin_dir, ignore_errors=True)


def _offsets(cls: Any) -> list[tuple[str, int, int]]:
    return [(name, getattr(cls, name).offset, getattr(cls, name).size)
            for name, *_ in cls._fields_]


def _c_type(bpf: Any, map_name: str, part: str) -> Any:
    t = getattr(bpf[map_name.encode()], part)
    # per-CPU values come as Leaf * ncpus
    return getattr(t, "_type_", t) if issubclass(t, ctypes.Array) else t


@pytest.mark.parametrize("map_name", sorted(layout.MAPS))
def test_key_and_value_mirrors_match_what_bcc_compiled(compiled: Any, map_name: str) -> None:
    key_cls, value_cls = layout.MAPS[map_name]
    c_key = _c_type(compiled, map_name, "Key")
    c_value = _c_type(compiled, map_name, "Leaf")
    if key_cls is None:
        assert ctypes.sizeof(c_key) == 4
    else:
        assert ctypes.sizeof(key_cls) == ctypes.sizeof(c_key)
        assert _offsets(key_cls) == _offsets(c_key)
    assert value_cls is not None
    assert ctypes.sizeof(value_cls) == ctypes.sizeof(c_value)
    assert _offsets(value_cls) == _offsets(c_value)


@pytest.mark.parametrize("ip", ["10.0.0.1", "255.255.255.255", "0.0.0.0", "192.0.2.200"])
def test_addresses_round_trip_in_network_byte_order(ip: str) -> None:
    v = layout.ip_to_be32(ip)
    assert bytes(ctypes.c_uint32(v)) == bytes(int(x) for x in ip.split("."))
    assert layout.be32_to_ip(v) == ip
