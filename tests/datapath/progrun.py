"""The datapath's tc programs run on crafted packets with BPF_PROG_TEST_RUN: no network,
no attach, no traffic leaving the process.

The kernel runs the program once (or `repeat` times) on a copy of the frame and returns
its tc verdict. The skb it builds comes from loopback, so `skb->ifindex` is 1: the
program finds its endpoint under ifindex 1 in the `endpoints` map (whoever runs a
program puts the endpoint it wants there). Used by prog_cost.py (what one packet
costs) and test_generated_scenarios.py (what the programs decide).

Frames: Ethernet + IPv4 (options on request, DF) or IPv6 (extension headers on request,
`ipv6_frame` and the builders below it) + the L4 header. L4 checksums are left 0: the
programs read ports and flags, never checksums. `first_packet` takes addresses of either
family.
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

IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMPV6 = 6, 17, 132, 58
TCP_SYN, TCP_ACK = 0x02, 0x10

_MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"
_ETH = _MACS + b"\x08\x00"
_ETH6 = _MACS + b"\x86\xdd"

# IPv6 extension headers (next header values) and ICMPv6 types the tests craft.
EXT_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_AUTH, EXT_DEST = 0, 43, 44, 51, 60
ICMP6_DEST_UNREACH, ICMP6_PKT_TOOBIG, ICMP6_TIME_EXCEED, ICMP6_PARAMPROB = 1, 2, 3, 4
ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY = 128, 129
ICMP6_ROUTER_SOLICIT, ICMP6_NEIGHBOUR_SOLICIT, ICMP6_NEIGHBOUR_ADVERT = 133, 135, 136
ICMP6_MLD2_REPORT = 143


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


def tcp_header(sport: int, dport: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, flags, 65535, 0, 0) + payload


def first_l4(protocol: int, sport: int, dport: int) -> bytes:
    """The L4 header (and a byte of payload) that opens a connection: TCP SYN, a UDP
    datagram, an SCTP INIT."""
    if protocol == IPPROTO_TCP:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, TCP_SYN, 65535, 0, 0)
    if protocol == IPPROTO_UDP:
        return struct.pack("!HHHH", sport, dport, 9, 0) + b"x"
    if protocol == IPPROTO_SCTP:
        return _sctp_init(sport, dport)
    raise ValueError(f"no first packet for IP protocol {protocol}")


def first_packet(protocol: int, src: str, dst: str, sport: int, dport: int,
                 ip_options: int = 0, ext: tuple["Ext", ...] = ()) -> bytes:
    """The packet that opens a connection, in the family of its addresses: IPv4 with
    `ip_options` bytes of options, or IPv6 behind the extension headers `ext`."""
    l4 = first_l4(protocol, sport, dport)
    if ":" in src:
        return ipv6_frame(src, dst, protocol, l4, ext)
    return ipv4_frame(src, dst, protocol, l4, ip_options)


# --- IPv6 -------------------------------------------------------------------------------

Ext = tuple[int, bytes]   # (extension header type, its bytes after next header and length)


def hop_by_hop(size: int = 8) -> Ext:
    """Hop-by-hop options of `size` bytes (a multiple of 8): PadN filling the body."""
    return EXT_HOP, _padn(size - 2)


def dest_options(size: int = 8) -> Ext:
    return EXT_DEST, _padn(size - 2)


def routing(segments: int = 1) -> Ext:
    """A type 0-style routing header with `segments` 16-byte addresses (the datapath
    only steps over it: segments left 0, so no node would process it)."""
    return EXT_ROUTING, bytes([0, 0]) + b"\0" * 4 + b"\0" * (16 * segments)


def fragment(offset: int = 0, more: bool = False, ident: int = 0x4d42) -> Ext:
    """A fragment header: `offset` in 8-byte units (0 = the first fragment)."""
    return EXT_FRAGMENT, struct.pack("!HI", (offset << 3) | int(more), ident)


def auth(size: int = 24) -> Ext:
    """An authentication header of `size` bytes (a multiple of 8; SPI and sequence
    number, then an integrity value of zeros)."""
    return EXT_AUTH, b"\0\0" + struct.pack("!II", 0x100, 1) + b"\0" * (size - 12)


def _padn(n: int) -> bytes:
    if n < 2:
        return b"\0" * n      # Pad1 options
    return bytes([1, n - 2]) + b"\0" * (n - 2)


def ext_chain(ext: tuple[Ext, ...], upper: int) -> tuple[int, bytes]:
    """(first next header, bytes) of the extension headers `ext` in front of `upper`."""
    out = b""
    for i, (kind, body) in enumerate(ext):
        nxt = ext[i + 1][0] if i + 1 < len(ext) else upper
        size = 2 + len(body)
        if kind == EXT_FRAGMENT:
            out += bytes([nxt, 0]) + body            # fixed 8 bytes, no length field
        elif kind == EXT_AUTH:
            out += bytes([nxt, size // 4 - 2]) + body
        else:
            assert size % 8 == 0, f"extension header {kind} of {size} bytes"
            out += bytes([nxt, size // 8 - 1]) + body
    return (ext[0][0] if ext else upper), out


def ipv6_header(src: str, dst: str, next_header: int, payload_len: int,
                hop_limit: int = 64) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, payload_len, next_header, hop_limit,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst))


def ipv6_packet(src: str, dst: str, upper: int, l4: bytes, ext: tuple[Ext, ...] = (),
                hop_limit: int = 64) -> bytes:
    """IPv6 header + extension headers + l4 (no Ethernet): what an ICMPv6 error embeds."""
    first, chain = ext_chain(ext, upper)
    return ipv6_header(src, dst, first, len(chain) + len(l4), hop_limit) + chain + l4


def ipv6_frame(src: str, dst: str, upper: int, l4: bytes, ext: tuple[Ext, ...] = (),
               hop_limit: int = 64) -> bytes:
    """Ethernet + IPv6 + extension headers `ext` (in order) + l4, whose protocol is
    `upper`."""
    return _ETH6 + ipv6_packet(src, dst, upper, l4, ext, hop_limit)


def icmp6(kind: int, code: int = 0, rest: bytes = b"\0\0\0\0", body: bytes = b"") -> bytes:
    """An ICMPv6 message: type, code, checksum 0, 4 bytes (echo: id and sequence)."""
    return struct.pack("!BBH", kind, code, 0) + rest + body


def icmp6_echo(kind: int, ident: int, seq: int = 1) -> bytes:
    return icmp6(kind, 0, struct.pack("!HH", ident, seq), b"membrane")


def icmp6_error(kind: int, embedded: bytes, code: int = 0) -> bytes:
    """An ICMPv6 error embedding (the start of) the packet that caused it; packet too
    big carries the MTU where the others have 4 unused bytes."""
    rest = struct.pack("!I", 1280) if kind == ICMP6_PKT_TOOBIG else b"\0\0\0\0"
    return icmp6(kind, code, rest, embedded)
