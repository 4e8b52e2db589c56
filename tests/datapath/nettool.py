"""Traffic helper run inside a pod/node namespace (`ip netns exec NS python nettool.py`).

Stdlib only. Every IP may be IPv4 or IPv6 (servers listen on both). Prints one result
word per probe so tests can assert on it:
  serve tcp|udp PORT...        echo servers (TCP and UDP), until killed
  tcp IP PORT [TIMEOUT]        connect + echo one line: ok | timeout | refused
  udp IP PORT [TIMEOUT]        send one datagram, wait for the echo: ok | timeout | refused
  ping IP [TIMEOUT]            one ICMP / ICMPv6 echo (raw socket): ok | timeout
  stream IP PORT               connect, then every 50 ms send a line and print
                               "ok <n>" for each echo received (until killed)
  conn IP PORT [TIMEOUT]       connect, print "connected"; then per line read on stdin
                               send it and print "ok" when its echo arrives within
                               TIMEOUT, else "timeout" (one packet per line, on demand)
  udp6 IP PORT                 one IPv6 datagram (fire and forget)
  spoof SRC DST PORT           one UDP datagram with a forged source (IP_HDRINCL)
  spoof6 SRC DST PORT          the same over IPv6 (an IPPROTO_RAW socket: header included)
  udpflood IP PORT N           N datagrams as fast as possible
  push PORT                    accept TCP connections; per line read on stdin send one
                               line to each (the server speaks first: a packet in the
                               reply direction of the client's connection), print "sent"
  pull IP PORT                 connect, print "connected", then "got" per line received
  tcpraw SRC DST DPORT FLAGS N N raw TCP segments (IP_HDRINCL, flags as a number, e.g.
                               16 = a bare ACK) from SRC ports 20000.. (one per segment)
"""

from __future__ import annotations

import os
import select
import socket
import struct
import sys
import threading
import time


def _family(ip: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _bound(family: socket.AddressFamily, kind: socket.SocketKind, port: int) -> socket.socket:
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    return s


def serve(kind: str, ports: list[int]) -> None:
    threads = []
    for port in ports:
        for family in (socket.AF_INET, socket.AF_INET6):
            if kind in ("tcp", "both"):
                s = _bound(family, socket.SOCK_STREAM, port)
                s.listen(64)
                threads.append(threading.Thread(target=_tcp_accept, args=(s,), daemon=True))
            if kind in ("udp", "both"):
                u = _bound(family, socket.SOCK_DGRAM, port)
                threads.append(threading.Thread(target=_udp_echo, args=(u,), daemon=True))
    for t in threads:
        t.start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def _tcp_accept(s: socket.socket) -> None:
    while True:
        c, _ = s.accept()
        threading.Thread(target=_tcp_echo, args=(c,), daemon=True).start()


def _tcp_echo(c: socket.socket) -> None:
    try:
        while True:
            data = c.recv(4096)
            if not data:
                break
            c.sendall(data)
    except OSError:
        pass
    finally:
        c.close()


def _udp_echo(u: socket.socket) -> None:
    while True:
        data, addr = u.recvfrom(65535)
        u.sendto(data, addr)


def tcp(ip: str, port: int, timeout: float) -> str:
    s = socket.socket(_family(ip), socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))
        s.sendall(b"hello\n")
        return "ok" if s.recv(64) else "closed"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error:{e.errno}"
    finally:
        s.close()


def udp(ip: str, port: int, timeout: float) -> str:
    s = socket.socket(_family(ip), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.connect((ip, port))   # connected: an ICMP port unreachable surfaces as refused
        s.send(b"hello")
        s.recv(64)
        return "ok"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return f"error:{e.errno}"
    finally:
        s.close()


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ping(ip: str, timeout: float) -> str:
    v6 = ":" in ip
    ident = os.getpid() & 0xFFFF
    payload = b"membrane"
    if v6:
        # The kernel fills in an ICMPv6 raw socket's checksum (RFC 3542) and hands
        # back the message without the IPv6 header.
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        request, reply = 128, 129
        pkt = struct.pack("!BBHHH", request, 0, 0, ident, 1) + payload
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        request, reply = 8, 0
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        pkt = struct.pack("!BBHHH", 8, 0, _csum(hdr + payload), ident, 1) + payload
    s.sendto(pkt, (ip, 0))
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return "timeout"
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return "timeout"
        data, addr = s.recvfrom(1500)
        ihl = 0 if v6 else (data[0] & 0x0F) * 4
        typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if typ == reply and rid == ident and addr[0] == ip:
            return "ok"


def stream(ip: str, port: int) -> None:
    s = socket.socket(_family(ip), socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((ip, port))
    print("connected", flush=True)
    s.settimeout(0.05)
    n = 0
    while True:
        n += 1
        try:
            s.sendall(b"x%d\n" % n)
        except OSError:
            pass
        try:
            if s.recv(4096):
                print(f"ok {n}", flush=True)
        except socket.timeout:
            pass
        except OSError:
            pass
        time.sleep(0.05)


def conn(ip: str, port: int, timeout: float) -> None:
    s = socket.socket(_family(ip), socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(3)
    s.connect((ip, port))
    print("connected", flush=True)
    pending = b""
    for line in sys.stdin:
        msg = line.strip().encode() + b"\n"
        s.setblocking(False)
        try:
            while s.recv(4096):   # late echoes of earlier lines
                pass
        except (BlockingIOError, OSError):
            pass
        pending = msg
        s.settimeout(timeout)
        try:
            s.sendall(msg)
            got = b""
            while not got.endswith(pending):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            print("ok" if got.endswith(pending) else "closed", flush=True)
        except socket.timeout:
            print("timeout", flush=True)
        except OSError as e:
            print(f"error:{e.errno}", flush=True)


def udp6(ip: str, port: int, timeout: float) -> str:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(b"hello", (ip, port))
        return "sent"
    except OSError as e:
        return f"error:{e.errno}"
    finally:
        s.close()


def spoof(src: str, dst: str, port: int) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    payload = b"spoofed"
    udp_hdr = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0)
    total = 20 + len(udp_hdr) + len(payload)
    ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    s.sendto(ip_hdr + udp_hdr + payload, (dst, 0))
    return "sent"


def spoof6(src: str, dst: str, port: int) -> str:
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    payload = b"spoofed"
    udp_hdr = struct.pack("!HHHH", 40000, port, 8 + len(payload), 0)
    ip_hdr = struct.pack("!IHBB16s16s", 6 << 28, len(udp_hdr) + len(payload),
                         socket.IPPROTO_UDP, 64, socket.inet_pton(socket.AF_INET6, src),
                         socket.inet_pton(socket.AF_INET6, dst))
    s.sendto(ip_hdr + udp_hdr + payload, (dst, 0))
    return "sent"


def udpflood(ip: str, port: int, n: int) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(n):
        try:
            s.sendto(b"f", (ip, port))
        except OSError:
            pass
    return "sent"


def push(port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(8)
    clients: list[socket.socket] = []
    lock = threading.Lock()

    def accept() -> None:
        while True:
            c, _ = s.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with lock:
                clients.append(c)

    threading.Thread(target=accept, daemon=True).start()
    print("ready", flush=True)
    for _ in sys.stdin:
        with lock:
            for c in clients:
                try:
                    c.send(b"p\n")
                except OSError:
                    pass
        print("sent", flush=True)


def pull(ip: str, port: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect((ip, port))
    s.settimeout(None)
    print("connected", flush=True)
    buffered = b""
    while True:
        data = s.recv(4096)
        if not data:
            print("closed", flush=True)
            return
        buffered += data
        while b"\n" in buffered:
            _, buffered = buffered.split(b"\n", 1)
            print("got", flush=True)


def tcpraw(src: str, dst: str, dport: int, flags: int, n: int) -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    saddr, daddr = socket.inet_aton(src), socket.inet_aton(dst)
    for i in range(n):
        sport = 20000 + i % 40000
        hdr = struct.pack("!HHIIBBHHH", sport, dport, 1000 + i, 1, 5 << 4, flags, 65535, 0, 0)
        pseudo = saddr + daddr + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(hdr))
        hdr = hdr[:16] + struct.pack("!H", _csum(pseudo + hdr)) + hdr[18:]
        ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(hdr), i & 0xFFFF, 0, 64,
                             socket.IPPROTO_TCP, 0, saddr, daddr)
        try:
            s.sendto(ip_hdr + hdr, (dst, 0))
        except OSError:
            pass
    return "sent"


def main(argv: list[str]) -> None:
    cmd = argv[0]
    if cmd == "serve":
        serve(argv[1], [int(p) for p in argv[2:]])
    elif cmd == "tcp":
        print(tcp(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 1.0))
    elif cmd == "udp":
        print(udp(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 1.0))
    elif cmd == "udp6":
        print(udp6(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 1.0))
    elif cmd == "ping":
        print(ping(argv[1], float(argv[2]) if len(argv) > 2 else 1.0))
    elif cmd == "stream":
        stream(argv[1], int(argv[2]))
    elif cmd == "conn":
        conn(argv[1], int(argv[2]), float(argv[3]) if len(argv) > 3 else 1.0)
    elif cmd == "spoof":
        print(spoof(argv[1], argv[2], int(argv[3])))
    elif cmd == "spoof6":
        print(spoof6(argv[1], argv[2], int(argv[3])))
    elif cmd == "udpflood":
        print(udpflood(argv[1], int(argv[2]), int(argv[3])))
    elif cmd == "push":
        push(int(argv[1]))
    elif cmd == "pull":
        pull(argv[1], int(argv[2]))
    elif cmd == "tcpraw":
        print(tcpraw(argv[1], argv[2], int(argv[3]), int(argv[4]), int(argv[5])))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
