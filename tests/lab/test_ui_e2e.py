"""`membrane ui --lab L` in a real headless Chromium: the map names the lab's pods, a
connection the policies deny appears as a drop on the map and in the table without a
reload, its detail names the reason and the policies, and the matrix shows the denial.

Set MEMBRANE_UI_SCREENSHOT=path to keep a screenshot of the page (docs/ui.png is one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.controller import Lab
from tests.lab.agentlab import curl, pod_key, state_of, tutorial_lab
from tests.lab.browser import chromium_page, membrane_ui
from tests.lab.conftest import needs_root

pytestmark = [pytest.mark.privileged, pytest.mark.slow]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    needs_root()
    with tutorial_lab(tmp_path_factory.mktemp("ui"), "ui", "monitoring-app.yaml") as lab:
        yield lab


def wait_for(page: Any, script: str, arg: object = None, timeout: float = 20) -> Any:
    """Polls a JS expression in the page until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = page.evaluate(script, arg)
        if value:
            return value
        page.wait_for_timeout(250)
    raise AssertionError(f"not within {timeout}s: {script} (last: {value!r})")


MAP_LABELS = "() => window.membraneUI.cy.nodes().map(n => n.data('label')).join('\\n')"
DROPPED_EDGE = """([from, to]) => window.membraneUI.cy.edges('.dropped').some(
    e => e.data('source') === from && e.data('target') === to)"""
DROPPED_ROWS = """(pod) => [...document.querySelectorAll('#flows tbody tr')].filter(
    tr => tr.cells[2].textContent === pod && tr.cells[5].textContent.startsWith('DROPPED')
).length"""


def test_the_page_shows_the_labs_pods_and_a_drop_live(lab: Lab, tmp_path: Path) -> None:
    pods = sorted(state_of(lab).pods)
    with membrane_ui("--lab", lab.name, log=tmp_path / "ui.log") as url, \
            chromium_page(tmp_path / "profile") as page:
        errors: list[str] = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(url)
        # The map names every pod (idle ones from the agents' endpoints).
        labels = wait_for(page, f"() => {{ const l = ({MAP_LABELS})(); return "
                                f"{[k.split('/')[1] for k in pods]!r}.every(p => "
                                "l.includes(p)) && l; }")
        assert "default" in labels and "monitoring" in labels
        # Nothing was denied yet; the page is marked so a reload would show.
        source = pod_key(lab, "not-frontend")
        assert page.evaluate(DROPPED_ROWS, source) == 0
        page.evaluate("() => { window.notReloaded = true; }")

        assert curl(lab, "not-frontend", "http://backend:8080/") != 0
        assert curl(lab, "frontend", "http://backend:8080/") == 0

        wait_for(page, DROPPED_ROWS, source)
        wait_for(page, DROPPED_EDGE, ["wl:default/not-frontend", "wl:default/backend"])
        assert page.evaluate("() => window.notReloaded") is True
        # The allowed connection is an edge too, not marked dropped.
        wait_for(page, """() => window.membraneUI.cy.edges().some(e => e.data('source') ===
                'wl:default/frontend' && e.data('target') === 'wl:default/backend'
                && !e.hasClass('dropped'))""")

        # The drop's detail: the reason, the identities and the policies that isolated.
        page.locator("#flows tbody tr", has_text="DROPPED").filter(
            has_text=source).first.click()
        detail = page.locator("#detail").inner_text()
        assert "POLICY_DENIED" in detail and "k8s:app=not-frontend" in detail
        assert "default/backend-ingress-deny" in detail

        # The filters narrow the table, served by the observe filters.
        page.fill("#filters input[name=label]", "app=frontend")
        page.select_option("#filters select[name=verdict]", "FORWARDED")
        page.click("#filters button[type=submit]")
        wait_for(page, "() => document.querySelectorAll('#flows tbody tr').length > 0 && "
                       "[...document.querySelectorAll('#flows tbody tr')].every(tr => "
                       "tr.cells[5].textContent === 'FORWARDED')")

        # The matrix of the policies in force: not-frontend -> backend denied on 8080.
        page.click("#matrix-refresh")
        wait_for(page, "() => [...document.querySelectorAll('#matrix-port option')]"
                       ".some(o => o.value === 'TCP/8080')")
        page.select_option("#matrix-port", "TCP/8080")
        backend = pod_key(lab, "backend")
        cell = page.locator(
            f"#matrix td[title='{source} → {backend} TCP/8080: denied']")
        assert cell.count() == 1
        allowed = page.locator(
            f"#matrix td[title='{pod_key(lab, 'frontend')} → {backend} TCP/8080: allowed']")
        assert allowed.count() == 1
        assert not errors, errors

        shot = os.environ.get("MEMBRANE_UI_SCREENSHOT")
        if shot:
            page.click("#filters button[type=reset]")
            wait_for(page, DROPPED_ROWS, source)
            page.locator("#flows tbody tr", has_text="DROPPED").first.click()
            page.wait_for_timeout(500)
            page.screenshot(path=shot, full_page=True)
