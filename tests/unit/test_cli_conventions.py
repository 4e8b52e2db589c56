"""What every `membrane` command shares: connection flags and their precedence, exit
codes, `-o`, and help that ends with examples."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from agent.api.client import DEFAULT_SOCKET, lab_socket
from cli.connection import Connection
from cli.main import build_parser, main
from cli.output import print_table
from core.errors import LabError

# Owned elsewhere and not client commands: the agent itself and the lab's verbs.
NOT_CLIENTS = {"membrane agent", "membrane lab", "membrane demo"}


def parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every parser under `membrane`, by its prog ("membrane bpf ct list")."""
    found = {parser.prog: parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found.update(parsers(child))
    return found


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {opt: a for a in parser._actions for opt in a.option_strings}


ALL = parsers(build_parser())
CLIENTS = sorted(prog for prog, p in ALL.items() if "--server" in options(p))


def test_every_command_that_talks_to_the_agent_is_a_client() -> None:
    assert CLIENTS == sorted([
        "membrane bpf ct list", "membrane bpf ipcache list", "membrane bpf policy get",
        "membrane endpoint get", "membrane endpoint list", "membrane identity get",
        "membrane identity list", "membrane observe", "membrane observe status",
        "membrane policy get", "membrane policy suggest", "membrane policy trace",
        "membrane status", "membrane ui"])


@pytest.mark.parametrize("prog", CLIENTS)
def test_a_client_takes_the_same_connection_flags_with_the_same_defaults(prog: str) -> None:
    opts = options(ALL[prog])
    # `observe`, `policy suggest` and `ui` without --node read every node of a lab
    # through its relay.
    node = None if prog.startswith(("membrane observe", "membrane policy suggest",
                                    "membrane ui")) else "node1"
    assert (opts["--server"].default, opts["--lab"].default, opts["--node"].default) == \
        (None, None, node)
    assert opts["--server"].metavar == "ADDRESS" and opts["--lab"].metavar == "NAME"


@pytest.mark.parametrize("prog", [c for c in CLIENTS if c != "membrane ui"])  # serves a page
def test_a_client_prints_with_dash_o(prog: str) -> None:
    output = options(ALL[prog])["-o"]
    assert output is options(ALL[prog])["--output"]
    assert output.choices is not None and output.default == list(output.choices)[0]


@pytest.mark.parametrize("flags, address", [
    ({}, DEFAULT_SOCKET),
    ({"server": "/tmp/x.sock"}, "/tmp/x.sock"),
    ({"lab": "demo"}, lab_socket("demo", "node1")),
    ({"lab": "demo", "node": "node3"}, lab_socket("demo", "node3")),
    ({"lab": "demo", "node": "node3", "server": "/tmp/x.sock"}, "/tmp/x.sock"),
    ({"node": "node3"}, DEFAULT_SOCKET),
], ids=["the default socket", "a server", "a lab's first node", "a lab node",
        "an explicit server wins over a lab", "a node alone means nothing"])
def test_one_rule_finds_the_agent(flags: dict[str, str], address: str) -> None:
    assert Connection(**flags).address == address


@pytest.mark.parametrize("prog", sorted(p for p in ALL if not any(
    p == skip or p.startswith(skip + " ") for skip in ("membrane lab",))))
def test_help_ends_with_examples(prog: str) -> None:
    lines = ALL[prog].format_help().rstrip().splitlines()
    examples = lines[lines.index("examples:") + 1:]
    assert examples and all(line.startswith("  ") for line in examples)
    assert examples[-1].strip().startswith("membrane") or \
        examples[-1].startswith("      ")   # a continued command line


def test_a_membrane_error_is_one_line_on_stderr_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["endpoint", "list", "--server", str(tmp_path / "none.sock")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("AgentUnreachable: ") and err.count("\n") == 1


def test_a_command_without_its_verb_prints_help_and_exits_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bpf", "ct"]) == 2
    assert "examples:" in capsys.readouterr().out
    assert main([]) == 2


def test_a_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(["status", "-o", "yaml"])
    assert exit.value.code == 2 and "invalid choice: 'yaml'" in capsys.readouterr().err


@pytest.mark.parametrize("raised, code", [
    (KeyboardInterrupt(), 130),
    (LabError("lab x: no such lab"), 1),
], ids=["ctrl-c", "a membrane error"])
def test_every_command_maps_what_went_wrong_the_same_way(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        raised: BaseException, code: int) -> None:
    def fail(args: argparse.Namespace) -> int:
        raise raised
    for module, name in (("cli.debug", "status"), ("cli.observe", "run_observe"),
                         ("cli.policy", "run_get"), ("cli.identity", "run_list")):
        monkeypatch.setattr(f"{module}.{name}", fail)
    for argv in (["status"], ["observe"], ["policy", "get"], ["identity", "list"]):
        assert main(argv) == code
    err = capsys.readouterr().err
    assert err == ("" if code == 130 else "LabError: lab x: no such lab\n" * 4)


def test_a_table_cell_or_header_may_hold_several_lines(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["ID", "POLICY\nENFORCEMENT"], [["1", "Enabled"], ["22", "a\nbb"]])
    assert capsys.readouterr().out.splitlines() == [
        "ID   POLICY",
        "     ENFORCEMENT",
        "1    Enabled",
        "22   a",
        "     bb",
    ]
