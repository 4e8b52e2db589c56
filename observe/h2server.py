"""A gRPC server for the Observer API: gRPC's wire protocol spoken on HTTP/2 (the h2
library) with many messages per DATA frame.

Why not grpcio's server: Hubble's API sends one flow per GetFlowsResponse, and grpcio's
Python server writes each message on its own (a completion-queue round trip and a
thread hand-off per message): ~10k messages/s per stream on this project's machines,
where a follower must take 200k flows/s. Here a handler yields *batches* of serialized
messages (observe.rpc), and a batch goes out length-prefixed in as few DATA frames as
the windows allow. grpcio stays for the agent API and for every client.

What is served, per gRPC over HTTP/2 (PROTOCOL-HTTP2 in grpc/grpc):
  - HTTP/2 with prior knowledge on a unix socket; TLS with ALPN h2 on TCP (the context,
    client certificates included, is observe.tls's; `allowed_names` checks each call's
    certificate names and answers PERMISSION_DENIED otherwise);
  - POST /package.Service/Method, content-type application/grpc*, one length-prefixed
    request message (uncompressed: anything else is UNIMPLEMENTED), unary and
    server-streaming methods; responses: headers, DATA, then trailers with grpc-status
    and a percent-encoded grpc-message (trailers alone when nothing was sent);
  - grpc-timeout: the call ends with DEADLINE_EXCEEDED when it passes;
  - RST_STREAM or a lost connection cancels the call: `call.active()` turns false and
    its on_done callbacks run, so a follower leaves the ring at once;
  - flow control: nothing is written past the client's stream and connection windows
    or into a full socket; a stream's producer waits once HIGH_WATER bytes are queued,
    so a slow client makes its follower fall behind the flow ring (and get its
    lost-events notice) while nothing else waits for it;
  - PING: answered (h2 does); an idle connection is pinged every KEEPALIVE_SECONDS and
    closed when the answer takes longer than KEEPALIVE_TIMEOUT_SECONDS;
  - stop(grace): GOAWAY, in-flight calls get `grace` seconds, then every call is
    cancelled and every connection closed.

Threads: one asyncio loop thread owns every socket and h2 state; each call runs its
handler on a thread of its own (handlers block: a follower waits on the ring), handing
framed batches to the loop with call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from observe.rpc import Abort, Batch, Method

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4 << 20       # grpcio's default limit on a received message
MAX_CONCURRENT_STREAMS = 128
# Bytes queued per stream before its producer waits: ~12,000 flows, ~55 ms of a 220,000
# flows/s flood in which the client may go unscheduled before its follower falls behind.
HIGH_WATER = 4 << 20
KEEPALIVE_SECONDS = 60.0
KEEPALIVE_TIMEOUT_SECONDS = 20.0
ANY_NAME = "*"
# The interpreter's GIL switch interval a process serving followers should run with
# (sys.setswitchinterval; Python's default is 5 ms). The agent's reader, observer,
# followers and this loop share one GIL: with 5 ms a thread back from a syscall or a
# wait can sit 5 ms behind a busy one, longer than a 4,095-entry flow ring lasts at
# 200,000 flows/s. Measured in table 4b: 0.5 ms took a follower from ~115k to 220k
# flows/s without loss (docs/PERFORMANCE.md).
SWITCH_INTERVAL_SECONDS = 0.0005

_PREFIX = struct.Struct(">BI").pack
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


# The 5-byte prefixes of messages shorter than this, made once (a flow is ~300 bytes).
_PREFIXES = [_PREFIX(0, n) for n in range(1 << 14)]


def frame(messages: Batch) -> bytes:
    """Messages as gRPC puts them in DATA frames: flag 0, length (4 bytes), bytes."""
    prefixes, short = _PREFIXES, len(_PREFIXES)
    return b"".join([part for message in messages for part in (
        prefixes[len(message)] if len(message) < short else _PREFIX(0, len(message)),
        message)])


def parse_timeout(text: str) -> float | None:
    """grpc-timeout ("100m", "5S") in seconds; None when malformed."""
    if len(text) < 2 or not text[:-1].isdigit() or text[-1] not in _TIMEOUT_UNITS:
        return None
    return int(text[:-1]) * _TIMEOUT_UNITS[text[-1]]


def encode_message(text: str) -> str:
    """grpc-message: printable ASCII but '%' as is, every other byte percent-encoded."""
    return "".join(c if " " <= c <= "~" and c != "%" else
                   "".join(f"%{b:02X}" for b in c.encode()) for c in text)


class _Stream:
    """One call. Loop-thread state, but for `handed` (written by the handler's thread
    only) and the flags the handler's thread reads."""

    def __init__(self, conn: "_Connection", stream_id: int, method: Method,
                 deadline: float | None) -> None:
        self.conn = conn
        self.id = stream_id
        self.method = method
        self.deadline = deadline
        self.body = bytearray()
        self.started = False
        self.headers_sent = False
        self.pending: deque[bytes] = deque()
        # Handed over by the handler's thread, not yet taken by the loop: one wake-up of
        # the loop takes all of it (a wake-up is a syscall and a GIL hand-over).
        self.inbox: deque[bytes] = deque()
        self.wake_pending = False
        self.handed = 0           # bytes the handler handed over (its thread writes)
        self.flushed = 0          # of those, given to h2 or dropped (the loop writes)
        self.trailers: tuple[grpc.StatusCode, str] | None = None
        self.done = False         # ended, reset or cancelled: nothing more is sent
        self.room = threading.Condition()
        self.waiting = False
        self.callbacks: list[Callable[[], None]] = []
        self.timer: asyncio.TimerHandle | None = None

    # -- the Call its handler sees (observe.rpc.Call) ---------------------------------
    @property
    def peer_names(self) -> frozenset[str]:
        return self.conn.peer_names

    def active(self) -> bool:
        return not self.done and (self.deadline is None or time.monotonic() < self.deadline)

    def on_done(self, callback: Callable[[], None]) -> None:
        self.callbacks.append(callback)
        if self.done:
            callback()

    def abort(self, code: grpc.StatusCode, message: str) -> NoReturn:
        raise Abort(code, message)

    # -- the handler's thread ------------------------------------------------------
    def hand(self, batch: Batch) -> None:
        """Queues a batch for the client; waits while HIGH_WATER bytes are queued."""
        if self.handed - self.flushed > HIGH_WATER:
            with self.room:
                self.waiting = True
                while self.handed - self.flushed > HIGH_WATER and self.active():
                    self.room.wait(0.25)
                self.waiting = False
        if not self.active():
            return
        data = frame(batch)
        self.handed += len(data)
        self.inbox.append(data)
        if not self.wake_pending:
            self.wake_pending = True
            self.conn.loop.call_soon_threadsafe(self.conn.take, self)

    def finish(self, code: grpc.StatusCode, message: str = "") -> None:
        self.conn.loop.call_soon_threadsafe(self.conn.end, self, code, message)

    # -- the loop's thread ---------------------------------------------------------
    def close(self) -> None:
        """Nothing more is sent: wake the handler, run the callbacks."""
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.flushed += sum(len(p) for p in self.pending)
        self.pending.clear()
        with self.room:
            self.room.notify_all()
        for callback in self.callbacks:
            try:
                callback()
            except Exception:
                log.exception("a callback of %s failed", self.method.path)


def _response_headers() -> list[tuple[str, str]]:
    return [(":status", "200"), ("content-type", "application/grpc")]


class _Connection(asyncio.Protocol):
    def __init__(self, server: "H2GrpcServer") -> None:
        self.server = server
        self.loop = server.loop
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.peer_names: frozenset[str] = frozenset()
        self.tls = False
        self.paused = False
        self.last_heard = time.monotonic()
        self.ping_sent: float | None = None
        self.keepalive: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self.tls = True
            self.peer_names = _certificate_names(ssl_object.getpeercert() or {})
        self.server.connections.add(self)
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS})
        self.h2.initiate_connection()
        self.write()
        self.keepalive = self.loop.call_later(self.server.keepalive_s, self.check_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.keepalive is not None:
            self.keepalive.cancel()
        for stream in list(self.streams.values()):
            stream.close()
        self.streams.clear()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            self.flush(stream)
        self.write()

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as err:
            log.debug("HTTP/2 protocol error from a client: %s", err)
            self.write()
            self.close()
            return
        for event in events:
            self.on_event(event)
        self.write()

    # -- HTTP/2 events -------------------------------------------------------------
    def on_event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self.on_request(event.stream_id, event.headers or [])
        elif isinstance(event, h2.events.DataReceived):
            self.on_data(event)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.started:
                self.start(stream)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.close()          # the client cancelled
        elif isinstance(event, h2.events.WindowUpdated) and event.stream_id:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self.flush(stream)
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            for stream in list(self.streams.values()):   # the connection's window
                self.flush(stream)
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_sent = None
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()

    def on_request(self, stream_id: int, raw: Iterable[tuple[Any, Any]]) -> None:
        headers = {str(k): str(v) for k, v in raw}
        path = headers.get(":path", "")
        if headers.get(":method") != "POST" or \
                not headers.get("content-type", "").startswith("application/grpc"):
            self.h2.send_headers(stream_id, [(":status", "415")], end_stream=True)
            return
        method = self.server.methods.get(path)
        if method is None:
            self.trailers_only(stream_id, grpc.StatusCode.UNIMPLEMENTED,
                               f"Method not found: {path}")
            return
        allowed = self.server.allowed_names
        if self.tls and allowed is not None and ANY_NAME not in allowed and \
                not self.peer_names & allowed:
            shown = ", ".join(sorted(self.peer_names)) or "no name"
            self.trailers_only(stream_id, grpc.StatusCode.PERMISSION_DENIED,
                               f"client certificate ({shown}) may not read flows: the "
                               "agent's --tls-client-name does not list it")
            return
        timeout = headers.get("grpc-timeout")
        seconds = parse_timeout(timeout) if timeout is not None else None
        deadline = time.monotonic() + seconds if seconds is not None else None
        stream = self.streams[stream_id] = _Stream(self, stream_id, method, deadline)
        if seconds is not None:
            stream.timer = self.loop.call_later(seconds, self.expire, stream)

    def on_data(self, event: h2.events.DataReceived) -> None:
        try:
            self.h2.acknowledge_received_data(event.flow_controlled_length or 0,
                                              event.stream_id)
        except h2.exceptions.StreamClosedError:
            pass
        stream = self.streams.get(event.stream_id)
        if stream is None or stream.started:
            return
        stream.body += event.data or b""
        if len(stream.body) > MAX_REQUEST_BYTES + 5:
            stream.started = True       # answered: no handler for it
            self.end(stream, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     f"request larger than {MAX_REQUEST_BYTES} bytes")

    def start(self, stream: _Stream) -> None:
        """The whole request is here: one message, then the handler on its thread."""
        stream.started = True
        body = bytes(stream.body)
        if len(body) < 5:
            self.end(stream, grpc.StatusCode.INTERNAL, "the request holds no message")
            return
        compressed, length = body[0], int.from_bytes(body[1:5], "big")
        if compressed:
            self.end(stream, grpc.StatusCode.UNIMPLEMENTED,
                     "compressed requests are not supported")
            return
        if length != len(body) - 5:
            self.end(stream, grpc.StatusCode.INTERNAL,
                     "the request is not one length-prefixed message")
            return
        threading.Thread(target=_run, args=(stream, body[5:]), daemon=True,
                         name=f"grpc{stream.method.path}").start()

    # -- sending -------------------------------------------------------------------
    def take(self, stream: _Stream) -> None:
        """What the handler handed over, queued and sent as the windows allow."""
        stream.wake_pending = False     # first: a batch handed after this wakes us again
        inbox, pending = stream.inbox, stream.pending
        while inbox:
            data = inbox.popleft()
            if stream.done:
                stream.flushed += len(data)
            else:
                pending.append(data)
        self.flush(stream)
        self.write()

    def end(self, stream: _Stream, code: grpc.StatusCode, message: str) -> None:
        if stream.inbox:
            self.take(stream)
        if stream.done or stream.trailers is not None:
            return
        stream.trailers = (code, message)
        self.flush(stream)
        self.write()

    def expire(self, stream: _Stream) -> None:
        """The deadline passed: what is queued is dropped, the call ends."""
        stream.timer = None
        if stream.done:
            return
        stream.flushed += sum(len(p) for p in stream.pending)
        stream.pending.clear()
        stream.trailers = None
        self.end(stream, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    def flush(self, stream: _Stream) -> None:
        """As much of the stream's queue as the windows take; its trailers after."""
        if stream.done or self.paused:
            return
        conn, sid = self.h2, stream.id
        pending = stream.pending
        if pending and not stream.headers_sent:
            conn.send_headers(sid, _response_headers())
            stream.headers_sent = True
        try:
            while pending:
                window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = pending[0]
                if len(chunk) > window:
                    conn.send_data(sid, chunk[:window])
                    pending[0] = chunk[window:]
                    stream.flushed += window
                else:
                    conn.send_data(sid, chunk)
                    pending.popleft()
                    stream.flushed += len(chunk)
            if not pending and stream.trailers is not None:
                code, message = stream.trailers
                if stream.headers_sent:
                    conn.send_headers(sid, _trailers(code, message), end_stream=True)
                else:
                    conn.send_headers(sid, _response_headers() + _trailers(code, message),
                                      end_stream=True)
                self.streams.pop(sid, None)
                stream.close()
        except h2.exceptions.StreamClosedError:
            self.streams.pop(sid, None)
            stream.close()
        if stream.waiting and stream.handed - stream.flushed <= HIGH_WATER:
            with stream.room:
                stream.room.notify_all()

    def trailers_only(self, stream_id: int, code: grpc.StatusCode, message: str) -> None:
        self.h2.send_headers(stream_id, _response_headers() + _trailers(code, message),
                             end_stream=True)

    def write(self) -> None:
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def goaway(self) -> None:
        try:
            self.h2.close_connection()
        except h2.exceptions.ProtocolError:
            pass
        self.write()

    def check_alive(self) -> None:
        """Keepalive: ping a connection that has been quiet; drop one that does not
        answer."""
        now = time.monotonic()
        if self.ping_sent is not None and now - self.ping_sent > self.server.keepalive_timeout_s:
            log.debug("a client did not answer a keepalive ping: closing its connection")
            self.close()
            return
        if self.ping_sent is None and now - self.last_heard >= self.server.keepalive_s:
            self.h2.ping(b"membrane")
            self.ping_sent = now
            self.write()
        delay = min(self.server.keepalive_s, self.server.keepalive_timeout_s)
        self.keepalive = self.loop.call_later(delay, self.check_alive)


def _trailers(code: grpc.StatusCode, message: str) -> list[tuple[str, str]]:
    out = [("grpc-status", str(code.value[0]))]
    if message:
        out.append(("grpc-message", encode_message(message)))
    return out


def _certificate_names(cert: dict[str, Any]) -> frozenset[str]:
    """Subject CN and subject alternative names of a peer certificate (ssl's dict)."""
    names = {value for rdn in cert.get("subject", ()) for key, value in rdn
             if key == "commonName"}
    names |= {value for _, value in cert.get("subjectAltName", ())}
    return frozenset(names)


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """A client that fails the TLS handshake (no certificate, another CA) or drops its
    connection is the client's problem: one line, not a traceback."""
    err = context.get("exception")
    log.info("observer connection: %s%s", context.get("message", ""),
             f": {err}" if err is not None else "")


def _run(stream: _Stream, payload: bytes) -> None:
    """One call's handler, on its own thread, to its status."""
    method = stream.method
    try:
        try:
            request = method.parse(payload)
        except Exception:
            raise Abort(grpc.StatusCode.INTERNAL, "cannot parse the request") from None
        if method.unary is not None:
            stream.hand((method.unary(request, stream),))
        else:
            assert method.stream is not None
            for batch in method.stream(request, stream):
                if not stream.active():
                    break
                if batch:
                    stream.hand(batch)
        if stream.deadline is not None and time.monotonic() >= stream.deadline:
            stream.finish(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        else:
            stream.finish(grpc.StatusCode.OK)
    except Abort as err:
        stream.finish(err.code, err.message)
    except Exception as err:
        log.exception("%s failed", method.path)
        stream.finish(grpc.StatusCode.INTERNAL, f"{method.path}: {type(err).__name__}")


class H2GrpcServer:
    """Serves `methods` on unix sockets and TLS listeners from one loop thread.

    `allowed_names`: certificate names (CN or SAN) a TLS client must carry for any call
    ("*": every certificate the client CA signed; None: no check). Unix-socket clients
    are not checked: the socket's mode (0600) is their check."""

    def __init__(self, methods: Sequence[Method], allowed_names: Iterable[str] | None = None,
                 keepalive_s: float = KEEPALIVE_SECONDS,
                 keepalive_timeout_s: float = KEEPALIVE_TIMEOUT_SECONDS,
                 name: str = "observer-h2") -> None:
        self.methods = {m.path: m for m in methods}
        self.allowed_names = frozenset(allowed_names) if allowed_names is not None else None
        self.keepalive_s = keepalive_s
        self.keepalive_timeout_s = keepalive_timeout_s
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(_quiet)
        self.connections: set[_Connection] = set()
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._stopped = threading.Event()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def _in_loop(self, coro: Any) -> Any:
        if not self._thread.is_alive():
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def add_unix(self, path: str) -> None:
        """Listens on a unix socket (made 0600: flows name every pod)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old_umask)
        os.chmod(path, 0o600)
        self._servers.append(self._in_loop(self.loop.create_unix_server(
            lambda: _Connection(self), sock=sock)))

    def add_tls(self, address: str, context: ssl.SSLContext) -> int:
        """Listens on "HOST:PORT" ("[::]:4245"; port 0: any) with TLS; the port."""
        host, _, port = address.rpartition(":")
        bind_host: str | None = host.strip("[]") or None
        server = self._in_loop(self.loop.create_server(
            lambda: _Connection(self), bind_host, int(port), ssl=context,
            reuse_address=True))
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """GOAWAY to every client; in-flight calls get `grace` seconds; then everything
        ends. Returns an event set when it has (wait() on it, as on grpcio's)."""
        if self._stopped.is_set() or not self._thread.is_alive():
            self._stopped.set()
            return self._stopped

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for conn in list(self.connections):
                conn.goaway()
            end = time.monotonic() + (grace or 0.0)
            while time.monotonic() < end and any(c.streams for c in self.connections):
                await asyncio.sleep(0.02)
            for conn in list(self.connections):
                for stream in list(conn.streams.values()):
                    stream.close()
                conn.close()
            await asyncio.sleep(0)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(
                timeout=(grace or 0.0) + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self._stopped.set()
        return self._stopped
