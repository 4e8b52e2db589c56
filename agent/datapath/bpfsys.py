"""The few bpf(2) commands bcc and pyroute2 do not offer: BPF links (TCX) and pins.

Typed wrappers over the raw syscall (ctypes), one function per command, each filling
only its own part of `union bpf_attr` (the kernel zero-extends a shorter attr, and
rejects non-zero bytes it does not know). Errors raise OSError with the errno, as
os functions do. The layouts are the kernel's uapi (include/uapi/linux/bpf.h, 6.6+
for TCX); this machine's /usr/include may predate them, hence the numbers here.
"""

from __future__ import annotations

import ctypes
import os
import platform

# enum bpf_cmd
BPF_OBJ_PIN = 6
BPF_OBJ_GET = 7
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_LINK_CREATE = 28
BPF_LINK_UPDATE = 29
BPF_LINK_DETACH = 34
# enum bpf_attach_type (6.6+)
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
# enum bpf_link_type
BPF_LINK_TYPE_TCX = 11

_SYS_BPF = {"x86_64": 321, "aarch64": 280}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
CLONE_NEWNET = 0x40000000


class _ObjAttr(ctypes.Structure):            # BPF_OBJ_PIN, BPF_OBJ_GET
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32),
                ("file_flags", ctypes.c_uint32)]


class _InfoAttr(ctypes.Structure):           # BPF_OBJ_GET_INFO_BY_FD
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _LinkCreateAttr(ctypes.Structure):     # BPF_LINK_CREATE, the tcx member
    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_ifindex", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("relative_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("expected_revision", ctypes.c_uint64)]


class _LinkUpdateAttr(ctypes.Structure):     # BPF_LINK_UPDATE
    _fields_ = [("link_fd", ctypes.c_uint32), ("new_prog_fd", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("old_prog_fd", ctypes.c_uint32)]


class _LinkDetachAttr(ctypes.Structure):     # BPF_LINK_DETACH
    _fields_ = [("link_fd", ctypes.c_uint32)]


class LinkInfo(ctypes.Structure):
    """struct bpf_link_info up to its tcx member (ifindex 0: the device is gone)."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("prog_id", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("ifindex", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("rest", ctypes.c_uint8 * 32)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise OSError(0, f"bpf(2): unknown syscall number on {platform.machine()}")
    ret = int(_libc.syscall(nr, cmd, ctypes.byref(attr), ctypes.sizeof(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd {cmd}): {os.strerror(err)}")
    return ret


def setns_net(fd: int) -> None:
    """The calling thread into the network namespace open at fd (os.setns is 3.12+)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        n = ctypes.get_errno()
        raise OSError(n, f"setns: {os.strerror(n)}")


def obj_pin(fd: int, path: str) -> None:
    name = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BPF_OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(name), bpf_fd=fd))


def obj_get(path: str) -> int:
    """A new fd for the pinned object at path (the caller closes it)."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    return _bpf(BPF_OBJ_GET, _ObjAttr(pathname=ctypes.addressof(name)))


def link_create_tcx(prog_fd: int, ifindex: int, attach_type: int) -> int:
    """A TCX link of prog_fd on ifindex (in the calling thread's network namespace),
    appended after any other program there; returns the link's fd."""
    return _bpf(BPF_LINK_CREATE, _LinkCreateAttr(prog_fd=prog_fd, target_ifindex=ifindex,
                                                 attach_type=attach_type))


def link_update(link_fd: int, prog_fd: int) -> None:
    """Swaps the link's program atomically: no packet sees the hook without one."""
    _bpf(BPF_LINK_UPDATE, _LinkUpdateAttr(link_fd=link_fd, new_prog_fd=prog_fd))


def link_detach(link_fd: int) -> None:
    """Detaches the link now, whoever else holds it (pins, fds): it stays defunct."""
    _bpf(BPF_LINK_DETACH, _LinkDetachAttr(link_fd=link_fd))


def link_info(link_fd: int) -> LinkInfo:
    info = LinkInfo()
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _InfoAttr(bpf_fd=link_fd, info_len=ctypes.sizeof(info),
                                           info=ctypes.addressof(info)))
    return info


class _ProgInfo(ctypes.Structure):
    """struct bpf_prog_info up to its image sizes."""
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("tag", ctypes.c_uint8 * 8), ("jited_prog_len", ctypes.c_uint32),
                ("xlated_prog_len", ctypes.c_uint32)]


def prog_sizes(prog_fd: int) -> tuple[int, int]:
    """(JITed bytes, verified instructions) of a loaded program."""
    info = _ProgInfo()
    _bpf(BPF_OBJ_GET_INFO_BY_FD, _InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info),
                                           info=ctypes.addressof(info)))
    return int(info.jited_prog_len), int(info.xlated_prog_len) // 8
