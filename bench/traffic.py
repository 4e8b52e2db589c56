"""Pod-side traffic for the benchmarks; stdlib only so it starts fast in any namespace.

    serve RR_PORT CRR_PORT UDP_PORT [SINK_PORT]
                                      TCP echo (persistent), TCP one-shot request/response
                                      (then close), UDP echo, and a bulk sink (8-byte
                                      length, that many bytes, answered with one byte:
                                      bench.interleaved's chunks); prints "ready"
    rr IP PORT N SIZE                 N round trips of SIZE bytes on one connection
    crr IP PORT N                     N x (connect, SIZE-64 request, response, close)
    probe IP PORT                     UDP ping every ~1 ms; prints "<monotonic ns> <0|1>"
                                      whenever the answer flips (1 = echoed, 0 = not)
    check IP PORT                     one TCP connect: open | refused | timeout
    flood IP PORT PPS SECONDS SIZE    UDP datagrams at PPS (0: as fast as it can) for
                                      SECONDS; prints {"sent": n, "seconds": s}

rr and crr print one JSON line: {"samples_us": [...]} (percentiles are computed by the
caller with bench.report, one definition for every number). Every IP may be IPv4 or IPv6;
the servers listen on both (one dual-stack socket each, IPv4 arriving IPv4-mapped). Times are
time.perf_counter_ns / CLOCK_MONOTONIC, which every network namespace shares, so the
parent can compare a probe's timestamps with its own.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import sys
import threading
import time
from typing import Callable

REQUEST = 64


def _recv_exact(c: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = c.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed")
        buf += chunk
    return buf


def _echo(c: socket.socket) -> None:
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)
    except OSError:
        pass
    finally:
        c.close()


def _one_shot(c: socket.socket) -> None:
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(_recv_exact(c, REQUEST))
        # Wait for the client's close so that TIME_WAIT lands on the client side.
        c.recv(1)
    except OSError:
        pass
    finally:
        c.close()


def _sink(c: socket.socket) -> None:
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = memoryview(bytearray(1 << 20))
    try:
        while True:
            header = c.recv(8, socket.MSG_WAITALL)
            if len(header) < 8:
                return
            (left,) = struct.unpack("!Q", header)
            while left > 0:
                got = c.recv_into(buf, min(left, len(buf)))
                if not got:
                    return
                left -= got
            c.sendall(b"k")
    except OSError:
        pass
    finally:
        c.close()


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _dual_stack(kind: socket.SocketKind, port: int) -> socket.socket:
    """One socket for both families: the IPv6 wildcard with IPV6_V6ONLY off."""
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


def _listen(port: int) -> socket.socket:
    s = _dual_stack(socket.SOCK_STREAM, port)
    s.listen(512)
    return s


def _accept_loop(s: socket.socket, handler: Callable[[socket.socket], None]) -> None:
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def _udp_echo(u: socket.socket) -> None:
    while True:
        data, addr = u.recvfrom(2048)
        u.sendto(data, addr)


def serve(rr_port: int, crr_port: int, udp_port: int, sink_port: int | None = None) -> None:
    u = _dual_stack(socket.SOCK_DGRAM, udp_port)
    threads = [threading.Thread(target=_accept_loop, args=(_listen(rr_port), _echo)),
               threading.Thread(target=_accept_loop, args=(_listen(crr_port), _one_shot)),
               threading.Thread(target=_udp_echo, args=(u,))]
    if sink_port is not None:
        threads.append(threading.Thread(target=_accept_loop, args=(_listen(sink_port), _sink)))
    for t in threads:
        t.daemon = True
        t.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def rr(ip: str, port: int, n: int, size: int) -> list[float]:
    c = socket.create_connection((ip, port), timeout=5)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = b"x" * size
    out = []
    clock = time.perf_counter_ns
    for _ in range(200):          # warm caches, conntrack and the CPU's frequency first
        c.sendall(payload)
        _recv_exact(c, size)
    for _ in range(n):
        t0 = clock()
        c.sendall(payload)
        _recv_exact(c, size)
        out.append((clock() - t0) / 1000)
    c.close()
    return out


def crr(ip: str, port: int, n: int) -> list[float]:
    payload = b"y" * REQUEST
    out = []
    clock = time.perf_counter_ns
    linger = struct.pack("ii", 1, 0)   # close with RST: no TIME_WAIT pile-up over n
    for i in range(n + 20):
        t0 = clock()
        c = socket.socket(_family(ip), socket.SOCK_STREAM)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(5)
        c.connect((ip, port))
        c.sendall(payload)
        _recv_exact(c, REQUEST)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        c.close()
        if i >= 20:               # the first few warm up
            out.append((clock() - t0) / 1000)
    return out


def probe(ip: str, port: int, timeout_s: float = 0.002) -> None:
    """A "0" needs two probes in a row unanswered (reported with the first one's send
    time): one late echo on a busy machine must not pass for a policy change."""
    u = socket.socket(_family(ip), socket.SOCK_DGRAM)
    u.connect((ip, port))
    u.setblocking(False)
    state = -1
    first_fail: int | None = None
    seq = 0
    while True:
        seq += 1
        sent = time.monotonic_ns()
        try:
            u.send(struct.pack("!Q", seq))
        except OSError:
            pass
        ok = 0
        deadline = sent + int(timeout_s * 1e9)
        while True:
            left = (deadline - time.monotonic_ns()) / 1e9
            if left <= 0 or not select.select([u], [], [], left)[0]:
                break
            try:
                data = u.recv(64)
            except OSError:
                break
            if len(data) == 8 and struct.unpack("!Q", data)[0] == seq:
                ok = 1
                break
        if ok:
            first_fail = None
            if state != 1:
                state = 1
                # The send time: when the packet was decided, give or take a microsecond.
                print(f"{sent} 1", flush=True)
            time.sleep(0.0002)
        elif first_fail is None:
            first_fail = sent
        elif state != 0:
            state = 0
            print(f"{first_fail} 0", flush=True)


def check(ip: str, port: int, timeout_s: float = 0.5) -> str:
    try:
        socket.create_connection((ip, port), timeout=timeout_s).close()
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError:
        return "timeout"


def flood(ip: str, port: int, pps: int, seconds: float, size: int) -> dict[str, float]:
    u = socket.socket(_family(ip), socket.SOCK_DGRAM)
    u.connect((ip, port))
    payload = b"f" * size
    send = u.send
    sent = 0
    batch = 64
    start = time.monotonic()
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if pps and sent >= (now - start) * pps:
            time.sleep(min(0.0005, end - now))   # ahead of schedule
            continue
        for _ in range(batch):
            try:
                send(payload)
            except OSError:   # ENOBUFS under pressure: not sent, not counted
                sent -= 1
            sent += 1
    return {"sent": sent, "seconds": time.monotonic() - start}


def main(argv: list[str]) -> int:
    cmd = argv[0]
    if cmd == "serve":
        serve(*(int(a) for a in argv[1:5]))
    elif cmd == "rr":
        print(json.dumps({"samples_us": rr(argv[1], int(argv[2]), int(argv[3]),
                                           int(argv[4]))}))
    elif cmd == "crr":
        print(json.dumps({"samples_us": crr(argv[1], int(argv[2]), int(argv[3]))}))
    elif cmd == "flood":
        print(json.dumps(flood(argv[1], int(argv[2]), int(argv[3]), float(argv[4]),
                               int(argv[5]))))
    elif cmd == "check":
        print(check(argv[1], int(argv[2])))
    elif cmd == "probe":
        probe(argv[1], int(argv[2]))
    else:
        print(f"unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
