"""Pinned maps keep the size they were created with: what start() does about a new size.

A BPF map's max_entries is fixed when it is created, and bcc reuses a pinned map
whatever size the program now declares. So before compiling, `resize_pins` reads each
pinned map's real size (BPF_OBJ_GET, then BPF_OBJ_GET_INFO_BY_FD) and unpins every map
whose configured size differs: the compile then creates it anew at the new size, and a
warning says what that costs:

  ipcache, cidr, policy   rebuilt by the first regeneration; until then endpoints deny
                          what is not written yet (fail closed, about a second)
  endpoints               registered endpoints are closed at reconcile (init policy),
                          then opened by regeneration
  conntrack               established connections lose their entries: their next
                          packets are judged by policy again, replies may be dropped

The old map lives on while the programs loaded before still use it, and is freed once
this agent's programs replace them on every veth (tc replace, at reconcile). Never more
open: a recreated map starts empty, and empty maps deny.

`map_size` reads a loaded map's real size the same way (status shows it, not the size
the C declares).
"""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Any, Mapping

from core.errors import DatapathError

log = logging.getLogger(__name__)

COST = {
    "ipcache": "rebuilt by the first regeneration (denies until then)",
    "cidr": "rebuilt by the first regeneration (denies until then)",
    "policy": "rebuilt by the first regeneration (endpoints deny until then)",
    "endpoints": "every registered endpoint is closed, then regenerated",
    "conntrack": "established connections are judged by policy again (replies may drop)",
    "ipcache6": "rebuilt by the first regeneration (denies until then)",
    "cidr6": "rebuilt by the first regeneration (denies until then)",
    "conntrack6": "established connections are judged by policy again (replies may drop)",
}


class _MapInfo(ctypes.Structure):
    """The head of the kernel's struct bpf_map_info (uapi/linux/bpf.h); the kernel
    fills as much as the length it is given."""

    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16)]


def _lib() -> Any:
    from bcc.libbcc import lib  # late: only the datapath needs bcc (its bundled libbpf)

    lib.bpf_obj_get.argtypes = [ctypes.c_char_p]
    lib.bpf_obj_get.restype = ctypes.c_int
    lib.bpf_obj_get_info.argtypes = [ctypes.c_uint32, ctypes.c_void_p,
                                     ctypes.POINTER(ctypes.c_uint32)]
    lib.bpf_obj_get_info.restype = ctypes.c_int
    return lib


def map_size(fd: int) -> int:
    """max_entries of the map behind fd, as the kernel created it."""
    info = _MapInfo()
    length = ctypes.c_uint32(ctypes.sizeof(info))
    if _lib().bpf_obj_get_info(fd, ctypes.byref(info), ctypes.byref(length)) != 0:
        err = ctypes.get_errno()
        raise DatapathError(f"reading the info of BPF map fd {fd}: {os.strerror(err)}")
    return int(info.max_entries)


def pinned_size(path: str) -> int | None:
    """max_entries of the map pinned at path; None when nothing is pinned there."""
    if not os.path.exists(path):
        return None
    fd = _lib().bpf_obj_get(path.encode())
    if fd < 0:
        raise DatapathError(f"opening the pinned BPF map {path}: "
                            f"{os.strerror(ctypes.get_errno() or -fd)}")
    try:
        return map_size(fd)
    finally:
        os.close(fd)


def resize_pins(pin_dir: str, sizes: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """Unpins each map of `sizes` pinned in pin_dir with another size; returns
    name -> (old size, new size) of those the compile will create anew."""
    changed: dict[str, tuple[int, int]] = {}
    for name, wanted in sizes.items():
        path = os.path.join(pin_dir, name)
        size = pinned_size(path)
        if size is None or size == wanted:
            continue
        os.unlink(path)
        changed[name] = (size, wanted)
        log.warning("pinned map %s has max_entries %d, configured %d: recreating it at "
                    "%d (%s)", path, size, wanted, wanted, COST.get(name, "rebuilt"))
    return changed
