"""Flow export: JSON lines in Hubble's export format, filtered, rotated by size, read
back by `membrane observe --input-file` with every filter."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from pathlib import Path

import pytest
from google.protobuf import json_format

from cli.main import main as membrane
from core.errors import MembraneError
from observe.events import DatapathEvent, EventBatch, EventType
from observe.export import ExportConfig, ExportLines, FlowExporter, RotatingFile
from observe.gen.observer import observer_pb2 as opb
from observe.printer import Printer, PrintOptions
from observe.replay import parse_lines, replay
from observe.ring import FlowObserver
from tests.unit.test_observe_flow import META, TS, event

UTC_OPTS = PrintOptions(tz=dt.timezone.utc)


def exported(tmp_path: Path, events: list[DatapathEvent], max_size: int = 10 * 2**20,
             max_backups: int = 5, allowlist: tuple[str, ...] = (),
             denylist: tuple[str, ...] = ()) -> list[str]:
    """Runs an exporter over an observer fed `events`; returns the file's lines."""
    obs = FlowObserver("node1", capacity=256, meta=META)
    obs.start()
    exporter = FlowExporter(obs, ExportConfig(str(tmp_path / "flows.json"), max_size,
                                              max_backups, allowlist, denylist))
    exporter.start()
    try:
        time.sleep(0.3)        # the exporter follows from now
        obs.on_events(EventBatch.of_events(events))
        deadline = time.monotonic() + 5
        while exporter.written < len(events) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        exporter.stop()
        obs.stop()
    return (tmp_path / "flows.json").read_text().splitlines()


def test_each_line_is_a_hubble_export_event_with_the_flow_as_a_client_sees_it(
        tmp_path: Path) -> None:
    events = [event(timestamp_ns=TS + i, src_port=1000 + i) for i in range(5)]
    lines = exported(tmp_path, events)
    assert len(lines) == 5
    for i, line in enumerate(lines):
        record = json.loads(line)
        assert set(record) == {"flow", "node_name", "time"}
        parsed = json_format.Parse(line, opb.ExportEvent())
        assert parsed.flow.l4.TCP.source_port == 1000 + i
        assert parsed.flow.drop_reason_desc == 133 and parsed.node_name == "node1"
        assert record["flow"]["verdict"] == "DROPPED"
        assert record["flow"]["drop_reason_desc"] == "POLICY_DENIED"
        assert record["time"] == record["flow"]["time"]
        assert record["time"] == ("2024-01-26T09:07:03.396Z" if i == 0
                                  else f"2024-01-26T09:07:03.{396000000 + i:09d}Z")


def test_the_export_matches_what_observe_prints_for_the_same_flows(tmp_path: Path) -> None:
    events = [event(timestamp_ns=TS + i * 1000, src_port=2000 + i) for i in range(3)]
    lines = exported(tmp_path, events)
    obs = FlowObserver("node1", capacity=16, meta=META)
    obs.on_events(EventBatch.of_events(events))
    obs.process_pending()
    want, got = io.StringIO(), io.StringIO()
    for p, responses in ((Printer("compact", want, opts=UTC_OPTS), obs.ring.snapshot()),
                         (Printer("compact", got, opts=UTC_OPTS),
                          list(replay(parse_lines(lines), opb.GetFlowsRequest())))):
        for r in responses:
            p.write(r)
    assert got.getvalue() == want.getvalue() and got.getvalue().count("\n") == 3


def test_allow_and_deny_filters_choose_what_is_exported(tmp_path: Path) -> None:
    events = [event(src_port=1), event(type=EventType.POLICY_VERDICT, src_port=2),
              event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0, src_port=3)]
    lines = exported(tmp_path, events, allowlist=('{"event_type":[{"type":9}]}',),
                     denylist=('{"verdict":["FORWARDED"]}',))
    assert [json.loads(x)["flow"]["l4"]["TCP"]["source_port"] for x in lines] == [2]


def test_a_bad_export_filter_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(MembraneError, match="not a FlowFilter"):
        FlowExporter(FlowObserver("n"), ExportConfig(str(tmp_path / "f"),
                                                     allowlist=('{"nope": 1}',)))


def test_the_file_rotates_at_its_size_and_keeps_only_the_backups_asked(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    f = RotatingFile(path, max_size=100, max_backups=2)
    for i in range(10):
        f.write(f"line {i:02d} " + "x" * 40)        # 49 bytes: two lines per file
    f.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["events.log", "events.log.1", "events.log.2"]
    assert path.read_text().splitlines()[0].startswith("line 08")
    assert (tmp_path / "events.log.1").read_text().splitlines()[0].startswith("line 06")
    assert (tmp_path / "events.log.2").read_text().splitlines()[0].startswith("line 04")
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())


def test_rotation_keeps_exporting_whole_lines(tmp_path: Path) -> None:
    events = [event(timestamp_ns=TS + i, src_port=3000 + i) for i in range(40)]
    lines = exported(tmp_path, events, max_size=4000, max_backups=20)
    rotated = sorted(tmp_path.glob("flows.json.*"), key=lambda p: -int(p.suffix[1:]))
    assert rotated, "never rotated"
    every = [line for p in rotated for line in p.read_text().splitlines()] + lines
    ports = [json.loads(x)["flow"]["l4"]["TCP"]["source_port"] for x in every]
    assert ports == [3000 + i for i in range(40)]


def test_lost_events_are_exported_too() -> None:
    obs = FlowObserver("node1", capacity=8, meta=META)
    obs.report_lost("kernel", 4)
    (wire,) = obs.ring.held().build_all()
    assert wire is not None
    record = json.loads(ExportLines().line(wire))
    assert record["lost_events"] == {"source": "PERF_EVENT_RING_BUFFER", "num_events_lost": "4"}


def test_observe_reads_an_export_file_with_every_filter(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = [event(timestamp_ns=TS + i, src_port=4000 + i) for i in range(4)] + \
        [event(type=EventType.POLICY_VERDICT, allowed=True, drop_reason=0, match_type=2,
               timestamp_ns=TS + 10, src_port=4100)]
    lines = exported(tmp_path, events)
    path = tmp_path / "flows.json"
    assert membrane(["observe", "--input-file", str(path), "--verdict", "DROPPED",
                     "-o", "json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and len(lines) == 5
    assert membrane(["observe", "--input-file", str(path), "--last", "2", "--port", "4003",
                     "-o", "json"]) == 0
    (only,) = capsys.readouterr().out.splitlines()
    assert json.loads(only)["flow"]["l4"]["TCP"]["source_port"] == 4003
    assert membrane(["observe", "--input-file", str(path), "--type", "policy-verdict",
                     "--first", "1"]) == 0
    assert "policy-verdict:L3-L4 INGRESS ALLOWED" in capsys.readouterr().out


def test_observe_reads_stdin_with_a_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    lines = exported(tmp_path, [event(src_port=5001), event(src_port=5002)])
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert membrane(["observe", "--input-file", "-", "--from-port", "5002"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and ":5002 " in out


def test_a_line_that_is_not_a_flow_is_an_error_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"flow": {}}\nnot json\n')
    assert membrane(["observe", "--input-file", str(path)]) == 1
    assert f"{path}:2" in capsys.readouterr().err
