"""Shared fixtures for lab tests: labs with unique names, always taken down.

A lab is registered for teardown *before* it is built, so a failure half-way through
`up`, or in any test, still removes everything it created.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from cli import lab as lab_cli
from core.errors import MembraneError
from lab.controller import Lab


def needs_root() -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("lab tests need root and iproute2")
    pytest.importorskip("agent.k8s.loader")
    pytest.importorskip("agent.k8s.serialize")


def unique_lab_name(tag: str) -> str:
    return f"t{tag[:8]}{secrets.token_hex(3)}"


MakeLab = Callable[..., Lab]


@pytest.fixture(scope="module")
def make_lab() -> Iterator[MakeLab]:
    """make_lab(tag, nodes=1, files=[...]) -> Lab: a --no-agent lab for this module."""
    needs_root()
    made: list[Lab] = []

    def make(tag: str, nodes: int = 1, files: list[Path] | None = None) -> Lab:
        lab = Lab(unique_lab_name(tag))
        made.append(lab)
        lab.up(nodes, [str(f) for f in files or []], agents=False)
        return lab

    yield make
    for lab in made:
        lab.down()


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    root = tmp_path_factory.mktemp("manifests")

    def write(name: str, text: str) -> Path:
        path = root / name
        path.write_text(text)
        return path

    return write


def run_cli(*argv: str) -> int:
    """The `membrane lab` verbs, without the rest of the CLI."""
    parser = argparse.ArgumentParser(prog="membrane")
    lab_cli.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    try:
        return int(args.func(args))
    except MembraneError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
