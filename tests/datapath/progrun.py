"""The datapath's tc programs run on crafted packets with BPF_PROG_TEST_RUN: no network,
no attach, no traffic leaving the process.

The kernel runs the program once (or `repeat` times) on a copy of the frame and returns
its tc verdict. The skb it builds comes from loopback, so `skb->ifindex` is 1: the
program finds its endpoint under ifindex 1 in the `endpoints` map (whoever runs a
program puts the endpoint it wants there). Used by prog_cost.py (what one packet
costs) and test_generated_scenarios.py (what the programs decide).

Frames: Ethernet + IPv4 (no options, DF) + the L4 header. L4 checksums are left 0: the
programs read ports and flags, never checksums.
"""

from __future__ import annotations

import ctypes
import os
import platform
import socket
import struct

BPF_PROG_TEST_RUN = 10
# bpf(2) by architecture (the only syscall needed; Python has no wrapper).
NR_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)

TC_ACT_OK = 0
TC_ACT_SHOT = 2

IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP = 6, 17, 132
TCP_SYN, TCP_ACK = 0x02, 0x10

_ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"


class ProgTestRunAttr(ctypes.Structure):
    """union bpf_attr, the BPF_PROG_TEST_RUN member (uapi/linux/bpf.h)."""
    _fields_ = [("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
                ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
                ("batch_size", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)


def prog_test_run(prog_fd: int, frame: bytes, repeat: int = 1) -> tuple[int, int]:
    """(program return value, average ns per run) of `repeat` runs on frame."""
    data_in = ctypes.create_string_buffer(frame, len(frame))
    data_out = ctypes.create_string_buffer(len(frame) + 256)
    attr = ProgTestRunAttr(prog_fd=prog_fd, data_size_in=len(frame),
                       data_size_out=len(data_out),
                       data_in=ctypes.addressof(data_in), data_out=ctypes.addressof(data_out),
                       repeat=repeat)
    if _libc.syscall(NR_BPF, BPF_PROG_TEST_RUN, ctypes.byref(attr), ctypes.sizeof(attr)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"BPF_PROG_TEST_RUN: {os.strerror(err)}")
    return attr.retval, attr.duration


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ipv4_frame(src: str, dst: str, protocol: int, l4: bytes, options: int = 0) -> bytes:
    """Ethernet + IPv4 header (checksummed; `options` bytes of NOP options, a multiple
    of 4 up to 40, so the L4 header starts at a variable offset) + l4."""
    if options % 4 or not 0 <= options <= 40:
        raise ValueError(f"IPv4 options of {options} bytes: a multiple of 4, at most 40")
    hlen = 20 + options
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | hlen // 4, 0, hlen + len(l4), 1, 0x4000, 64,
                     protocol, 0, socket.inet_aton(src), socket.inet_aton(dst))
    ip += b"\x01" * options
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return _ETH + ip + l4


def tcp_frame(src: str, dst: str, sport: int, dport: int, flags: int,
              payload: bytes = b"") -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags, 65535, 0, 0)
    return ipv4_frame(src, dst, IPPROTO_TCP, tcp + payload)


def _sctp_init(sport: int, dport: int) -> bytes:
    """An SCTP INIT: common header (verification tag 0, as INIT requires) and one INIT
    chunk (type 1, 20 bytes: initiate tag, a_rwnd, streams, initial TSN)."""
    common = struct.pack("!HHII", sport, dport, 0, 0)
    return common + struct.pack("!BBHIIHHI", 1, 0, 20, 0x1234567, 65535, 1, 1, 1)


def first_packet(protocol: int, src: str, dst: str, sport: int, dport: int,
                 ip_options: int = 0) -> bytes:
    """The packet that opens a connection: TCP SYN, a UDP datagram, an SCTP INIT."""
    if protocol == IPPROTO_TCP:
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, TCP_SYN, 65535, 0, 0)
    elif protocol == IPPROTO_UDP:
        l4 = struct.pack("!HHHH", sport, dport, 9, 0) + b"x"
    elif protocol == IPPROTO_SCTP:
        l4 = _sctp_init(sport, dport)
    else:
        raise ValueError(f"no first packet for IP protocol {protocol}")
    return ipv4_frame(src, dst, protocol, l4, ip_options)
