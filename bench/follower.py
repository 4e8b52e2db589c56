"""GetFlows followers for the events benchmark (bench/events.py, table 4b).

Two ways of following one FlowObserver, counting what arrives and what was lost:

    StreamFollower  the GetFlows handler's own loop (observe.stream.FlowStream, what
                    observe.server yields to gRPC: the serialized responses) on a thread
                    of the agent's process: everything Membrane does per flow, without
                    the transport
    GrpcFollower    a real gRPC client in its own process following the Observer served
                    on a unix socket (grpcio on both ends, raw bytes, nothing parsed but
                    the lost-event notices)

`lost` is what the ring overwrote before the follower read it (HUBBLE_RING_BUFFER, as the
stream itself reports it); `received` the flows that arrived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import grpc

from observe.gen.observer import observer_pb2 as opb
from observe.ring import FlowObserver
from observe.server import SERVICE, observer_methods, passthrough, serve_unix
from observe.stream import FlowStream

LOST_FIELD = b"\x1a"   # GetFlowsResponse.lost_events (field 3): a notice, not a flow


def _lost_in(data: bytes) -> int:
    resp = opb.GetFlowsResponse.FromString(data)
    return int(resp.lost_events.num_events_lost) if resp.HasField("lost_events") else 0


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


class GrpcFollower:
    def __init__(self, observer: FlowObserver) -> None:
        self.observer = observer
        self._dir = tempfile.mkdtemp(prefix="mbrb-follow-", dir="/tmp")
        self.socket = str(Path(self._dir) / "observer.sock")
        self.server = serve_unix(observer_methods(observer), self.socket)
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.follower", "client", self.socket],
            stdout=subprocess.PIPE, text=True, cwd=str(Path(__file__).resolve().parents[1]))
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"the gRPC follower did not start: {line!r}")
        time.sleep(1.0)           # its stream is open and waiting on the ring

    def stop(self) -> dict[str, int]:
        assert self._proc is not None and self._proc.stdout is not None
        self._proc.send_signal(signal.SIGTERM)
        out = self._proc.stdout.read()
        self._proc.wait(10)
        self.server.stop()
        try:
            os.unlink(self.socket)
            os.rmdir(self._dir)
        except OSError:
            pass
        result: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return result


def client(socket: str) -> None:
    """The gRPC follower process: counts until SIGTERM, then prints its counts."""
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


FOLLOWERS: dict[str, Callable[[FlowObserver], Follower]] = {"stream": StreamFollower,
                                                          "grpc": GrpcFollower}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        sys.exit("usage: python -m bench.follower client SOCKET")
