"""The tutorial, replayed on a lab exactly as `make demo` does: every step's checks
(HTTP 200, connection timeout, DNS resolution timing out) must match the tutorial."""

from __future__ import annotations

import pytest

from cli.demo import STEPS, Demo, classify
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]


@pytest.mark.parametrize("line,kind", [
    ("HTTP/1.1 200 OK", "HTTP 200"),
    ("curl: (28) Connection timed out after 5001 milliseconds", "connection timed out"),
    ("curl: (28) Failed to connect to backend port 8080 after 3001 ms: Timeout was reached",
     "connection timed out"),
    ("curl: (28) Resolving timed out after 5000 milliseconds", "resolving timed out"),
    ("curl: (6) Could not resolve host: backend", "resolving timed out"),
], ids=["ok", "old timeout", "new timeout", "dns timeout", "dns failure"])
def test_curl_answers_are_classified_as_the_tutorial_names_them(line: str, kind: str) -> None:
    assert classify(line) == kind


def test_every_tutorial_step_gives_what_the_tutorial_shows(capsys: pytest.CaptureFixture[str]) -> None:
    needs_root()
    name = unique_lab_name("tut")
    demo = Demo(name, timeout=2)
    try:
        assert demo.run() == 0
    finally:
        demo.membrane("lab", "down", "--name", name, check=False, show=False)
    out = capsys.readouterr().out
    assert out.count("== Step") == len(STEPS)
    assert "DIFFERS" not in out
    assert "Policy denied DROPPED (TCP Flags: SYN)" in out
