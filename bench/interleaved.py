"""Side-by-side measurement at sub-millisecond pairing: one client process, every mode in turn.

    python -m bench.interleaved '<json spec>'     (run by bench.datapath, pinned to a CPU)

On this shared VM one-second iperf3 rounds of the *same* path differ by 2x (an A/A pair
of no-program nodes measured back to back: 0.5x-2.4x), so a 5% cost is invisible however
the rounds are paired. Here a single process holds one connection into every mode's
server pod and alternates between them: a bulk chunk (8 MiB, ~4 ms) or a 64-byte round
trip to each mode in turn, the order rotated every cycle. Whatever the machine does
(a host preemption, a frequency change) lands on all modes alike, within milliseconds.
Measured this way an A/A pair agrees to about 1% in pooled throughput over 5 s.

The spec: {"pods": {mode: [client_netns, server_ip]}, "sink_port", "rr_port", "crr_port",
"bulk_seconds", "chunk_bytes", "rr_count", "crr_count", "rr_client"}; the server addresses are of one
IP family (the sockets follow them: IPv4 or IPv6). Sockets are created inside each
client pod's network namespace (a socket keeps the namespace it was made in), so the
traffic is the pod's own: its veth, its node, its enforcement. The output, one JSON line:
per mode the bulk bytes and seconds (and per-second blocks for the spread), and the RR and
CRR samples in microseconds; percentiles are computed by the caller (bench.report).

RR and CRR run in bench/rr_client.c when the spec names its binary ("rr_client", built
by bench.datapath with gcc): the same alternation, rotation and warm-up as the Python
loops below, without the interpreter's ~40 us per round trip in every sample. Without
it (no gcc) the Python loops run, and the report says which client measured.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import struct
import subprocess
import sys
import time
from typing import Any, Iterator

from bench.topology import own
from lab.netbuilder import enter_netns, netns_path, open_netns

REQUEST = 64
RST_ON_CLOSE = struct.pack("ii", 1, 0)   # close with RST: no TIME_WAIT pile-up


def _rotations(modes: list[str]) -> Iterator[list[str]]:
    """Every cycle a different mode goes first, so none always follows the same one."""
    k = 0
    while True:
        yield modes[k % len(modes):] + modes[:k % len(modes)]
        k += 1


class Namespaces:
    """Open fds of the pods' network namespaces; `enter(mode)` switches this thread."""

    def __init__(self, pods: dict[str, tuple[str, str]]) -> None:
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY)
        self.fds = {m: open_netns(own(ns)) for m, (ns, _) in pods.items()}
        self.families = {m: socket.AF_INET6 if ":" in ip else socket.AF_INET
                         for m, (_, ip) in pods.items()}

    def enter(self, mode: str) -> None:
        enter_netns(self.fds[mode])

    def leave(self) -> None:
        enter_netns(self.home)

    def socket_in(self, mode: str) -> socket.socket:
        self.enter(mode)
        try:
            s = socket.socket(self.families[mode], socket.SOCK_STREAM)
        finally:
            self.leave()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(10)
        return s


def _recv_exact(s: socket.socket, n: int) -> None:
    while n > 0:
        got = s.recv(n)
        if not got:
            raise ConnectionError("server closed the connection")
        n -= len(got)


def _connect_all(ns: Namespaces, ips: dict[str, str], port: int) -> dict[str, socket.socket]:
    """One connection per mode, each made from its client pod's namespace."""
    socks = {}
    for m, ip in ips.items():
        s = ns.socket_in(m)
        s.connect((ip, port))
        socks[m] = s
    return socks


def bulk(ns: Namespaces, ips: dict[str, str], port: int, seconds: float,
         chunk: int) -> dict[str, Any]:
    """Chunks of `chunk` bytes to each mode in turn; a chunk ends when the sink has read
    all of it and answered one byte, so the time is delivery, not buffering."""
    socks = _connect_all(ns, ips, port)
    payload = memoryview(bytearray(chunk))
    header = struct.pack("!Q", chunk)

    def one(s: socket.socket) -> float:
        t0 = time.perf_counter()
        s.sendall(header)
        s.sendall(payload)
        _recv_exact(s, 1)
        return time.perf_counter() - t0

    for s in socks.values():     # warm up: slow start, caches, conntrack entries
        for _ in range(4):
            one(s)
    total = {m: 0.0 for m in ips}
    chunks = {m: 0 for m in ips}
    blocks: list[dict[str, float]] = []
    block = {m: 0.0 for m in ips}
    end = block_end = time.monotonic()
    end += seconds
    block_end += 1.0
    for order in _rotations(list(ips)):
        for m in order:
            d = one(socks[m])
            total[m] += d
            block[m] += d
            chunks[m] += 1
        now = time.monotonic()
        if now >= block_end:
            blocks.append(block)
            block = {m: 0.0 for m in ips}
            block_end = now + 1.0
        if now >= end:
            break
    for s in socks.values():
        s.close()
    return {m: {"bytes": chunks[m] * chunk, "seconds": total[m],
                "block_seconds": [b[m] for b in blocks]} for m in ips}


def rr(ns: Namespaces, ips: dict[str, str], port: int, count: int) -> dict[str, list[float]]:
    """`count` 64-byte round trips per mode on one connection each, modes alternating."""
    socks = _connect_all(ns, ips, port)
    payload = b"x" * REQUEST
    clock = time.perf_counter_ns
    out: dict[str, list[float]] = {m: [] for m in ips}
    rotations = _rotations(list(ips))
    for i in range(count + 200):          # the first 200 cycles warm up
        for m in next(rotations):
            s = socks[m]
            t0 = clock()
            s.sendall(payload)
            _recv_exact(s, REQUEST)
            if i >= 200:
                out[m].append((clock() - t0) / 1000)
    for s in socks.values():
        s.close()
    return out


def crr(ns: Namespaces, ips: dict[str, str], port: int, count: int) -> dict[str, list[float]]:
    """`count` new connections per mode (connect, 64 bytes each way, RST), alternating.
    The socket is made in the pod's namespace before the clock starts."""
    payload = b"y" * REQUEST
    clock = time.perf_counter_ns
    out: dict[str, list[float]] = {m: [] for m in ips}
    rotations = _rotations(list(ips))
    for i in range(count + 20):
        for m in next(rotations):
            s = ns.socket_in(m)
            t0 = clock()
            s.connect((ips[m], port))
            s.sendall(payload)
            _recv_exact(s, REQUEST)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST_ON_CLOSE)
            s.close()
            if i >= 20:
                out[m].append((clock() - t0) / 1000)
    return out


def c_client(binary: str, kind: str, pods: dict[str, tuple[str, str]], port: int, count: int,
             warmup: int) -> dict[str, list[float]]:
    """rr or crr through bench/rr_client.c (module docstring); samples in us per mode."""
    targets = [a for ns, ip in pods.values() for a in (str(netns_path(own(ns))), ip)]
    done = subprocess.run([binary, kind, str(count), str(warmup), str(port), *targets],
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"rr_client {kind} failed: {done.stderr.strip()}")
    lines = done.stdout.splitlines()
    return {m: [float(x) for x in line.split()] for m, line in zip(pods, lines)}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    pods = {m: (str(v[0]), str(v[1])) for m, v in spec["pods"].items()}
    ips = {m: ip for m, (_, ip) in pods.items()}
    ns = Namespaces(pods)
    # A collection pause would land on whichever mode was running: none during measuring.
    gc.disable()
    out: dict[str, Any] = {"bulk": bulk(ns, ips, int(spec["sink_port"]), float(spec["bulk_seconds"]),
                        int(spec["chunk_bytes"]))}
    binary = spec.get("rr_client")
    if binary:
        out["rr_us"] = c_client(binary, "rr", pods, int(spec["rr_port"]),
                                int(spec["rr_count"]), 200)
        out["crr_us"] = c_client(binary, "crr", pods, int(spec["crr_port"]),
                                 int(spec["crr_count"]), 20)
    else:
        out["rr_us"] = rr(ns, ips, int(spec["rr_port"]), int(spec["rr_count"]))
        out["crr_us"] = crr(ns, ips, int(spec["crr_port"]), int(spec["crr_count"]))
    out["client"] = "c" if binary else "python"
    return out


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
