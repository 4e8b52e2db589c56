"""Flow export: the agent's flows as JSON lines in Hubble's export format, to a file.

Each line is an `observer.ExportEvent` in protobuf's JSON mapping with the .proto's
field names, as Hubble's exporter writes them:

    {"flow":{"time":"2024-01-26T09:07:03.396Z","verdict":"DROPPED",...},"node_name":"node1","time":"2024-01-26T09:07:03.396Z"}

Lost-event notices are exported too ({"lost_events":{...}}), so a reader of the file
knows what it is missing. The exporter is a follower of the flow ring (observe.stream,
the same path GetFlows takes) with the allow/deny filters of `--hubble-export-allowlist`
/ `--hubble-export-denylist` (JSON FlowFilters, Hubble's syntax). The file is rotated at
`max_size` bytes: the current file becomes FILE.1, FILE.1 becomes FILE.2, ... and only
`max_backups` old files are kept. A flow's JSON is made once per kind of flow (its time
spliced in per line), as its bytes are (observe.encoder).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from core.errors import MembraneError
from observe.encoder import Wire
from observe.gen.flow import flow_pb2 as fpb
from observe.gen.observer import observer_pb2 as opb
from observe.ring import FlowObserver
from observe.stream import FlowStream, InvalidRequest

log = logging.getLogger(__name__)

MB = 1024 * 1024
MAX_KINDS = 65536


@dataclass(frozen=True)
class ExportConfig:
    path: str
    max_size: int = 10 * MB         # bytes before the file is rotated
    max_backups: int = 5            # rotated files kept (FILE.1 ... FILE.N)
    allowlist: tuple[str, ...] = ()  # FlowFilters as JSON
    denylist: tuple[str, ...] = ()

    def request(self) -> opb.GetFlowsRequest:
        """Follow from now, with the filters. MembraneError names a bad filter."""
        def parse(texts: tuple[str, ...]) -> list[fpb.FlowFilter]:
            out = []
            for text in texts:
                try:
                    out.append(json_format.Parse(text, fpb.FlowFilter()))
                except json_format.ParseError as err:
                    raise MembraneError(f"export filter {text!r}: not a FlowFilter in "
                                        f"JSON: {err}") from None
            return out
        return opb.GetFlowsRequest(follow=True, whitelist=parse(self.allowlist),
                                   blacklist=parse(self.denylist))


class RotatingFile:
    """Lines appended to `path`; at `max_size` bytes it becomes path.1 and older ones
    shift up to path.<max_backups> (the oldest beyond is removed)."""

    def __init__(self, path: str | Path, max_size: int, max_backups: int) -> None:
        self.path = Path(path)
        self.max_size = max(1, max_size)
        self.max_backups = max(0, max_backups)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO = self.path.open("a", encoding="utf-8")
        self._size = self.path.stat().st_size

    def write(self, line: str) -> None:
        data = line + "\n"
        n = len(data.encode())
        if self._size and self._size + n > self.max_size:
            self.rotate()
        self._file.write(data)
        self._size += n

    def flush(self) -> None:
        self._file.flush()

    def rotate(self) -> None:
        self._file.close()
        backups = [self.path.with_name(f"{self.path.name}.{i}")
                   for i in range(1, self.max_backups + 1)]
        if backups:
            backups[-1].unlink(missing_ok=True)
            for older, newer in zip(reversed(backups[1:]), reversed(backups[:-1])):
                if newer.exists():
                    newer.rename(older)
            self.path.rename(backups[0])
        else:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._size = 0

    def close(self) -> None:
        self._file.close()


class ExportLines:
    """Wire -> one export line; the JSON of each kind of flow made once."""

    def __init__(self) -> None:
        self._kinds: dict[bytes, str] = {}

    def line(self, wire: Wire) -> str:
        ts = Timestamp()
        ts.FromNanoseconds(wire.time_ns)
        when = json.dumps(ts.ToJsonString())
        if wire.kind is None:       # a lost-event or node-status notice: rare, whole
            event = opb.ExportEvent.FromString(wire.data)
            return json.dumps(json_format.MessageToDict(event, preserving_proto_field_name=True),
                              separators=(",", ":"))
        rest = self._kinds.get(wire.kind)
        if rest is None:
            if len(self._kinds) >= MAX_KINDS:
                self._kinds.clear()
            event = opb.ExportEvent.FromString(wire.data)
            flow = json_format.MessageToDict(event.flow, preserving_proto_field_name=True)
            flow.pop("time", None)
            body = json.dumps(flow, separators=(",", ":"))[1:-1]
            node = json.dumps(event.node_name)
            rest = f"{',' + body if body else ''}}},\"node_name\":{node},\"time\":"
            self._kinds[wire.kind] = rest
        return f"{{\"flow\":{{\"time\":{when}{rest}{when}}}"


class FlowExporter:
    """A follower of the observer's ring writing export lines until stopped."""

    def __init__(self, observer: FlowObserver, config: ExportConfig) -> None:
        self.observer = observer
        self.config = config
        request = config.request()
        try:
            self._stream = FlowStream(observer, request)
        except InvalidRequest as err:
            raise MembraneError(f"export: {err}") from None
        self._file = RotatingFile(config.path, config.max_size, config.max_backups)
        self._lines = ExportLines()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="flow-export", daemon=True)
        self._thread.start()

    def _active(self) -> bool:
        # The stream asks between reads of the ring: what was written so far is made
        # visible to readers of the file then, not per line.
        self._file.flush()
        return not self._stop.is_set()

    def _run(self) -> None:
        try:
            for wire in self._stream.entries(self._active):
                self._file.write(self._lines.line(wire))
                self.written += 1
        except Exception:
            log.exception("flow export to %s stopped", self.config.path)
        finally:
            self._file.flush()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.observer.ring.wake()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._file.close()
