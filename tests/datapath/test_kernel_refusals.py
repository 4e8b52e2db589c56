"""The kernel really refusing the datapath, and the agent saying why: a compile with no
capabilities at all (root, with the bounding set emptied by setpriv), and maps pinned
outside bpffs. Each runs in a child process, so this process keeps its privileges."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.privileged]

REPO = Path(__file__).resolve().parents[2]

COMPILE = """
import sys
from agent.datapath.compiler import CompileOptions, compile_datapath, load_programs
from core.errors import DatapathError
try:
    load_programs(compile_datapath(CompileOptions(pin_dir=sys.argv[1])))
except DatapathError as err:
    print("DatapathError:", err)
    sys.exit(3)
"""


def compile_in_child(pin_dir: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0 or not os.path.isdir("/sys/fs/bpf"):
        pytest.skip("needs root and bpffs")
    pytest.importorskip("bcc")
    return subprocess.run([*prefix, sys.executable, "-c", COMPILE, pin_dir], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True,
                          text=True, timeout=120)


def test_without_capabilities_the_agent_says_which_it_needs() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs util-linux setpriv")
    pins = tempfile.mkdtemp(prefix="mbr-refusal-", dir="/sys/fs/bpf")
    try:
        result = compile_in_child(f"{pins}/maps", "setpriv", "--bounding-set=-all",
                                  "--inh-caps=-all", "--ambient-caps=-all", "--")
    finally:
        shutil.rmtree(pins, ignore_errors=True)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "EPERM" in result.stdout and "CAP_BPF" in result.stdout, result.stdout


def test_maps_pinned_outside_bpffs_are_said_to_be(tmp_path: Path) -> None:
    result = compile_in_child(str(tmp_path / "maps"))
    assert result.returncode == 3, result.stdout + result.stderr
    assert f"the pin directory {tmp_path / 'maps'} is not on a bpffs mount" in result.stdout
