"""Which kernel headers the agent compiles against, and the tree it builds for bcc: a
Debian split (linux-headers-<v>-<arch> + -common) overlaid into one directory, never the
host's /lib/modules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.datapath import headers
from agent.datapath.headers import (BCC_ENV, HEADERS_ENV, HeaderTrees, find_headers,
                                    kernel_source, trees_at)
from core.errors import DatapathError


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def debian_split(src: Path, version: str, arch: str = "amd64", karch: str = "x86") -> Path:
    """A Debian-shaped pair of header trees under src; returns the <arch> one."""
    common = src / f"linux-headers-{version}-common"
    write(common / "include/linux/kconfig.h", "#include <generated/autoconf.h>\n")
    write(common / "include/uapi/linux/bpf.h")
    write(common / f"arch/{karch}/include/asm/page.h")
    write(common / f"arch/{karch}/include/uapi/asm/types.h")
    write(common / "arch/arm/include/asm/other.h")
    write(common / "Makefile", "# common\n")
    tree = src / f"linux-headers-{version}-{arch}"
    write(tree / "include/generated/autoconf.h", "#define CONFIG_BPF 1\n")
    write(tree / f"arch/{karch}/include/generated/uapi/asm/unistd_64.h")
    write(tree / f"arch/{karch}/include/generated/asm/syscalls_64.h")
    write(tree / "Makefile", f"include {common}/Makefile\n")
    return tree


@pytest.fixture(autouse=True)
def no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HEADERS_ENV, raising=False)


def test_a_debian_arch_tree_comes_with_its_common_tree(tmp_path: Path) -> None:
    tree = debian_split(tmp_path, "6.1.0-9")
    assert trees_at(tree) == HeaderTrees((tree, tmp_path / "linux-headers-6.1.0-9-common"))
    assert trees_at(tmp_path / "linux-headers-6.1.0-9-common") is not None, "complete alone"
    assert trees_at(tmp_path) is None


def test_the_newest_installed_tree_of_this_architecture_is_chosen(tmp_path: Path) -> None:
    debian_split(tmp_path, "6.1.0-9")
    newest = debian_split(tmp_path, "6.1.0-10")
    debian_split(tmp_path, "6.1.0-11", arch="arm64", karch="arm64")
    found = find_headers(release="6.18.2-custom", machine="x86_64", src=tmp_path)
    assert found is not None and found.layers[0] == newest
    arm = find_headers(release="6.18.2-custom", machine="aarch64", src=tmp_path)
    assert arm is not None and arm.layers[0].name == "linux-headers-6.1.0-11-arm64"


def test_the_running_kernels_own_headers_come_first(tmp_path: Path) -> None:
    debian_split(tmp_path, "6.1.0-10")
    own = tmp_path / "linux-headers-5.10.0-30-amd64"
    debian_split(tmp_path, "5.10.0-30")
    found = find_headers(release="5.10.0-30-amd64", machine="x86_64", src=tmp_path)
    assert found is not None and found.layers[0] == own


def test_an_explicit_tree_wins_and_a_wrong_one_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian_split(tmp_path / "usr", "6.1.0-10")
    mine = tmp_path / "mine"
    write(mine / "include/linux/kconfig.h")
    monkeypatch.setenv(HEADERS_ENV, str(mine))
    assert find_headers(machine="x86_64", src=tmp_path / "usr") == HeaderTrees((mine,))
    monkeypatch.setenv(HEADERS_ENV, str(tmp_path / "nothing"))
    with pytest.raises(DatapathError, match=HEADERS_ENV):
        find_headers(machine="x86_64", src=tmp_path / "usr")


def test_bcc_is_pointed_at_one_tree_overlaying_both_parts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = debian_split(tmp_path, "6.1.0-10")
    monkeypatch.setenv(BCC_ENV, "/somewhere/else")
    with kernel_source(lambda: trees_at(tree)) as root:
        assert os.environ[BCC_ENV] == str(root)
        # What bcc's kbuild flags reach, relative to the tree (kbuild_helper.cc).
        for wanted in ("include/linux/kconfig.h", "include/generated/autoconf.h",
                       "include/uapi/linux/bpf.h", "arch/x86/include/asm/page.h",
                       "arch/x86/include/uapi/asm/types.h",
                       "arch/x86/include/generated/uapi/asm/unistd_64.h",
                       "arch/x86/include/generated/asm/syscalls_64.h",
                       "arch/arm/include/asm/other.h"):
            assert (root / wanted).is_file(), wanted
        assert (root / "Makefile").read_text().startswith("include "), "the arch tree first"
        assert not (root / "build").exists() and not (root / "source").exists()
    assert os.environ[BCC_ENV] == "/somewhere/else", "restored"
    assert not root.exists(), "the tree is temporary"


def test_without_headers_bcc_may_only_use_the_kernels_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "SRC", tmp_path)
    monkeypatch.setattr(headers, "KHEADERS", tmp_path / "kheaders.tar.xz")
    monkeypatch.delenv(BCC_ENV, raising=False)
    with pytest.raises(DatapathError, match=r"make setup.*MEMBRANE_KERNEL_HEADERS"):
        with kernel_source(lambda: find_headers(src=tmp_path)):
            pass
    write(tmp_path / "kheaders.tar.xz")
    with kernel_source(lambda: find_headers(src=tmp_path)) as root:
        # An empty tree: bcc finds no kconfig.h there and turns to kheaders, not /lib/modules.
        assert os.environ[BCC_ENV] == str(root) and list(root.iterdir()) == []
    assert BCC_ENV not in os.environ


def test_this_machine_has_headers_the_agent_can_use() -> None:
    found = find_headers()
    if found is None:
        pytest.skip("no linux-headers installed (make setup installs them)")
    assert all(not str(p).startswith("/lib/modules") for p in found.layers)
    with kernel_source(lambda: found) as root:
        assert (root / "include/linux/kconfig.h").is_file()
        assert (root / "include/generated/autoconf.h").is_file()
