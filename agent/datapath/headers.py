"""The kernel headers bcc compiles the datapath against: Membrane's own, never the node's.

The datapath uses only stable kernel interfaces (UAPI structs, helpers by number), so any
recent header tree compiles it for the running kernel: the image ships Debian's
linux-headers-<arch> (deploy/Dockerfile) and `make setup` installs the same package on a
host. Nothing is read from, or written to, /lib/modules.

How bcc 0.26 finds headers (src/cc/frontends/clang/loader.cc, kbuild_helper.cc):

* BCC_KERNEL_SOURCE=DIR: DIR is the whole tree. clang runs in DIR with -Iarch/<arch>/include,
  -Iarch/<arch>/include/generated, -Iinclude, ... and -include include/linux/kconfig.h.
  The build/source split is *not* consulted this way.
* otherwise /lib/modules/$(uname -r): if build/ and source/ there are both directories,
  clang runs in source/ and build/'s generated headers are searched first; else build/.
* either way, without include/linux/kconfig.h bcc falls back to the kernel's own
  /sys/kernel/kheaders.tar.xz (CONFIG_IKHEADERS; it runs `modprobe kheaders` for it).

Debian splits a tree in two packages: linux-headers-<v>-<arch> (the generated part:
include/generated, arch/<karch>/include/generated, .config; its Makefile includes the
other) and linux-headers-<v>-common (the rest). The split layout only works through
/lib/modules, so `kernel_source()` builds one tree of its own instead: a temporary
directory of symlinks overlaying the two (the <arch> tree's entries first; where both have
a directory of one name, a directory overlaying both), and points BCC_KERNEL_SOURCE at it
for the compile.

Which headers, in this order:
  1. $MEMBRANE_KERNEL_HEADERS: a complete tree, or a Debian <arch> tree;
  2. /usr/src/linux-headers-$(uname -r), when the running kernel is Debian's own;
  3. the newest /usr/src/linux-headers-*-<arch> (what the image and `make setup` install);
  4. none installed: the kernel's /sys/kernel/kheaders.tar.xz, if it has one (bcc is
     pointed at an empty directory, so it skips /lib/modules and goes there);
  5. else DatapathError, saying what to install.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from core.errors import DatapathError

log = logging.getLogger(__name__)
HEADERS_ENV = "MEMBRANE_KERNEL_HEADERS"
BCC_ENV = "BCC_KERNEL_SOURCE"
SRC = Path("/usr/src")
KHEADERS = Path("/sys/kernel/kheaders.tar.xz")

# uname -m -> Debian's architecture (the package suffix)
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el",
               "s390x": "s390x", "riscv64": "riscv64"}

_MAKEFILE_INCLUDE = re.compile(r"^include\s+(/\S+)/Makefile\s*$", re.M)
_VERSION = re.compile(r"(\d+)")

# bcc reads the environment during BPF(): one compile at a time changes it.
_ENV_LOCK = threading.Lock()


@dataclass(frozen=True)
class HeaderTrees:
    """The trees that together make the kernel headers, most specific first."""

    layers: tuple[Path, ...]

    def describe(self) -> str:
        return " + ".join(str(p) for p in self.layers)


def _complete(tree: Path) -> bool:
    return (tree / "include/linux/kconfig.h").is_file()


def _common_of(arch_tree: Path) -> Path | None:
    """The -common tree a Debian <arch> tree belongs with: the one its Makefile includes,
    else the sibling of the same version."""
    try:
        found = _MAKEFILE_INCLUDE.search((arch_tree / "Makefile").read_text())
    except OSError:
        found = None
    if found and Path(found.group(1)).is_dir():
        return Path(found.group(1))
    stem, _, _ = arch_tree.name.rpartition("-")
    sibling = arch_tree.with_name(f"{stem}-common")
    return sibling if sibling.is_dir() else None


def trees_at(path: Path) -> HeaderTrees | None:
    """The header trees `path` stands for: itself when complete, with its -common tree
    when it is a Debian <arch> tree; None when it is neither."""
    if _complete(path):
        return HeaderTrees((path,))
    common = _common_of(path)
    if common is not None and (path / "include/generated/autoconf.h").is_file() \
            and _complete(common):
        return HeaderTrees((path, common))
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in _VERSION.findall(path.name))


def find_headers(release: str | None = None, machine: str | None = None,
                 src: Path = SRC) -> HeaderTrees | None:
    """The header trees to compile against (see the module docstring), None when none
    is installed."""
    explicit = os.environ.get(HEADERS_ENV)
    if explicit:
        trees = trees_at(Path(explicit))
        if trees is None:
            raise DatapathError(f"${HEADERS_ENV}={explicit}: not a kernel header tree (no "
                                "include/linux/kconfig.h, nor a Debian linux-headers-<v>-<arch> "
                                "tree with its -common tree beside it)")
        return trees
    release = release or platform.release()
    own = trees_at(src / f"linux-headers-{release}")
    if own is not None:
        return own
    arch = DEBIAN_ARCH.get(machine or platform.machine(), machine or platform.machine())
    candidates = sorted(src.glob(f"linux-headers-*-{arch}"), key=_version_key, reverse=True)
    for candidate in candidates:
        trees = trees_at(candidate)
        if trees is not None:
            return trees
    return None


def overlay(target: Path, layers: list[Path]) -> None:
    """Fills the new directory `target` with a symlink per name found in any layer (to the
    first layer having it); where several layers have a directory of that name, a directory
    overlaying those instead."""
    target.mkdir()
    entries: dict[str, list[Path]] = {}
    for layer in layers:
        for entry in sorted(layer.iterdir()):
            entries.setdefault(entry.name, []).append(entry)
    for name, found in entries.items():
        dirs = [e for e in found if e.is_dir()]
        if len(dirs) > 1 and found[0].is_dir():
            overlay(target / name, dirs)
        else:
            (target / name).symlink_to(found[0])


def missing_headers_message(machine: str | None = None) -> str:
    arch = DEBIAN_ARCH.get(machine or platform.machine(), "<arch>")
    return (f"no kernel headers to compile the datapath against: none under {SRC} and the "
            f"kernel has no {KHEADERS} (CONFIG_IKHEADERS). Install Debian's "
            f"linux-headers-{arch} (`make setup` does; the agent image ships it), or set "
            f"${HEADERS_ENV} to a header tree. Any recent version will do: the datapath "
            "uses only stable kernel interfaces.")


@contextmanager
def kernel_source(find: Callable[[], HeaderTrees | None] = find_headers) -> Iterator[Path]:
    """Within: BCC_KERNEL_SOURCE names a complete header tree of Membrane's own (built in
    a temporary directory from the trees `find` returns, removed after), which it yields.
    Serialised: one at a time."""
    trees = find()
    if trees is None and not KHEADERS.exists():
        raise DatapathError(missing_headers_message())
    with _ENV_LOCK, tempfile.TemporaryDirectory(prefix="membrane-kernel-headers-") as tmp:
        root = Path(tmp) / "tree"
        log.debug("bcc compiles against kernel headers %s",
                  trees.describe() if trees else KHEADERS)
        if trees is None:
            root.mkdir()       # empty: bcc skips it for the kernel's own kheaders
        elif len(trees.layers) == 1:
            root.symlink_to(trees.layers[0])
        else:
            overlay(root, list(trees.layers))
        previous = os.environ.get(BCC_ENV)
        os.environ[BCC_ENV] = str(root)
        try:
            yield root
        finally:
            if previous is None:
                os.environ.pop(BCC_ENV, None)
            else:
                os.environ[BCC_ENV] = previous
