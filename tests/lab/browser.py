"""A real headless Chromium for UI tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright's own browser download is never used (the machine has no internet; `make
setup` installs Debian's chromium): `executable_path` points at Debian's, with a fresh
profile directory per test and every background network feature off. Chromium refuses
its sandbox as root, so it runs with --no-sandbox (the page is our own, on loopback).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MEMBRANE = [sys.executable, "-m", "cli.main"]


@contextmanager
def chromium_page(profile: Path, width: int = 1400, height: int = 1150) -> Iterator[Any]:
    """A Playwright Page in a fresh profile; skips when chromium or Playwright is absent."""
    if shutil.which(CHROMIUM) is None:
        pytest.skip("UI tests need Debian's chromium (make setup installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@contextmanager
def membrane_ui(*args: str, log: Path) -> Iterator[str]:
    """`membrane ui ARGS --listen 127.0.0.1:0` in the background; yields its URL."""
    with log.open("w") as out:
        proc = subprocess.Popen([*MEMBRANE, "ui", *args, "--listen", "127.0.0.1:0"],
                                stdout=subprocess.PIPE, stderr=out, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "serving http" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                raise AssertionError(f"membrane ui exited: {log.read_text()}")
        url = line.split("serving ", 1)[1].split()[0]
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
