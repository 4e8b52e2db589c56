"""GetFlows followers for the events benchmark (bench/events.py, table 4b).

Ways of following one FlowObserver, counting what arrives and what was lost:

    StreamFollower  the GetFlows handler's own loop (observe.stream.FlowStream, what
                    observe.server hands to the transport: the serialized responses) on a
                    thread of the agent's process: everything Membrane does per flow,
                    without the transport
    GrpcFollower    the Observer served as the agent serves it (observe.h2server on a
                    unix socket, in the agent's process) and followed by a gRPC client
                    process: bench/follower_client.c, compiled here with gcc, which splits
                    the length-prefixed messages out of the DATA frames and reads each
                    one's kind from its first byte (flow or lost_events), so the client
                    is not what limits the rate
    GrpcioFollower  the same server followed by a grpcio client process (raw bytes,
                    nothing parsed but the lost-event notices): what a Python client of
                    the API gets

`lost` is what the ring overwrote before the follower read it (HUBBLE_RING_BUFFER, as the
stream itself reports it); `received` the flows that arrived.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import grpc

from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.ring import FlowObserver
from observe.server import SERVICE, observer_methods, passthrough, serve_unix
from observe.stream import FlowStream

HERE = Path(__file__).resolve().parent
LOST_FIELD = b"\x1a"   # GetFlowsResponse.lost_events (field 3): a notice, not a flow


def _lost_in(data: bytes) -> int:
    """Entries the ring overwrote before this follower read them (a notice of losses
    before the ring, in the kernel or the observer's queue, is not the follower's)."""
    resp = opb.GetFlowsResponse.FromString(data)
    if resp.HasField("lost_events") and resp.lost_events.source == fpb.HUBBLE_RING_BUFFER:
        return int(resp.lost_events.num_events_lost)
    return 0


class StreamFollower:
    def __init__(self, observer: FlowObserver) -> None:
        self.observer = observer
        self.received = 0
        self.lost = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        stream = FlowStream(self.observer, opb.GetFlowsRequest(follow=True))

        def run() -> None:
            ready.set()
            for wire in stream.entries(lambda: not self._stop.is_set()):
                data = wire.data          # what the handler hands to gRPC
                self.bytes += len(data)
                if wire.kind is None:
                    self.lost += _lost_in(data)
                else:
                    self.received += 1
        self._thread = threading.Thread(target=run, name="bench-follower", daemon=True)
        self._thread.start()
        ready.wait(5)
        time.sleep(0.3)           # inside its first wait on the ring

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self.observer.ring.wake()
        if self._thread is not None:
            self._thread.join(5)
        return {"received": self.received, "lost": self.lost, "bytes": self.bytes}


class _ServedFollower:
    """The Observer on a unix socket in this process, followed by a client process
    started by `command(socket)` that prints "ready", then its counts as JSON on SIGTERM."""

    def __init__(self, observer: FlowObserver) -> None:
        self.observer = observer
        self._dir = tempfile.mkdtemp(prefix="mbrb-follow-", dir="/tmp")
        self.socket = str(Path(self._dir) / "observer.sock")
        self.server = serve_unix(observer_methods(observer), self.socket)
        self._proc: subprocess.Popen[str] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, text=True,
                                      cwd=str(HERE.parent))
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the follower {self.command()} did not start: {line!r}")
        time.sleep(1.0)           # its stream is open and waiting on the ring

    def stop(self) -> dict[str, int]:
        assert self._proc is not None and self._proc.stdout is not None
        self._proc.send_signal(signal.SIGTERM)
        out = self._proc.stdout.read()
        self._proc.wait(10)
        self.server.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
        result: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return result


class GrpcFollower(_ServedFollower):
    def command(self) -> list[str]:
        return [compiled_client(self._dir), self.socket]


class GrpcioFollower(_ServedFollower):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.follower", "client", self.socket]


def compiled_client(directory: str) -> str:
    """bench/follower_client.c built with gcc -O2 into `directory`; its path."""
    out = str(Path(directory) / "follower_client")
    done = subprocess.run(["gcc", "-O2", "-Wall", "-o", out, str(HERE / "follower_client.c")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"gcc could not build the follower client: {done.stderr}")
    return out


def client(socket: str) -> None:
    """The grpcio follower process (`--followers grpcio`): counts until SIGTERM, then
    prints its counts as one JSON line."""
    counts = {"received": 0, "lost": 0, "bytes": 0}
    channel = grpc.insecure_channel("unix:" + socket)
    grpc.channel_ready_future(channel).result(timeout=10)
    call: Any = channel.unary_stream(f"/{SERVICE}/GetFlows", request_serializer=passthrough,
                                     response_deserializer=passthrough)(
        opb.GetFlowsRequest(follow=True).SerializeToString())

    def read() -> None:
        try:
            for data in call:
                counts["bytes"] += len(data)
                if data[:1] == LOST_FIELD:
                    counts["lost"] += _lost_in(data)
                else:
                    counts["received"] += 1
        except grpc.RpcError:
            pass

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=read, daemon=True).start()
    print("ready", flush=True)
    done.wait()
    print(json.dumps(counts), flush=True)
    os._exit(0)   # the reading thread is inside a blocking call


class Follower(Protocol):
    def start(self) -> None: ...

    def stop(self) -> dict[str, int]: ...


FOLLOWERS: dict[str, Callable[[FlowObserver], Follower]] = {
    "stream": StreamFollower, "grpc": GrpcFollower, "grpcio": GrpcioFollower}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.follower client SOCKET")
