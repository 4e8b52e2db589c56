"""When the kernel refuses the datapath, the agent says which kernel feature is missing:
bcc's and the verifier's words (as they print them) in, one sentence out."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import pytest

from agent.datapath.diagnose import (MAPS, PERMISSIONS, Captured, captured_stderr,
                                     explain_compile, explain_load, explain_tc)

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"

# What a 5.4 kernel's verifier prints for the ring buffer helper it does not know, as
# libbpf passes it on (the kernel's format changed in 5.x: both are here).
OLD_VERIFIER = """bpf: Failed to load program: Invalid argument
0: (bf) r6 = r1
1: (b7) r1 = 0
...
311: (85) call unknown#130
invalid func unknown#130
processed 312 insns (limit 1000000) max_states_per_insn 2 total_states 21
"""
NEW_VERIFIER = "311: (85) call bpf_ringbuf_output#130\nunknown func bpf_ringbuf_output#130\n"


@pytest.mark.parametrize("log, wanted", [
    (OLD_VERIFIER, r"from_container: the kernel lacks the BPF helper bpf_ringbuf_output "
                   r"\(#130\), added in Linux 5\.8"),
    (NEW_VERIFIER, r"bpf_ringbuf_output \(#130\), added in Linux 5\.8"),
    ("invalid func unknown#26\n", r"bpf_skb_load_bytes \(#26\), added in Linux 4\.5"),
    ("BPF program is too large. Processed 1000001 insn\n", r"1 million from Linux 5\.2"),
    ("back-edge from insn 40 to 12\n", r"refuses loops \(bounded loops: Linux 5\.3\)"),
    ("R1 invalid mem access 'inv'\nprocessed 12 insns\n",
     r"the verifier rejected from_container: Failed to load .*R1 invalid mem access"),
], ids=["helper-old-format", "helper-new-format", "helper-skb-load-bytes", "too-large",
        "loops", "other-verifier-words"])
def test_a_refused_program_names_what_the_kernel_lacks(log: str, wanted: str) -> None:
    error = "Failed to load BPF program b'from_container': Invalid argument"
    assert re.search(wanted, explain_load("from_container", error, log))


def test_no_permission_is_said_as_such() -> None:
    assert explain_load("to_container", "Need super-user privileges to run", "") == PERMISSIONS
    log = "could not open bpf map: ipcache, error: Operation not permitted\n"
    assert explain_compile("Failed to compile BPF module <text>", log) == PERMISSIONS
    assert "CAP_BPF" in PERMISSIONS and "privileged" in PERMISSIONS


@pytest.mark.parametrize("log, ringbuf, wanted", [
    ("could not open bpf map: events, error: Invalid argument\n", True,
     r"map 'events': the kernel refused to create the BPF ring buffer \(Linux 5\.8"),
    ("could not open bpf map: events, error: Invalid argument\n", False,
     r"perf event arrays \(Linux 4\.3"),
    ("could not open bpf map: conntrack, error: Invalid argument\n", True,
     r"LRU hash maps \(Linux 4\.10"),
    ("/virtual/main.c:31:1: error: could not open bpf map: Invalid argument\n"
     "is lpm_trie map type enabled in your kernel?\n", True,
     r"longest-prefix-match trie maps \(Linux 4\.11"),
    ("/virtual/main.c:9:2: error: use of undeclared identifier 'x'\n", True,
     r"Failed to compile BPF module <text>: /virtual/main.c:9:2: error: use of undeclared"),
], ids=["ringbuf", "perf-fallback", "lru", "frontend-format", "clang-error"])
def test_a_refused_compile_names_the_map_type_the_kernel_lacks(log: str, ringbuf: bool,
                                                               wanted: str) -> None:
    assert re.search(wanted, explain_compile("Failed to compile BPF module <text>", log,
                                             ringbuf))


class NetlinkError(Exception):
    """pyroute2's: an errno in .code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code


@pytest.mark.parametrize("step, code, wanted", [
    ("the clsact qdisc", errno.ENOENT, r"no clsact qdisc \(CONFIG_NET_SCH_INGRESS"),
    ("the clsact qdisc", errno.EOPNOTSUPP, r"modprobe sch_ingress"),
    ("the bpf filter", errno.ENOENT, r"no BPF tc classifier .*CONFIG_NET_CLS_BPF"),
    ("the bpf filter", errno.EPERM, r"needs CAP_NET_ADMIN"),
    ("the bpf filter", errno.EBADF, r"adding the bpf filter failed"),
])
def test_tc_refusals_name_the_missing_qdisc_or_classifier(step: str, code: int,
                                                          wanted: str) -> None:
    assert re.search(wanted, explain_tc(step, NetlinkError(code, os.strerror(code))))


def test_the_map_table_mirrors_the_c_declarations() -> None:
    declared = {}
    for header in BPF_DIR.glob("lib/*.h"):
        text = header.read_text()
        for kind, name in re.findall(r'BPF_TABLE_PINNED\("(\w+)",\s*[^,]+,\s*[^,]+,\s*(\w+)',
                                     text):
            declared[name] = kind
        for name in re.findall(r"BPF_RINGBUF_OUTPUT\((\w+)", text):
            declared[name] = "ringbuf"
    assert declared == MAPS


def test_what_bcc_prints_is_recorded_and_still_shown(capfd: pytest.CaptureFixture[str]) -> None:
    out = Captured()
    with captured_stderr(out):
        os.write(2, b"libbpf: unknown func bpf_ringbuf_output#130\n")
    assert out.text == "libbpf: unknown func bpf_ringbuf_output#130\n"
    assert capfd.readouterr().err == out.text
