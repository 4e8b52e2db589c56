"""The relay's GetFlows reader of one node: a gRPC call over HTTP/2 (h2) on a plain
socket, so an agent's batched DATA frames are read in batches too.

Why not grpcio's client: it hands over one message at a time (~75 µs of CPU each on
this project's machines, ~13k flows/s per node), far below what an agent serves
(observe.h2server). Here one thread per node reads the socket, splits the
length-prefixed messages out of the DATA frames and yields them as lists, one per read.

    call = FlowsCall.open(address, request_bytes, tls=context, server_name=name)
    for messages in call: ...            # lists of serialized GetFlowsResponses
    call.cancel()                        # from another thread: RST_STREAM, then close

The call ends with the stream (StopIteration when grpc-status is 0) or raises
FlowsError with the status the server sent, or UNAVAILABLE when the connection fails
or breaks. Only the reading thread touches the socket and the h2 state but cancel(),
which takes the same lock.
"""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterable, Iterator

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from observe.server import SERVICE

METHOD = f"/{SERVICE}/GetFlows"
WINDOW = (1 << 31) - 1          # the largest window: the agent's batches never wait
MAX_FRAME = 1 << 20
READ_BYTES = 1 << 20
CONNECT_TIMEOUT = 5.0
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class FlowsError(Exception):
    """The call failed: the server's status, or UNAVAILABLE for the connection."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


class FlowsCall:
    def __init__(self, sock: socket.socket, request: bytes, authority: str) -> None:
        self.sock = sock
        self._lock = threading.Lock()
        self.cancelled = False
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        # Announced after the preface's SETTINGS (h2 sends the acknowledged values
        # there); the server reads it before the request.
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW,
                                 h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_FRAME})
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self.stream_id = self.h2.get_next_available_stream_id()
        self.h2.send_headers(self.stream_id, [
            (":method", "POST"), (":scheme", "http"), (":path", METHOD),
            (":authority", authority), ("content-type", "application/grpc"),
            ("te", "trailers")])
        self.h2.send_data(self.stream_id, b"\x00" + len(request).to_bytes(4, "big") + request,
                          end_stream=True)
        self._buffer = bytearray()
        self._send()

    @classmethod
    def open(cls, address: str, request: bytes, tls: ssl.SSLContext | None = None,
             server_name: str = "") -> "FlowsCall":
        """Connects to "unix:PATH" / "unix://PATH" / "/PATH", or "HOST:PORT" with TLS."""
        try:
            if address.startswith("unix:") or address.startswith("/"):
                path = address.removeprefix("unix://").removeprefix("unix:")
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(path)
                authority = "localhost"
            else:
                if tls is None:
                    raise FlowsError(grpc.StatusCode.UNAVAILABLE,
                                     f"{address} needs TLS and the relay has no peer CA")
                host, _, port = address.rpartition(":")
                raw = socket.create_connection((host.strip("[]"), int(port)),
                                               timeout=CONNECT_TIMEOUT)
                sock = tls.wrap_socket(raw, server_hostname=server_name or host.strip("[]"))
                authority = server_name or host
            sock.settimeout(None)
            return cls(sock, request, authority)
        except (OSError, ValueError) as err:
            raise FlowsError(grpc.StatusCode.UNAVAILABLE, f"{address}: {err}") from None

    def _send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def cancel(self) -> None:
        """Ends the call: RST_STREAM (CANCEL), then the connection closes."""
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = True
            try:
                self.h2.reset_stream(self.stream_id)
                self._send()
            except (OSError, h2.exceptions.ProtocolError):
                pass
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __iter__(self) -> Iterator[list[bytes]]:
        try:
            yield from self._read()
        finally:
            self.cancel()
            self.sock.close()

    def _read(self) -> Iterator[list[bytes]]:
        sid = self.stream_id
        while True:
            try:
                chunk = self.sock.recv(READ_BYTES)
            except OSError as err:
                if self.cancelled:
                    raise FlowsError(grpc.StatusCode.CANCELLED, "cancelled") from None
                raise FlowsError(grpc.StatusCode.UNAVAILABLE, f"read: {err}") from None
            if not chunk:
                if self.cancelled:
                    raise FlowsError(grpc.StatusCode.CANCELLED, "cancelled")
                raise FlowsError(grpc.StatusCode.UNAVAILABLE, "the connection closed")
            with self._lock:
                if self.cancelled:
                    raise FlowsError(grpc.StatusCode.CANCELLED, "cancelled")
                try:
                    events = self.h2.receive_data(chunk)
                except h2.exceptions.ProtocolError as err:
                    raise FlowsError(grpc.StatusCode.INTERNAL, f"HTTP/2: {err}") from None
                status: tuple[grpc.StatusCode, str] | None = None
                for event in events:
                    if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                        self._buffer += event.data or b""
                        self.h2.acknowledge_received_data(event.flow_controlled_length or 0,
                                                          sid)
                    elif isinstance(event, (h2.events.TrailersReceived,
                                            h2.events.ResponseReceived)):
                        status = _status(event.headers or []) or status
                    elif isinstance(event, h2.events.StreamReset) and event.stream_id == sid:
                        status = (grpc.StatusCode.UNAVAILABLE, "the server reset the stream")
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        status = status or (grpc.StatusCode.UNAVAILABLE,
                                            "the server closed the connection")
                try:
                    self._send()
                except OSError:
                    pass
            messages = self._split()
            if messages:
                yield messages
            if status is not None:
                code, details = status
                if code == grpc.StatusCode.OK:
                    return
                raise FlowsError(code, details)

    def _split(self) -> list[bytes]:
        buf, at, out = self._buffer, 0, []
        while len(buf) - at >= 5:
            n = int.from_bytes(buf[at + 1:at + 5], "big")
            if len(buf) - at - 5 < n:
                break
            out.append(bytes(buf[at + 5:at + 5 + n]))
            at += 5 + n
        if at:
            del buf[:at]
        return out


def _status(headers: Iterable[tuple[str | bytes, str | bytes]]
            ) -> tuple[grpc.StatusCode, str] | None:
    """grpc-status and grpc-message of trailers (or of a trailers-only response)."""
    found = {_text(k): _text(v) for k, v in headers}
    if "grpc-status" not in found:
        return None
    code = _CODES.get(int(found["grpc-status"]), grpc.StatusCode.UNKNOWN)
    return code, urllib.parse.unquote(found.get("grpc-message", ""))


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
