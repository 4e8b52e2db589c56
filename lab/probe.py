"""`lab probe`: real connections between every ordered pair of lab pods.

One helper per source pod runs inside the pod's netns (`python -m lab.probe`), in
three steps driven over its stdin/stdout:

  1. it listens on every probed port its pod does not already serve, so a destination
     without a server on that port still answers (the verdict is about the network);
     then prints "ready";
  2. on "go", it probes every target concurrently and prints one JSON line of results;
  3. on end of input it closes its listeners and exits (others may still be probing it).

TCP is allowed when the handshake completes (a RST also proves the path both ways, so
"connection refused" counts as allowed). UDP is allowed when a datagram got a reply; the
probe sends a few copies within the timeout and the payload is a valid DNS query, so a
DNS server on the probed port replies too.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import LabError

if TYPE_CHECKING:  # the helper runs in every pod: it imports nothing it does not use
    from lab.state import LabState

# A DNS query for "probe.lab." type A, id 0x4d42: any UDP server of the lab answers it.
UDP_PAYLOAD = bytes.fromhex("4d42010000010000000000000570726f6265036c61620000010001")
UDP_TRIES = 3


@dataclass(frozen=True)
class Target:
    key: str
    ip: str


# -- the helper, inside a pod's netns --------------------------------------------------
class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(b"probe-listener\n", addr)  # type: ignore[attr-defined]


async def _listen(checks: list[tuple[int, str]]) -> list[Any]:
    loop = asyncio.get_running_loop()
    held: list[Any] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    for port, proto in sorted(set(checks)):
        try:
            if proto == "TCP":
                held.append(await asyncio.start_server(accept, "0.0.0.0", port))
            else:
                transport, _ = await loop.create_datagram_endpoint(
                    _Echo, local_addr=("0.0.0.0", port))
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
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
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
                     timeout: float) -> list[list[Any]]:
    async def one(t: Target, port: int, proto: str) -> list[Any]:
        ok = await (_tcp if proto == "TCP" else _udp)(t.ip, port, timeout)
        return [t.key, port, proto, ok]

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
    parser = argparse.ArgumentParser(prog="python -m lab.probe")
    parser.add_argument("--config", required=True, help="JSON: checks, targets, timeout")
    args = parser.parse_args(argv)
    asyncio.run(_helper(json.loads(args.config)))
    return 0


# -- the controller, in the CLI ---------------------------------------------------------
def _sctp_note(protocols: list[str]) -> str:
    if "SCTP" not in protocols:
        return ""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP).close()
    except OSError as err:
        return f" (and this kernel has no SCTP sockets: {err.strerror})"
    return ""


def run_probe(state: "LabState", ports: list[int], protocols: list[str],
              timeout: float = 1.0) -> list[Any]:
    """Verdicts (agent.policy.matrix.Verdict) for every ordered pair of distinct pods."""
    from lab.netns import REPO_ROOT, child_env, python_in_netns
    from agent.policy.matrix import Verdict

    unsupported = sorted({p.upper() for p in protocols} - {"TCP", "UDP"})
    if unsupported:
        # SCTP is enforced by the datapath (and checked there with BPF test runs), but
        # a probe that cannot send it must not report "denied" for it either.
        raise LabError(f"lab probe: cannot probe {', '.join(unsupported)}: the lab sends "
                       f"TCP and UDP only{_sctp_note(unsupported)}")
    pods = sorted((p for p in state.pods.values() if p.netns), key=lambda p: p.key)
    checks = [[port, proto.upper()] for proto in sorted(set(protocols))
              for port in sorted(set(ports))]
    helpers: list[tuple[str, subprocess.Popen[str]]] = []
    try:
        for pod in pods:
            config = {"checks": checks, "timeout": timeout,
                      "targets": [[t.key, t.ip] for t in pods if t.key != pod.key]}
            cmd = python_in_netns(pod.netns, "lab.probe", ["--config", json.dumps(config)])
            helpers.append((pod.key, subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, env=child_env(), cwd=str(REPO_ROOT))))
        for key, proc in helpers:
            _expect(proc, key, "ready")
        # Every listener is up before anyone probes.
        for _, proc in helpers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        verdicts = []
        for key, proc in helpers:
            for dst, port, proto, ok in json.loads(_expect(proc, key, "[")):
                verdicts.append(Verdict(key, dst, proto, int(port), bool(ok)))
        return sorted(verdicts)
    finally:
        for _, proc in helpers:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        for _, proc in helpers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _expect(proc: subprocess.Popen[str], key: str, start: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(start):
        proc.kill()
        _, err = proc.communicate()
        raise LabError(f"the probe helper in pod {key} failed: {(line + err).strip()[-800:]}")
    return line


if __name__ == "__main__":
    sys.exit(helper_main())
