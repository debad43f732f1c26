"""The report and the live dashboard in a real browser: Debian's chromium + chromium-driver via Selenium.

Checks: no console errors, every plot renders, a filter changes the plots. With
FUSIONREC_SCREENSHOTS=DIR the screenshots for the docs are written to DIR (docs/img).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.helpers import write_leaderboard
from fusionrec.analytics.report import build_report
from fusionrec.data.store import EventStore
from headless import chromium, console_errors, screenshot, served, wait_for

pytestmark = pytest.mark.browser

PLOTS = (
    "plot-funnel",
    "plot-funnel-by",
    "plot-series",
    "plot-ctr",
    "plot-cpa",
    "plot-retention",
    "plot-segments",
    "plot-rules",
    "plot-experiments",
    "plot-leaderboard",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def rendered(driver) -> dict[str, bool]:
    return driver.execute_script(
        "var out = {}; arguments[0].forEach(function (id) { var n = document.getElementById(id);"
        " out[id] = !!(n && n.querySelector('.main-svg') && n.data && n.data.length); }); return out;",
        list(PLOTS),
    )


def all_drawn(driver) -> None:
    """Every plot drawn, but the rules: this small shop has no pair bought in five baskets or more
    (`RULES_MIN_BASKETS`), which the rules panel says in words (test_dashboard_defects.py draws one)."""
    state = rendered(driver)
    assert all(ok for plot, ok in state.items() if plot != "plot-rules"), state
    rules = driver.execute_script("return document.getElementById('plot-rules').textContent")
    assert state["plot-rules"] or "baskets or more" in rules, rules


def plot_state(driver) -> str:
    return driver.execute_script(
        "return JSON.stringify(['plot-funnel', 'plot-funnel-by', 'plot-series', 'plot-retention']"
        ".map(function (id) { var n = document.getElementById(id); return n.data ? n.data.map(function (t)"
        " { return [t.x, t.y, t.z]; }) : null; }));"
    )


def choose(driver, element_id: str, value: str) -> None:
    driver.execute_script(
        "var s = document.getElementById(arguments[0]); s.value = arguments[1];"
        " s.dispatchEvent(new Event('change'));",
        element_id,
        value,
    )


def test_static_report_in_chromium(browser, generated_duckdb: EventStore, tmp_path: Path) -> None:
    board = write_leaderboard(tmp_path / "evaluate.json")
    report = build_report(generated_duckdb, tmp_path / "report.html", leaderboard=[board])
    browser.get(report.as_uri())
    wait_for(browser, "return document.body.getAttribute('data-rendered')")
    assert console_errors(browser) == []
    all_drawn(browser)
    screenshot(browser, "report.png")
    before = plot_state(browser)
    choose(browser, "f-category", "Pets")
    after = plot_state(browser)
    assert after != before  # the category filter re-aggregated the plots
    choose(browser, "f-start", "2026-02-01")
    assert plot_state(browser) != after
    # After narrowing, a view may have nothing left (e.g. no rule within one category): it must
    # then say so, not show a stale or broken plot.
    state = rendered(browser)
    messages = browser.execute_script(
        "return arguments[0].map(function (id) { var n = document.getElementById(id);"
        " return n.className.indexOf('empty') >= 0 ? n.textContent : ''; });",
        [k for k, ok in state.items() if not ok],
    )
    assert all(m.strip() for m in messages), state
    assert sum(state.values()) >= len(PLOTS) - 3
    screenshot(browser, "report-filtered.png")
    assert console_errors(browser) == []


def test_live_dashboard_in_chromium(browser, generated_duckdb: EventStore, tmp_path: Path) -> None:
    from fastapi import FastAPI

    from fusionrec.analytics.dashboard import dashboard_router

    app = FastAPI()
    board = write_leaderboard(tmp_path / "evaluate.json")
    app.include_router(
        dashboard_router(generated_duckdb, leaderboard=[board], n_boot=100), prefix="/dashboard"
    )
    with served(app) as base:
        browser.get(f"{base}/dashboard/")
        wait_for(browser, "return document.body.getAttribute('data-rendered')", timeout=120)
        assert console_errors(browser) == []
        all_drawn(browser)
        screenshot(browser, "dashboard.png")
        before = plot_state(browser)
        stamp = browser.execute_script("return document.body.getAttribute('data-rendered')")
        choose(browser, "f-category", "Electronics")  # a live filter: the page asks the server again
        wait_for(
            browser,
            f"return document.body.getAttribute('data-rendered') !== '{stamp}'"
            " && document.getElementById('status').textContent.indexOf('updated') === 0",
            timeout=120,
        )
        assert plot_state(browser) != before  # the server recomputed the views for the filter
        assert sum(rendered(browser).values()) >= len(PLOTS) - 3
        assert console_errors(browser) == []
