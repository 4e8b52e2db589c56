"""Which kernel feature is missing when the kernel refuses the datapath, said plainly.

bcc and the kernel say little: "Failed to load BPF program b'from_container': Invalid
argument", with the verifier's log (or bcc's "could not open bpf map: ...") printed on
the process's stderr, or an errno from tc over netlink. What the datapath needs from a
kernel (docs/install-kind.md, "What a node needs"):

    BPF and tc          CONFIG_BPF_SYSCALL; tc's clsact qdisc (CONFIG_NET_SCH_INGRESS) and
                        cls_bpf in direct-action mode (CONFIG_NET_CLS_BPF): Linux 4.5+
    map types           hash, array, percpu_array (4.6), lru_hash (4.10), lpm_trie (4.11),
                        ringbuf (5.8; older kernels get a perf event array instead, see
                        compiler.probe_features)
    helpers             map lookup/update, ktime_get_ns, skb_load_bytes (4.5),
                        ringbuf_output (5.8) or perf_event_output
    BTF                 not needed (bcc compiles against headers: agent/datapath/headers.py)

`captured_stderr()` records what bcc, libbpf and clang print while the kernel is asked
(and still shows it); `explain_compile`, `explain_load` and `explain_tc` turn an error and
that text into a sentence naming the missing feature, or quoting the verifier's last
words when it is not one of those.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

# Helper number -> (name, first Linux version with it), for the helpers the datapath calls
# (bcc turns map methods into the map helpers, and events into ringbuf or perf output).
HELPERS: dict[int, tuple[str, str]] = {
    1: ("bpf_map_lookup_elem", "3.19"),
    2: ("bpf_map_update_elem", "3.19"),
    3: ("bpf_map_delete_elem", "3.19"),
    5: ("bpf_ktime_get_ns", "4.1"),
    25: ("bpf_perf_event_output", "4.4"),
    26: ("bpf_skb_load_bytes", "4.5"),
    130: ("bpf_ringbuf_output", "5.8"),
}

# Map type -> (what it is, first Linux version with it).
MAP_TYPES: dict[str, tuple[str, str]] = {
    "hash": ("hash maps", "3.19"),
    "array": ("array maps", "3.19"),
    "percpu_array": ("per-CPU array maps", "4.6"),
    "lru_hash": ("LRU hash maps", "4.10"),
    "lpm_trie": ("longest-prefix-match trie maps", "4.11"),
    "ringbuf": ("the BPF ring buffer", "5.8"),
    "perf_output": ("perf event arrays", "4.3"),
    "prog": ("program arrays (tail calls)", "4.2"),
}

# The datapath's maps by name -> type, as declared in bpf/lib/*.h (a test compares them).
# "events" is the ring buffer, or a perf event array when the kernel has none.
MAPS: dict[str, str] = {
    "events": "ringbuf", "ipcache": "lpm_trie", "cidr": "lpm_trie", "policy": "lpm_trie",
    "ipcache6": "lpm_trie", "cidr6": "lpm_trie",
    "policy_revision": "array", "conntrack": "lru_hash", "ct_unreplied": "lru_hash",
    "conntrack6": "lru_hash", "ct6_unreplied": "lru_hash",
    "endpoints": "hash", "endpoints6": "array",
    "drop_metrics": "percpu_array", "lost_events": "percpu_array",
    "tail_calls": "prog",
}

PERMISSIONS = ("the kernel refused BPF to this process (EPERM): the agent needs CAP_BPF, "
               "CAP_PERFMON and CAP_NET_ADMIN, or CAP_SYS_ADMIN (in a pod: privileged), and "
               "a kernel not locked down against BPF (lockdown=confidentiality)")

_UNKNOWN_HELPER = re.compile(r"(?:unknown func (\w+)#(\d+)|invalid func unknown#(\d+))")
_MAP_BY_NAME = re.compile(r"could not open bpf map: (\w+), error: ([^\n]+)")
_MAP_BY_TYPE = re.compile(r"could not open bpf map: ([^\n]+)\s*\nis (\w+) map type enabled")
_NOT_BPFFS = re.compile(r"specified path (\S+)/[^/\s]+ is not on BPF FS")


@dataclass
class Captured:
    """What was written to stderr within captured_stderr (set when it ends)."""

    text: str = ""


@contextmanager
def captured_stderr(out: Captured) -> Iterator[Captured]:
    """Within: everything written to file descriptor 2 (bcc, libbpf and clang write there
    directly, not through sys.stderr) is recorded in `out`, then written out to the real
    stderr too, so nothing is hidden. What other threads print meanwhile appears late."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            data = tmp.read()
            out.text = data.decode(errors="replace")
            if data:
                os.write(2, data)


def _since(version: str) -> str:
    return f"Linux {version} or later"


def missing_helper(log: str) -> str | None:
    """The kernel's verifier does not know a helper the program calls: which one."""
    found = _UNKNOWN_HELPER.search(log)
    if found is None:
        return None
    number = int(found.group(2) or found.group(3))
    name, since = HELPERS.get(number, (found.group(1) or f"helper #{number}", "?"))
    needs = f", added in {_since(since)}" if since != "?" else ""
    return f"the kernel lacks the BPF helper {name} (#{number}){needs}"


def missing_map(log: str, ringbuf: bool = True) -> str | None:
    """bcc could not create a map: which kind the kernel lacks (or the EPERM story)."""
    by_name, by_type = _MAP_BY_NAME.search(log), _MAP_BY_TYPE.search(log)
    if by_name:
        name, error = by_name.groups()
        kind = MAPS.get(name, "")
        if kind == "ringbuf" and not ringbuf:
            kind = "perf_output"
    elif by_type:
        error, kind, name = by_type.group(1), by_type.group(2), ""
    else:
        return None
    if "not permitted" in error:
        return PERMISSIONS
    what, since = MAP_TYPES.get(kind, (f"{kind or 'this kind of'} maps", "?"))
    needs = f" ({_since(since)})" if since != "?" else ""
    subject = f"map {name!r}: " if name else ""
    return f"{subject}the kernel refused to create {what}{needs}: {error.strip()}"


def _verifier_words(log: str, lines: int = 3) -> str:
    said = [line.strip() for line in log.splitlines() if line.strip()]
    return " | ".join(said[-lines:])


def explain_compile(error: str, log: str, ringbuf: bool = True) -> str:
    """bcc's BPF() failed (clang, or creating the maps): why, in a sentence."""
    if "Need super-user privileges" in error:
        return PERMISSIONS
    pins = _NOT_BPFFS.search(log)
    if pins:
        return (f"the pin directory {pins.group(1)} is not on a bpffs mount (mount -t bpf "
                "bpf /sys/fs/bpf; in a pod, mount the node's /sys/fs/bpf)")
    found = missing_map(log, ringbuf)
    if found:
        return found
    if "kconfig.h" in log or "Unable to find kernel headers" in log:
        return ("bcc found no kernel headers (include/linux/kconfig.h); "
                "agent/datapath/headers.py chose none it could use")
    errors = [line.strip() for line in log.splitlines() if ": error:" in line]
    return f"{error}: {' | '.join(errors[:3])}" if errors else error


def explain_load(program: str, error: str, log: str) -> str:
    """The kernel refused to load `program`: which feature it lacks, or what the verifier
    said."""
    if "Need super-user privileges" in error or "Operation not permitted" in error:
        return PERMISSIONS
    helper = missing_helper(log)
    if helper:
        return f"{program}: {helper}; the datapath needs {_since('5.8')} (4.5 without events)"
    if "program is too large" in log or "Argument list too long" in error:
        return (f"{program}: more instructions than this kernel's verifier accepts "
                f"(1 million from Linux 5.2, 4096 before)")
    if "back-edge" in log:
        return f"{program}: this kernel's verifier refuses loops (bounded loops: Linux 5.3)"
    said = _verifier_words(log)
    return f"the verifier rejected {program}: {error}" + (f" ({said})" if said else "")


def explain_tc(step: str, err: BaseException) -> str:
    """tc refused `step` ("the clsact qdisc", "the bpf filter"): why, in a sentence."""
    code = getattr(err, "code", None)
    if code == errno.EPERM:
        return f"adding {step} needs CAP_NET_ADMIN: {err}"
    if code in (errno.ENOENT, errno.EOPNOTSUPP, errno.EINVAL):
        if "clsact" in step:
            return (f"the kernel has no clsact qdisc (CONFIG_NET_SCH_INGRESS, "
                    f"{_since('4.5')}; try `modprobe sch_ingress`): {err}")
        return (f"the kernel has no BPF tc classifier in direct-action mode "
                f"(CONFIG_NET_CLS_BPF, {_since('4.5')}; try `modprobe cls_bpf`): {err}")
    return f"adding {step} failed: {err}"
