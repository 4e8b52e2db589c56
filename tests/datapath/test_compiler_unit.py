"""What the compiler hands bcc, without compiling: headers inlined once with #line
markers, configuration as -D cflags, and a clear fallback on old kernels."""

from __future__ import annotations

import re

import pytest

from agent.datapath.compiler import CompileOptions, probe_features, source
from core.errors import DatapathError


def test_local_headers_are_inlined_once_with_line_markers() -> None:
    text = source()
    assert not re.search(r'^\s*#\s*include\s+"', text, re.M)
    assert text.count("#ifndef MEMBRANE_COMMON_H") == 1
    for header in ("common.h", "drop.h", "policy.h", "conntrack.h", "events.h",
                   "revision.h"):
        assert re.search(rf'#line 1 ".*/bpf/lib/{header}"', text)
    assert "int from_container(struct __sk_buff *skb)" in text


def test_configuration_is_passed_as_cflags() -> None:
    flags = CompileOptions(pin_dir="/sys/fs/bpf/x/", max_policy=8, ring_pages=2,
                           ct_timeouts={"UDP": 1}).cflags(probe_features("6.1.0"))
    assert '-DMEMBRANE_PIN_DIR="/sys/fs/bpf/x"' in flags
    assert "-DMEMBRANE_POLICY_MAX=8" in flags and "-DMEMBRANE_RING_PAGES=2" in flags
    assert "-DCT_TIMEOUT_UDP=1" in flags
    assert "-DMEMBRANE_USE_PERF_EVENTS" not in flags


def test_kernels_before_5_8_fall_back_to_perf_events_and_say_so() -> None:
    f = probe_features("5.4.0-100-generic")
    assert not f.ringbuf and "perf event array" in f.notes[0]
    assert "-DMEMBRANE_USE_PERF_EVENTS" in CompileOptions(pin_dir="/x").cflags(f)


@pytest.mark.parametrize("bad", [{"ring_pages": 3}, {"ct_timeouts": {"TCP": 5}},
                                 {"pin_dir": '/sys/fs/bpf/"x'}],
                         ids=["ring not a power of two", "unknown timeout", "quote in pin dir"])
def test_bad_options_are_refused_with_a_message(bad: dict[str, object]) -> None:
    opts = CompileOptions(**{"pin_dir": "/sys/fs/bpf/x", **bad})  # type: ignore[arg-type]
    with pytest.raises(DatapathError):
        opts.cflags(probe_features("6.1.0"))


def test_conntrack_accounting_is_off_unless_asked_for() -> None:
    f = probe_features("6.1.0")
    assert "-DMEMBRANE_CT_ACCOUNTING" not in CompileOptions(pin_dir="/x").cflags(f)
    assert "-DMEMBRANE_CT_ACCOUNTING" in CompileOptions(pin_dir="/x",
                                                        ct_accounting=True).cflags(f)


@pytest.mark.parametrize("rev, nxt", [(0, 1), (1, 2), (0xFFFFFFFE, 0xFFFFFFFF),
                                      (0xFFFFFFFF, 1)])
def test_the_policy_revision_wraps_past_zero(rev: int, nxt: int) -> None:
    from agent.datapath.layout import next_revision

    assert next_revision(rev) == nxt   # 0 means "no revision": never written
