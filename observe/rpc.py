"""What a gRPC method of Membrane's own server (observe.h2server) is, and what its
handler sees of the call. Transport-free, so the Observer, the relay and the Peer service
are written once and tested without a socket.

    Method(path, parse, unary=...)    request bytes -> parse -> handler(request, call)
                                      -> response bytes
    Method(path, parse, stream=...)   ... -> an iterator of batches (sequences of response
                                      bytes): the transport packs a whole batch into as
                                      few HTTP/2 DATA frames as the windows allow

A handler ends a call with an error by raising `Abort(code, message)` (call.abort does);
any other exception is INTERNAL. `call.active()` turns false when the client cancels
(RST_STREAM), its deadline (grpc-timeout) passes, the connection goes or the server
stops; `call.on_done(fn)` runs fn then (from the transport's thread: fn must be quick
and thread-safe, e.g. waking a ring). `call.peer_names` are the subject CN and SANs of a
TLS client's certificate (empty on a unix socket).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

import grpc

Batch = Sequence[bytes]


class Abort(Exception):
    """Ends a call with a gRPC status other than OK."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class Call(Protocol):
    """One call as its handler sees it."""

    @property
    def peer_names(self) -> frozenset[str]: ...

    @property
    def deadline(self) -> float | None: ...     # time.monotonic() seconds, or None

    def active(self) -> bool: ...

    def on_done(self, callback: Callable[[], None]) -> None: ...

    def abort(self, code: grpc.StatusCode, message: str) -> NoReturn: ...


UnaryHandler = Callable[[Any, Call], bytes]
StreamHandler = Callable[[Any, Call], Iterator[Batch]]


@dataclass(frozen=True)
class Method:
    path: str                                  # "/observer.Observer/GetFlows"
    parse: Callable[[bytes], Any]              # the request message's FromString
    unary: UnaryHandler | None = None
    stream: StreamHandler | None = None

    def __post_init__(self) -> None:
        if (self.unary is None) == (self.stream is None):
            raise ValueError(f"method {self.path}: give exactly one of unary and stream")


def unary(path: str, parse: Callable[[bytes], Any],
          handler: Callable[[Any, Call], Any]) -> Method:
    """A unary method whose handler returns a message (serialized here)."""
    return Method(path, parse, unary=lambda req, call: handler(req, call).SerializeToString())


def one_by_one(messages: Iterator[Any]) -> Iterator[Batch]:
    """A stream of messages as batches of one (streams that are never busy)."""
    for message in messages:
        yield (message.SerializeToString(),)


class LocalCall:
    """A Call without a transport: tests, and in-process readers of a handler."""

    def __init__(self, peer_names: frozenset[str] = frozenset(),
                 deadline: float | None = None) -> None:
        self.peer_names = peer_names
        self.deadline = deadline
        self.cancelled = False
        self._callbacks: list[Callable[[], None]] = []

    def active(self) -> bool:
        return not self.cancelled

    def on_done(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def cancel(self) -> None:
        self.cancelled = True
        for callback in self._callbacks:
            callback()

    def abort(self, code: grpc.StatusCode, message: str) -> NoReturn:
        raise Abort(code, message)
