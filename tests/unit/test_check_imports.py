"""`make check`'s structure rules hold on this tree, and each rule can fail."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_imports.py"


@pytest.fixture
def checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_imports", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_tree_passes(checker: ModuleType) -> None:
    assert checker.check() == []


def test_a_module_over_the_line_limit_is_named(checker: ModuleType,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checker, "MAX_MODULE_LINES", 500)
    problems = [p for p in checker.check() if "lines (at most 500)" in p]
    assert any(p.startswith("agent/policy/engine.py:") for p in problems), problems


def test_imports_inside_functions_are_counted(checker: ModuleType,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checker, "MAX_FUNCTION_IMPORTS", 0)
    assert any("project imports inside functions" in p for p in checker.check())
