"""The report and the live dashboard in a real browser: Debian's chromium + chromium-driver via Selenium.

Checks: no console errors, every plot renders, a filter changes the plots. With
FUSIONREC_SCREENSHOTS=DIR the screenshots for the docs are written to DIR (docs/img).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.helpers import write_leaderboard
from conftest import skip_or_fail
from fusionrec.analytics.report import build_report
from fusionrec.data.store import EventStore

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
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
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        skip_or_fail("selenium is not installed (pip install 'fusionrec[dev]')")
    if not (os.path.exists(CHROMIUM) and shutil.which(DRIVER)):
        skip_or_fail(
            "Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {script}")


def console_errors(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def rendered(driver) -> dict[str, bool]:
    return driver.execute_script(
        "var out = {}; arguments[0].forEach(function (id) { var n = document.getElementById(id);"
        " out[id] = !!(n && n.querySelector('.main-svg') && n.data && n.data.length); }); return out;",
        list(PLOTS),
    )


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


def screenshot(driver, name: str) -> None:
    folder = os.environ.get("FUSIONREC_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height) + 40, 6000))
    driver.save_screenshot(str(Path(folder) / name))
    driver.set_window_size(1400, 1000)


def test_static_report_in_chromium(browser, generated_duckdb: EventStore, tmp_path: Path) -> None:
    board = write_leaderboard(tmp_path / "evaluate.json")
    report = build_report(generated_duckdb, tmp_path / "report.html", leaderboard=[board])
    browser.get(report.as_uri())
    wait_for(browser, "return document.body.getAttribute('data-rendered')")
    assert console_errors(browser) == []
    assert all(rendered(browser).values()), rendered(browser)
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
    assert sum(state.values()) >= len(PLOTS) - 2
    screenshot(browser, "report-filtered.png")
    assert console_errors(browser) == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_live_dashboard_in_chromium(browser, generated_duckdb: EventStore, tmp_path: Path) -> None:
    import uvicorn
    from fastapi import FastAPI

    from fusionrec.analytics.dashboard import dashboard_router

    app = FastAPI()
    board = write_leaderboard(tmp_path / "evaluate.json")
    app.include_router(
        dashboard_router(generated_duckdb, leaderboard=[board], n_boot=100), prefix="/dashboard"
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(browser, "return true")
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        browser.get(f"http://127.0.0.1:{port}/dashboard/")
        wait_for(browser, "return document.body.getAttribute('data-rendered')", timeout=120)
        assert console_errors(browser) == []
        assert all(rendered(browser).values()), rendered(browser)
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
        assert sum(rendered(browser).values()) >= len(PLOTS) - 2
        assert console_errors(browser) == []
    finally:
        server.should_exit = True
        thread.join(timeout=10)
