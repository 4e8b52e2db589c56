"""The helper `lab probe` runs inside each source pod's netns (`python -m
lab.probe_helper --config JSON`), driven over its stdin/stdout in three steps:

  1. it listens on every probed port its pod does not already serve, so a destination
     without a server on that port still answers (the verdict is about the network);
     then prints "ready";
  2. on "go", it probes every target concurrently and prints one JSON line of results,
     [[target key, port, protocol, allowed], ...];
  3. on end of input it closes its listeners and exits (others may still be probing it).

TCP is allowed when the handshake completes (a RST also proves the path both ways, so
"connection refused" counts as allowed). UDP is allowed when a datagram got a reply; the
probe sends a few copies within the timeout and the payload is a valid DNS query, so a
DNS server on the probed port replies too. A target's address is IPv4 or IPv6 (one
family per run, `lab probe --family`); the listeners take both.

Standard library only: one copy starts in every pod at once, so it imports nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
import sys
from dataclasses import dataclass
from typing import Any, cast

# A DNS query for "probe.lab." type A, id 0x4d42: any UDP server of the lab answers it.
UDP_PAYLOAD = bytes.fromhex("4d42010000010000000000000570726f6265036c61620000010001")
UDP_TRIES = 3


@dataclass(frozen=True)
class Target:
    key: str
    ip: str


Result = tuple[str, int, str, bool]   # (target key, port, protocol, allowed)


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A datagram endpoint's transport (asyncio's own class does not subclass the ABC).
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"probe-listener\n", addr)


async def _listen(checks: list[tuple[int, str]]) -> list[asyncio.Server | asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    held: list[asyncio.Server | asyncio.BaseTransport] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    for port, proto in sorted(set(checks)):
        try:
            if proto == "TCP":
                # host None: one listener per family.
                held.append(await asyncio.start_server(accept, None, port))
            else:
                # One UDP socket for both families (IPV6_V6ONLY off).
                sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                try:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    sock.bind(("::", port))
                except OSError:
                    sock.close()
                    raise
                transport, _ = await loop.create_datagram_endpoint(_Echo, sock=sock)
                held.append(transport)
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise  # in use: the pod's own server answers on that port
    return held


async def _tcp(ip: str, port: int, timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    except ConnectionRefusedError:
        return True
    except (asyncio.TimeoutError, OSError):
        return False
    writer.close()
    return True


async def _udp(ip: str, port: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((ip, port))
        deadline = loop.time() + timeout
        for attempt in range(UDP_TRIES):
            sock.send(UDP_PAYLOAD)
            wait = timeout / UDP_TRIES if attempt < UDP_TRIES - 1 else deadline - loop.time()
            try:
                await asyncio.wait_for(loop.sock_recv(sock, 2048), max(wait, 0.01))
                return True
            except asyncio.TimeoutError:
                continue
            except OSError:
                return False  # ICMP unreachable: no reply from the pod's side
        return False
    finally:
        sock.close()


async def _probe_all(targets: list[Target], checks: list[tuple[int, str]],
                     timeout: float) -> list[Result]:
    async def one(t: Target, port: int, proto: str) -> Result:
        ok = await (_tcp if proto == "TCP" else _udp)(t.ip, port, timeout)
        return (t.key, port, proto, ok)

    return list(await asyncio.gather(*(one(t, port, proto) for t in targets
                                       for port, proto in checks)))


async def _helper(config: dict[str, Any]) -> None:
    checks = [(int(p), str(proto)) for p, proto in config["checks"]]
    targets = [Target(k, ip) for k, ip in config["targets"]]
    held = await _listen(checks)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    if line.strip() == "go":
        results = await _probe_all(targets, checks, float(config["timeout"]))
        print(json.dumps(results), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)  # EOF: everyone is done
    for h in held:
        h.close()


def helper_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.probe_helper")
    parser.add_argument("--config", required=True, help="JSON: checks, targets, timeout")
    args = parser.parse_args(argv)
    asyncio.run(_helper(json.loads(args.config)))
    return 0


if __name__ == "__main__":
    sys.exit(helper_main())
