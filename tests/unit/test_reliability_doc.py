"""docs/RELIABILITY.md cites a test for every fault: each cited file and test must exist,
so the table cannot point at a test that was renamed or never written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "RELIABILITY.md"
# `unit/test_x.py::test_name`, `unit/test_x.py`, or `::test_name` (the file cited before it)
CITATION = re.compile(r"`((?:unit|datapath|lab|k8s)/[\w/]+\.py)?(?:::(\w+))?`")


def citations() -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    for line in DOC.read_text().splitlines():
        if not line.startswith("|"):
            continue
        current: str | None = None
        for match in CITATION.finditer(line):
            path, name = match.groups()
            if path is None and name is None:
                continue
            current = path or current
            assert current is not None, f"{line[:60]}...: `::{name}` cites no file before it"
            found.append((current, name))
    return found


def test_every_cited_test_exists() -> None:
    cited = citations()
    assert len(cited) > 20
    missing = []
    for path, name in cited:
        source = ROOT / "tests" / path
        if not source.exists():
            missing.append(path)
        elif name and not re.search(rf"^\s*(async )?def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"RELIABILITY.md cites tests that do not exist: {missing}"
