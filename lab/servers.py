"""A pod's workload: TCP and UDP servers on its container ports, in one small process.

    python -m lab.servers --name default/backend --tcp 8080 --udp 8080

TCP answers any HTTP request with a status line (`HTTP/1.1 200 OK` by default, so
`curl -I` works; the external host uses `--status 301`) and closes. UDP replies to every
datagram with the pod's name. Both listen on IPv4 and IPv6 (lab pods are dual-stack).
Prints "ready" on stdout once every socket listens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}
MAX_REQUEST = 16384


def http_response(status: int, name: str, head_only: bool, location: str) -> bytes:
    body = f"{name}\n".encode()
    headers = [f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}",
               "Server: membrane-lab",
               "Content-Type: text/plain",
               f"Content-Length: {len(body)}",
               "Connection: close"]
    if location:
        headers.append(f"Location: {location}")
    head = ("\r\n".join(headers) + "\r\n\r\n").encode()
    return head if head_only else head + body


class Http:
    def __init__(self, name: str, status: int, location: str) -> None:
        self.name, self.status, self.location = name, status, location

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # A probe may connect and close without a word: then there is nothing to answer.
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            head_only = request.startswith(b"HEAD ")
            writer.write(http_response(self.status, self.name, head_only, self.location))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()


class Echo(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name.encode()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b"\n", addr)


def dual_stack_udp(port: int) -> socket.socket:
    """One UDP socket for both families: IPv6 wildcard with IPV6_V6ONLY off, so IPv4
    datagrams arrive on it too (as IPv4-mapped addresses, and are answered in IPv4)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    return sock


async def serve(args: argparse.Namespace) -> None:
    http = Http(args.name, args.status, args.location)
    loop = asyncio.get_running_loop()
    # host None: a listening socket per family (asyncio makes the IPv6 one IPv6-only).
    servers = [await asyncio.start_server(http.handle, None, port, limit=MAX_REQUEST)
               for port in args.tcp]
    for port in args.udp:
        await loop.create_datagram_endpoint(lambda: Echo(args.name), sock=dual_stack_udp(port))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    # The launcher reads "ready" then closes its end: later writes must not hit the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.servers")
    parser.add_argument("--name", default="pod", help="ns/name, echoed in replies")
    parser.add_argument("--lab", default="", help="the lab it belongs to (names the process)")
    parser.add_argument("--tcp", type=int, action="append", default=[])
    parser.add_argument("--udp", type=int, action="append", default=[])
    parser.add_argument("--status", type=int, default=200, help="HTTP status to answer")
    parser.add_argument("--location", default="", help="Location header (for 301)")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
