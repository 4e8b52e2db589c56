"""`membrane observe` driven against an in-process Observer on a temporary unix socket."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.api.client import lab_socket
from cli.flowfilter import build_filters
from cli.main import main as membrane
from cli.observe import parse_time
from observe.events import EventType
from observe.gen.flow import flow_pb2 as fpb
from tests.unit.test_observe_server import Served, make_flow, served  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[2]
F = fpb.FlowFilter


def flags(*items: tuple[bool, str, str]) -> tuple[list[fpb.FlowFilter], list[fpb.FlowFilter]]:
    return build_filters(list(items))


@pytest.mark.parametrize("items,allow,deny", [
    ([(False, "from_label", "app=a"), (False, "to_label", "app=b")],
     [F(source_label=["app=a"], destination_label=["app=b"])], []),
    ([(False, "pod", "default/x")],
     [F(source_pod=["default/x"]), F(destination_pod=["default/x"])], []),
    ([(False, "verdict", "DROPPED"), (False, "label", "app=a")],
     [F(verdict=[fpb.DROPPED], source_label=["app=a"]),
      F(verdict=[fpb.DROPPED], destination_label=["app=a"])], []),
    ([(False, "to_port", "8080"), (True, "from_label", "app=frontend")],
     [F(destination_port=["8080"])], [F(source_label=["app=frontend"])]),
    ([(False, "from_namespace", "kube-system")], [F(source_pod=["kube-system/"])], []),
    ([(False, "from_namespace", "ns1"), (False, "from_pod", "web")],
     [F(source_pod=["ns1/web"])], []),
    ([(False, "namespace", "default")],
     [F(source_pod=["default/"]), F(destination_pod=["default/"])], []),
    ([(False, "from_identity", "world"), (False, "to_identity", "68421")],
     [F(source_identity=[2], destination_identity=[68421])], []),
    ([(False, "tcp_flags", "SYN,ACK"), (False, "traffic_direction", "ingress")],
     [F(tcp_flags=[fpb.TCPFlags(SYN=True, ACK=True)], traffic_direction=[fpb.INGRESS])], []),
    ([(False, "type", "policy-verdict"), (False, "is_reply", "false")],
     [F(event_type=[fpb.EventTypeFilter(type=9)], reply=[False])], []),
    ([(False, "ip_version", "6"), (False, "ip_version", "v4"), (True, "ip_version", "none")],
     [F(ip_version=[fpb.IPv6, fpb.IPv4])], [F(ip_version=[fpb.IP_NOT_USED])]),
], ids=["from and to labels in one filter", "either-side pod splits into two filters",
        "a shared flag lands in both halves", "--not sends the next flag to the deny list",
        "a namespace alone is every pod in it", "a namespace qualifies a bare pod name",
        "-n matches either side", "identities by number or reserved name",
        "tcp flags and traffic direction", "event type and reply",
        "ip versions by number or hubble's name"])
def test_flags_build_the_filters_hubble_would(items: list[tuple[bool, str, str]],
                                               allow: list[fpb.FlowFilter],
                                               deny: list[fpb.FlowFilter]) -> None:
    assert flags(*items) == (allow, deny)


def test_relative_and_rfc3339_times_parse() -> None:
    now = dt.datetime(2024, 1, 26, 10, 0, tzinfo=dt.timezone.utc)
    assert parse_time("5m", now).ToDatetime(dt.timezone.utc) == now - dt.timedelta(minutes=5)
    assert parse_time("1h30m", now).ToDatetime(dt.timezone.utc) == now - dt.timedelta(hours=1.5)
    assert parse_time("2024-01-26T09:07:03Z").ToDatetime(dt.timezone.utc) == \
        dt.datetime(2024, 1, 26, 9, 7, 3, tzinfo=dt.timezone.utc)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = membrane(["observe", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_last_n_prints_compact_lines(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        served.observer.add_flow(make_flow(i))
    rc, out, err = run(capsys, "--server", served.socket, "--last", "2")
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        ": default/not-frontend-7db9747986-gktg6:1003 (ID:84671) <> "
        "default/backend-6f884b6495-69bbh:8080 (ID:68421) Policy denied DROPPED "
        "(TCP Flags: SYN)")


def test_the_tutorials_label_filters_select_the_denied_flows(
        served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0, type=EventType.POLICY_VERDICT))
    served.observer.add_flow(make_flow(1))
    served.observer.add_flow(make_flow(2, src_ip="10.9.9.9", src_identity=2))
    rc, out, _ = run(capsys, "--server", served.socket, "--from-label", "app=not-frontend",
                     "--to-label", "app=backend")
    assert rc == 0
    assert [line.split(") ", 2)[2] for line in out.splitlines()] == [
        "policy-verdict:none INGRESS DENIED (TCP Flags: SYN)",
        "Policy denied DROPPED (TCP Flags: SYN)"]


def test_minus_4_and_minus_6_show_one_familys_flows(served: Served,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    served.observer.add_flow(make_flow(1, src_ip="fd00:10:244:1::5",
                                       dst_ip="fd00:10:244:2::7"))
    for argv, wanted in ((["-6"], [1001]), (["--ipv4"], [1000]), (["--ip-version", "v6"], [1001]),
                         (["-4", "-6"], [1000, 1001]), (["--not", "-4"], [1001])):
        rc, out, _ = run(capsys, "--server", served.socket, "-o", "json", *argv)
        assert rc == 0, argv
        flows = [json.loads(line)["flow"] for line in out.splitlines()]
        assert [f["l4"]["TCP"]["source_port"] for f in flows] == wanted, argv
    rc, out, _ = run(capsys, "--server", served.socket, "-6")
    # An address no pod has is printed as Go's JoinHostPort writes an IPv6 one.
    assert ": [fd00:10:244:1::5]:1001 (ID:84671) <> [fd00:10:244:2::7]:8080 (ID:68421) " in out


def test_an_unknown_ip_version_is_a_one_line_error(served: Served,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "--server", served.socket, "--ip-version", "5")
    assert rc == 1 and "ip version '5'" in err


def test_not_excludes_the_next_filter(served: Served,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0, type=EventType.POLICY_VERDICT))
    served.observer.add_flow(make_flow(1))
    rc, out, _ = run(capsys, "--server", served.socket, "--not", "--type", "policy-verdict")
    assert rc == 0 and len(out.splitlines()) == 1 and "DROPPED" in out


def test_json_output_is_one_object_per_line(served: Served,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    served.observer.add_flow(make_flow(1))
    rc, out, _ = run(capsys, "--server", served.socket, "-o", "json", "--verdict", "DROPPED")
    assert rc == 0
    objs = [json.loads(line) for line in out.splitlines()]
    assert [o["flow"]["verdict"] for o in objs] == ["DROPPED", "DROPPED"]


def test_status_shows_the_ring(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    served.observer.report_lost("kernel", 3)
    rc, out, _ = run(capsys, "status", "--server", served.socket)
    assert rc == 0
    assert "Current/Max Flows: 2/64" in out
    assert "Connected Nodes: 1/1" in out
    rc, out, _ = run(capsys, "status", "--server", served.socket, "-o", "json")
    assert json.loads(out)["seen_flows"] == 1


def test_a_missing_agent_is_a_one_line_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "--server", str(tmp_path / "nothing.sock"))
    assert rc == 1 and out == ""
    assert err.startswith("AgentUnreachable: ") and err.count("\n") == 1


def test_a_socket_nobody_listens_on_is_a_one_line_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    rc, _, err = run(capsys, "--server", str(path))
    assert rc == 1 and err.startswith("AgentUnreachable: ") and err.count("\n") == 1


def test_a_bad_filter_value_is_a_one_line_error(served: Served,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "--server", served.socket, "--ip", "nope")
    assert rc == 1 and err.startswith("MembraneError: ") and "nope" in err


def test_first_and_follow_together_are_refused(served: Served,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "--server", served.socket, "--first", "3", "-f")
    assert rc == 1 and "--first" in err


def test_lab_and_node_point_at_that_nodes_socket(capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "--lab", "no-such-lab", "--node", "node2")
    assert rc == 1 and lab_socket("no-such-lab", "node2") in err


def test_an_explicit_server_wins_over_lab(served: Served,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    rc, out, err = run(capsys, "--lab", "no-such-lab", "--server", served.socket)
    assert rc == 0 and err == "" and len(out.splitlines()) == 1
    rc, out, _ = run(capsys, "status", "--lab", "no-such-lab", "--server", served.socket)
    assert rc == 0 and f"via {served.socket}" in out


def test_help_ends_with_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        membrane(["observe", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out
    assert out.rstrip().splitlines()[-1].strip().startswith("membrane observe")


def test_a_bad_flag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        membrane(["observe", "--type", "nonsense"])
    assert exit.value.code == 2 and "--type" in capsys.readouterr().err


def test_follow_prints_a_new_flow_and_ctrl_c_exits_130(served: Served) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "observe", "--server", served.socket, "-f"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        time.sleep(1.5)   # interpreter start and the stream open
        served.observer.add_flow(make_flow(7))
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "default/not-frontend-7db9747986-gktg6:1007" in line
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=5)
        stderr = proc.stderr.read() if proc.stderr else ""
        assert rc == 130
        assert "Traceback" not in stderr
    finally:
        if proc.poll() is None:
            proc.kill()


# -- hubble observe parity ---------------------------------------------------------------

@pytest.mark.parametrize("items,allow", [
    ([(False, "drop_reason_desc", "POLICY_DENIED")],
     [F(drop_reason_desc=[fpb.POLICY_DENIED])]),
    ([(False, "to_workload", "Deployment/backend")],
     [F(destination_workload=[fpb.Workload(kind="Deployment", name="backend")])]),
    ([(False, "workload", "backend")],
     [F(source_workload=[fpb.Workload(name="backend")]),
      F(destination_workload=[fpb.Workload(name="backend")])]),
    ([(False, "all_namespaces", "[]")], [F(source_pod=["/"]), F(destination_pod=["/"])]),
    ([(False, "from_all_namespaces", "[]"), (False, "from_pod", "web")],
     [F(source_pod=["/web"])]),
    ([(False, "type", "trace:to-endpoint")],
     [F(event_type=[fpb.EventTypeFilter(type=4, match_sub_type=True, sub_type=0)])]),
    ([(False, "type", "4:5")],
     [F(event_type=[fpb.EventTypeFilter(type=4, match_sub_type=True, sub_type=5)])]),
], ids=["drop reason by Hubble's name", "a workload by kind and name",
        "either-side workload by name", "-A: a pod in any namespace on either side",
        "any namespace qualifies a bare pod", "a trace subtype by name",
        "type and subtype by number"])
def test_hubbles_parity_flags_build_hubbles_filters(items: list[tuple[bool, str, str]],
                                                    allow: list[fpb.FlowFilter]) -> None:
    assert flags(*items) == (allow, [])


def test_print_raw_filters_prints_the_request_filters_as_hubble_does(
        capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "--from-label", "app=a", "--not", "--verdict", "DROPPED",
                     "--print-raw-filters")
    assert rc == 0
    assert out == ("allowlist:\n- '{\"source_label\":[\"app=a\"]}'\n"
                   "denylist:\n- '{\"verdict\":[\"DROPPED\"]}'\n")


def test_raw_filters_go_back_in_with_allowlist(served: Served,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    served.observer.add_flow(make_flow(1, type=EventType.POLICY_VERDICT))
    rc, out, _ = run(capsys, "--server", served.socket,
                     "--allowlist", '{"event_type":[{"type":9}]}')
    assert rc == 0 and out.count("\n") == 1 and "policy-verdict" in out


def test_formatting_flags_reach_the_printer(served: Served,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    served.observer.add_flow(make_flow(0))
    rc, out, _ = run(capsys, "--server", served.socket, "--numeric", "--time-format",
                     "RFC3339Milli", "--color", "always", "--print-node-name")
    assert rc == 0
    assert out.startswith("2024-01-26T") and " [node1]: " in out
    assert "10.1.0.2:1000" in out and "\033[31mDROPPED" in out


def test_a_bad_type_or_drop_reason_names_the_known_ones(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        membrane(["observe", "--type", "trace:sideways"])
    assert "to-endpoint" in capsys.readouterr().err
    rc, _, err = run(capsys, "--drop-reason-desc", "POLICY", "--server", "/nonexistent")
    assert rc == 1 and "POLICY_DENIED" in err


def test_lab_without_node_goes_through_the_labs_relay(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    rc, _, err = run(capsys, "--lab", "no-such-lab")
    assert rc == 1 and "/no-such-lab/relay.sock" in err
