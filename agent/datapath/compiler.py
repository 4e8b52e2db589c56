"""Compiling the C datapath (bpf/bpf_lxc.c) with bcc, once per agent start.

Two things here are forced by bcc 0.26 and worth knowing:

* bcc rewrites map methods (`endpoints.lookup(&k)`, `events.ringbuf_output(...)`) into
  helper calls only in the *main* file it compiles. Calls in `#include`d headers reach
  the kernel as indirect calls through the table struct, and loading fails with
  "unknown opcode 8d". So `source()` inlines our own `#include "lib/*.h"` headers into
  one translation unit (each once, with `#line` markers so clang's diagnostics still
  name the original file and line) and hands bcc that text. System headers
  (`<uapi/...>`) are left to clang. No other change is made to the C: configuration is
  `-D` cflags only.
* Pinned maps (`BPF_TABLE_PINNED`) take their path from a string literal, so the pin
  directory is a `-DMEMBRANE_PIN_DIR="..."` cflag; bcc creates and pins each map when the
  path is empty and reuses the pinned map when it exists.

Set `MEMBRANE_BPF_DEBUG=1` to print the exact cflags and C text compiled on stderr
(with `MEMBRANE_BPF_DEBUG_FILE=PATH`, the C text goes to that file instead).
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.datapath import layout
from agent.datapath.diagnose import Captured, captured_stderr, explain_compile, explain_load
from agent.datapath.headers import kernel_source
from core.errors import DatapathError

log = logging.getLogger(__name__)

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"
MAIN_SOURCE = BPF_DIR / "bpf_lxc.c"

_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')

# Ring buffer maps arrived in Linux 5.8.
RINGBUF_MIN_KERNEL = (5, 8)


@dataclass(frozen=True)
class Features:
    """What the running kernel offers, and what we fall back to without it."""

    kernel: tuple[int, int]
    ringbuf: bool
    notes: tuple[str, ...] = ()


def kernel_version(release: str | None = None) -> tuple[int, int]:
    rel = release or platform.release()
    m = re.match(r"(\d+)\.(\d+)", rel)
    if not m:
        return (0, 0)
    return int(m.group(1)), int(m.group(2))


def probe_features(release: str | None = None) -> Features:
    """Kernel feature probe. Only the ring buffer matters today: without it (before
    5.8) events go through a perf event array instead, which is per-CPU and orders
    records only within a CPU."""
    kv = kernel_version(release)
    if kv >= RINGBUF_MIN_KERNEL:
        return Features(kernel=kv, ringbuf=True)
    note = (f"kernel {kv[0]}.{kv[1]} has no BPF ring buffer (needs >= 5.8): "
            "falling back to a perf event array for datapath events")
    return Features(kernel=kv, ringbuf=False, notes=(note,))


# ct_timeouts key -> the CT_TIMEOUT_<NAME> macro of bpf/lib/conntrack.h it overrides.
CT_TIMEOUT_NAMES = {"TCP_SYN": "SYN", "TCP_MIDSTREAM": "MIDSTREAM",
                    "TCP_ESTABLISHED": "ESTABLISHED",
                    "TCP_FIN_WAIT": "FIN_WAIT", "TCP_CLOSE": "CLOSE", "UDP": "UDP",
                    "SCTP": "SCTP", "ICMP": "ICMP"}


@dataclass(frozen=True)
class CompileOptions:
    """Everything that becomes a -D cflag. Sizes are max_entries; a pinned map keeps
    the size it was created with (remove the pins to resize). The defaults are the C's
    (bpf/lib/common.h MEMBRANE_*_MAX, MEMBRANE_RING_PAGES; tests/unit/test_c_mirrors.py)."""

    pin_dir: str
    max_ipcache: int = 16384
    max_cidr: int = 4096
    max_endpoints: int = 1024
    max_policy: int = 16384
    max_conntrack: int = 65536
    max_conntrack_unreplied: int = 16384  # connections not answered yet (conntrack.h)
    ring_pages: int = 64                  # power of two
    ct_timeouts: dict[str, int] = field(default_factory=dict)   # e.g. {"TCP_SYN": 5}
    # Per-packet conntrack packet/byte counters (bpf/lib/conntrack.h): two atomic adds
    # on a shared line per packet, so off by default; off, `bpf ct list` shows 0.
    ct_accounting: bool = False

    def cflags(self, features: Features) -> list[str]:
        if self.ring_pages <= 0 or self.ring_pages & (self.ring_pages - 1):
            raise DatapathError(f"ring_pages={self.ring_pages}: must be a power of two")
        if '"' in self.pin_dir or "\\" in self.pin_dir:
            raise DatapathError(f"pin dir {self.pin_dir!r}: quotes and backslashes "
                                "are not allowed")
        flags = [
            f"-I{BPF_DIR}",
            f'-DMEMBRANE_PIN_DIR="{self.pin_dir.rstrip("/")}"',
            f"-DMEMBRANE_IPCACHE_MAX={self.max_ipcache}",
            f"-DMEMBRANE_CIDR_MAX={self.max_cidr}",
            f"-DMEMBRANE_ENDPOINTS_MAX={self.max_endpoints}",
            f"-DMEMBRANE_POLICY_MAX={self.max_policy}",
            f"-DMEMBRANE_CT_MAX={self.max_conntrack}",
            f"-DMEMBRANE_CT_UNREPLIED_MAX={self.max_conntrack_unreplied}",
            f"-DMEMBRANE_RING_PAGES={self.ring_pages}",
        ]
        for key, seconds in sorted(self.ct_timeouts.items()):
            if key not in CT_TIMEOUT_NAMES:
                raise DatapathError(f"unknown conntrack timeout {key!r}: "
                                    f"use one of {sorted(CT_TIMEOUT_NAMES)}")
            flags.append(f"-DCT_TIMEOUT_{CT_TIMEOUT_NAMES[key]}={int(seconds)}")
        if not features.ringbuf:
            flags.append("-DMEMBRANE_USE_PERF_EVENTS")
        if self.ct_accounting:
            flags.append("-DMEMBRANE_CT_ACCOUNTING")
        return flags


def source(main: Path = MAIN_SOURCE) -> str:
    """The C text handed to bcc: `main` with our local headers inlined (see above)."""
    seen: set[Path] = set()
    out: list[str] = []

    def emit(path: Path) -> None:
        path = path.resolve()
        if path in seen:
            return
        seen.add(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise DatapathError(f"cannot read datapath source {path}: {e}") from e
        out.append(f'#line 1 "{path}"')
        for n, line in enumerate(lines, start=1):
            m = _LOCAL_INCLUDE.match(line)
            if m:
                emit(path.parent / m.group(1))
                out.append(f'#line {n + 1} "{path}"')
            else:
                out.append(line)

    emit(main)
    return "\n".join(out) + "\n"


def debug_enabled() -> bool:
    return os.environ.get("MEMBRANE_BPF_DEBUG", "") not in ("", "0")


def compile_datapath(options: CompileOptions, features: Features | None = None) -> Any:
    """Compiles and returns the bcc `BPF` object (maps created or reused from pins).

    Programs are not loaded here; `load_programs` does that."""
    from bcc import BPF  # imported late: only the datapath module needs bcc

    features = features or probe_features()
    for note in features.notes:
        log.warning("%s", note)
    os.makedirs(options.pin_dir, exist_ok=True)
    text = source()
    cflags = options.cflags(features)
    if debug_enabled():
        print(f"# membrane: compiling {MAIN_SOURCE} with cflags:\n#   "
              + "\n#   ".join(cflags), file=sys.stderr)
        dump = os.environ.get("MEMBRANE_BPF_DEBUG_FILE")
        if dump:
            Path(dump).write_text(text)
            print(f"# membrane: compiled C text written to {dump}", file=sys.stderr)
        else:
            print(text, file=sys.stderr)
    # Against Membrane's own kernel headers (headers.py), never the node's /lib/modules.
    with kernel_source() as headers:
        if debug_enabled():
            print(f"# membrane: kernel headers: BCC_KERNEL_SOURCE={headers}", file=sys.stderr)
        stderr = Captured()
        try:
            with captured_stderr(stderr):
                return BPF(text=text.encode(), cflags=cflags)
        except Exception as e:  # bcc raises bare Exception
            why = explain_compile(str(e), stderr.text, features.ringbuf)
            raise DatapathError(
                f"compiling {MAIN_SOURCE} failed: {why} (run with MEMBRANE_BPF_DEBUG=1 to "
                "see the exact C and cflags)") from e


def load_programs(bpf: Any) -> dict[str, Any]:
    """Loads the full programs, puts them in their tail_calls slots, then loads the two
    tc entry points (the fast paths, bpf/lib/fastpath.h); returns name -> bcc function
    (with .fd) for all four. The slots are filled before this returns, so an entry
    point is never attached with an empty slot behind it; over a reused pin the previous
    agent's still-attached entry points reach these full programs from then on."""
    from bcc import BPF  # imported late: only the datapath module needs bcc

    progs = {}
    slots = bpf[b"tail_calls"]
    for name in (*layout.TAIL_CALLS, "from_container", "to_container"):
        stderr = Captured()
        try:
            with captured_stderr(stderr):     # the verifier's log: what the kernel lacks
                progs[name] = bpf.load_func(name.encode(), BPF.SCHED_CLS)
        except Exception as e:
            raise DatapathError(explain_load(name, str(e), stderr.text)) from e
        if name in layout.TAIL_CALLS:
            slots[ctypes.c_int(layout.TAIL_CALLS[name])] = ctypes.c_int(progs[name].fd)
    return progs
