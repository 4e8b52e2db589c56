"""A lab whose machine has no kernel headers in /lib/modules: the agents compile against
the headers Membrane ships (agent/datapath/headers.py), enforce, and agree with the spec.

The lab runs in a child process under `unshare --mount`, with an empty tmpfs mounted over
/lib/modules in that mount namespace only (the host's own /lib/modules, with whatever
build/source links it has, is left as it is). Inside, a control proves the headers really
are hidden: bcc left to itself cannot compile a trivial program. Then a two-node lab comes
up with its agents (children of that process, so in the same mount namespace), and real
connections between its pods agree with `policy matrix` under a policy that denies some.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.agentlab import B_FROM_A, manifest, pod
from tests.lab.conftest import needs_root, unique_lab_name

pytestmark = [pytest.mark.privileged, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

PODS = manifest(pod("a1", "a", "node1"), pod("b1", "b", "node1"), pod("c2", "c", "node2"),
                B_FROM_A)

# Runs inside the mount namespace. Prints one line per finding; exits non-zero on failure.
SCENARIO = r"""
import json, os, platform, sys
from pathlib import Path

release = platform.release()
assert not Path(f"/lib/modules/{release}").exists(), "the tmpfs does not hide /lib/modules"
assert os.environ.get("BCC_KERNEL_SOURCE") is None

# Control: bcc on its own finds no headers here (so the agents must have used ours).
from bcc import BPF
try:
    BPF(text=b"int f(struct __sk_buff *skb) { return 0; }")
except Exception as err:
    print("control: bcc alone fails:", str(err).splitlines()[0], flush=True)
else:
    if not Path("/sys/kernel/kheaders.tar.xz").exists():
        sys.exit("control: bcc compiled without headers; the test proves nothing")

from lab.controller import Lab
from tests.lab.agentlab import differences, probe_and_matrix

lab = Lab(sys.argv[1])
try:
    assert lab.up(2, [sys.argv[2]]), "lab up reported failures"
    probed, expected = probe_and_matrix(lab, [80], ["TCP"])
    diff = differences(probed, expected)
    assert not diff, "probe and matrix disagree:\n" + "\n".join(diff)
    allowed = {(v["from"], v["to"]) for v in probed["verdicts"] if v["allowed"]}
    assert ("default/a1", "default/b1") in allowed
    assert ("default/c2", "default/b1") not in allowed, "the policy is not enforced"
    print("verdicts:", len(probed["verdicts"]), "denied:",
          sum(not v["allowed"] for v in probed["verdicts"]), flush=True)
finally:
    lab.down()
print("ok", flush=True)
"""


def test_a_lab_enforces_with_lib_modules_empty(tmp_path: Path) -> None:
    needs_root()
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    pods = tmp_path / "pods.yaml"
    pods.write_text(PODS)
    script = tmp_path / "scenario.py"
    script.write_text(SCENARIO)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("BCC_KERNEL_SOURCE", None)
    # The tmpfs lives only in the child's private mount namespace.
    shell = 'mount -t tmpfs -o mode=0755 membrane-test-empty /lib/modules && exec "$@"'
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", shell, "sh",
         sys.executable, str(script), unique_lab_name("nohdr"), str(pods)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "control: bcc alone fails" in result.stdout or \
        Path("/sys/kernel/kheaders.tar.xz").exists()
    assert result.stdout.rstrip().endswith("ok")
    # The empty tmpfs never reached the host's mount table.
    assert "membrane-test-empty" not in Path("/proc/self/mountinfo").read_text()


def test_setup_writes_nothing_under_lib_modules() -> None:
    """`make setup` (scripts/setup.sh) on this machine, with /lib/modules an empty
    read-only tmpfs: any write there would fail it, and the headers check must pass."""
    needs_root()
    if shutil.which("unshare") is None:
        pytest.skip("needs util-linux unshare")
    shell = ("mount -t tmpfs -o ro,mode=0755 membrane-test-empty /lib/modules && "
             "bash scripts/setup.sh && test -z \"$(ls -A /lib/modules)\"")
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh",
                             "-c", shell], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kernel headers for bcc: /usr/src/linux-headers-" in result.stdout
    assert "/lib/modules/" not in result.stdout.replace("(nothing under /lib/modules)", "")
