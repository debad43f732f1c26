"""The dashboard's model panels in headless Chromium against a running service (issue 25, part 3):
CTR, conversion and attributed revenue over time by placement and by model version, the version
timeline, the per-user preview (recent events and what the active model recommends, with the
proposing sources; read-only) and the training jobs with their state. Each is checked on the page
as drawn: axis titles, no label outside its plot or over another, no horizontal scrollbar, empty
states in words. With FUSIONREC_SCREENSHOTS=DIR the pages are saved as DIR/dashboard-panels.png
and DIR/dashboard-panels-empty.png.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from analytics.test_dashboard_defects import AXIS_TITLES, CLIPPED_LABELS, NO_OVERFLOW, OVERLAPS, RENDERED
from headless import chromium, console_errors, screenshot, served, wait_for
from serving.conftest import make_settings

pytestmark = pytest.mark.browser

TRACE_NAMES = "var n = document.getElementById(arguments[0]); return n.data ? n.data.map(function (t) { return t.name; }) : null;"
# Tick labels top to bottom (the DOM keeps plotly's order, not the drawn one).
TICKS = (
    "return Array.from(document.querySelectorAll('#' + arguments[0] + ' ' + arguments[1] + ' text'))"
    ".map(function (t) { return [t.getBoundingClientRect().top, t.textContent]; })"
    ".sort(function (a, b) { return a[0] - b[0]; }).map(function (p) { return p[1]; });"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def _choose(driver, select_id: str, value: str) -> None:
    driver.execute_script(
        "var s = document.getElementById(arguments[0]); s.value = arguments[1];"
        " s.dispatchEvent(new Event('change'));",
        select_id,
        value,
    )


def _until(check, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _exposures(service) -> int:
    service.flush_exposures()
    return service.on_writer(
        lambda: service.store.query_arrow("SELECT count(*) AS n FROM exposures", {}).column(0)[0].as_py()
    )


def test_model_panels_preview_and_training_of_a_running_service(
    browser, store_url: str, models_dir: Path, known_user: str, shop
) -> None:
    from fusionrec.analytics.tables import log_exposures
    from fusionrec.serving.app import create_app

    titles = {row["item_id"]: row["title"] for row in shop[1].to_pylist()}
    # An experiment on the cart strip whose second arm serves v0002 (item_knn): the preview shows
    # that arm's answer too.
    experiment = {
        "name": "cart-strip",
        "placements": ["cart"],
        "arms": [{"name": "control"}, {"name": "knn", "model_version": "v0002"}],
    }
    settings = make_settings(
        store_url,
        models_dir,
        exposure_flush_s=0.2,
        gate_tolerance=1.0,
        retrain_min_interval_s=0,
        experiments=[experiment],
    )
    app = create_app(settings)
    with served(app) as api:
        service = app.state.service
        # An older version served three days ago on the home page (the log keeps its version).
        earlier = datetime.now(UTC) - timedelta(days=3)
        service.on_writer(
            lambda: log_exposures(
                service.store,
                [
                    {
                        "exposure_id": f"old{i}",
                        "timestamp": earlier + timedelta(minutes=i),
                        "user_id": f"old-user-{i}",
                        "placement": "home",
                        "model_version": "v0001",
                        "items": ["i1", "i2"],
                    }
                    for i in range(10)
                ],
            )
        )
        # Today: the active version answers on two placements; one shown item is clicked.
        for placement in ("home", "product", "home"):
            answer = httpx.get(
                f"{api}/v1/recommendations",
                params={"user_id": known_user, "k": 5, "placement": placement},
                timeout=60,
            ).json()
            assert answer["model_version"] == "v0002"
        click = {
            "user_id": known_user,
            "item_id": answer["items"][0]["item_id"],
            "event_type": "click",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        assert httpx.post(f"{api}/v1/events", json=click, timeout=60).status_code == 202
        # A retraining run: its state and the version it made show in the training panel.
        assert (
            httpx.post(f"{api}/v1/models/train", params={"model": "most_popular"}, timeout=60).status_code
            == 202
        )
        _until(lambda: service.retrainer.state.get("state") != "running", timeout=300)
        assert service.retrainer.state["state"] == "done", service.retrainer.state
        httpx.get(
            f"{api}/v1/recommendations", params={"user_id": known_user, "placement": "cart"}, timeout=60
        )
        before = _exposures(service)

        browser.set_window_size(1400, 1000)
        browser.get(f"{api}/dashboard/")
        wait_for(browser, RENDERED, timeout=180)

        # CTR by placement, then by model version; conversion and revenue switch the measure.
        names = browser.execute_script(TRACE_NAMES, "plot-rec-series")
        assert sorted(names) == ["placement cart", "placement home", "placement product"], names
        assert browser.execute_script(AXIS_TITLES, "plot-rec-series")[:2] == [
            "day shown",
            "click-through rate (exposures)",
        ]
        ctr = browser.execute_script(
            "var t = document.getElementById('plot-rec-series').data.filter(function (t) {"
            " return t.name === 'placement home'; })[0]; return t.y[t.y.length - 1];"
        )
        assert ctr and ctr > 0  # today's home strip had its click
        _choose(browser, "f-rec-by", "model_version")
        names = browser.execute_script(TRACE_NAMES, "plot-rec-series")
        assert sorted(names) == ["version v0001", "version v0002", "version v0003"], names
        _choose(browser, "f-rec-metric", "attributed_revenue")
        assert browser.execute_script(AXIS_TITLES, "plot-rec-series")[1] == "attributed revenue"
        _choose(browser, "f-rec-metric", "conversion")
        assert browser.execute_script(AXIS_TITLES, "plot-rec-series")[1].startswith("conversion")

        # The timeline: one bar per version, the first to serve on top, labelled and titled.
        assert browser.execute_script(TICKS, "plot-versions", ".ytick") == ["v0001", "v0002", "v0003"]
        assert browser.execute_script(AXIS_TITLES, "plot-versions")[:2] == [
            "time served (UTC)",
            "model version",
        ]
        for ticks in (".xtick", ".ytick"):
            assert browser.execute_script(OVERLAPS, "plot-versions", ticks) == 0
            assert browser.execute_script(OVERLAPS, "plot-rec-series", ticks) == 0

        # Training jobs: the run that was asked for, done, and the versions with the active one.
        wait_for(browser, "return document.getElementById('training-state')")
        state = browser.find_element("id", "training-state").text
        assert state.startswith("Last run done: most_popular") and "made v0003" in state, state
        history = browser.find_element("id", "training-history").text
        assert "request" in history and "done" in history
        versions = browser.find_element("id", "training-versions").text
        assert all(v in versions for v in ("v0001", "v0002", "v0003")) and "active" in versions

        # The user preview: recent events with titles, and the active model's list with sources.
        browser.find_element("id", "f-user").send_keys(known_user)
        browser.find_element("id", "f-user-go").click()
        wait_for(browser, "return document.getElementById('user-recs') || null")
        rows = browser.execute_script(
            "return Array.from(document.querySelectorAll('#user-recs tr')).slice(1).map(function (r) {"
            " return Array.from(r.cells).map(function (c) { return c.textContent; }); });"
        )
        assert len(rows) == 10
        assert all(row[4] and row[4] != "–" for row in rows), rows  # the proposing sources
        assert all(row[1] in titles.values() for row in rows)  # titles from the catalogue
        preview = browser.find_element("id", "user-preview").text
        assert "Recommended by v0003 (what this user is served)" in preview
        assert "Recommended by v0002 (arm knn of cart-strip)" in preview
        assert browser.execute_script("return document.querySelectorAll('.user-recs').length") == 2
        events = browser.execute_script("return document.querySelectorAll('#user-events tr').length")
        assert events > 1
        assert _exposures(service) == before  # the preview logged nothing

        assert browser.execute_script(CLIPPED_LABELS) == []
        assert browser.execute_script(NO_OVERFLOW)
        assert console_errors(browser) == []
        screenshot(browser, "dashboard-panels.png")

        # A user with no events: said in words.
        field = browser.find_element("id", "f-user")
        field.clear()
        field.send_keys("nobody-at-all")
        browser.find_element("id", "f-user-go").click()
        wait_for(
            browser,
            "return document.getElementById('user-preview').textContent.indexOf('No events stored') >= 0",
        )


def test_model_panels_empty_states_say_why(browser, tmp_path: Path) -> None:
    """A dashboard over a store without exposures, without a service: every new panel says why."""
    from fastapi import FastAPI

    from fusionrec.analytics.dashboard import dashboard_router
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_frames

    store = open_store(f"duckdb:///{tmp_path / 'plain.duckdb'}")
    shop = generate_frames(n_events=3_000, seed=4)
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    app = FastAPI()
    app.include_router(dashboard_router(store, n_boot=20), prefix="/dashboard")
    try:
        with served(app) as base:
            browser.set_window_size(1400, 1000)
            browser.get(f"{base}/dashboard/")
            wait_for(browser, RENDERED, timeout=120)
            for plot, words in (
                ("plot-rec-series", "No exposure log in the store yet"),
                ("plot-versions", "no version has served"),
            ):
                node = browser.find_element("id", plot)
                assert "empty" in node.get_attribute("class") and words in node.text, node.text
            wait_for(
                browser,
                "return document.getElementById('training').textContent.indexOf('No service attached') >= 0",
            )
            assert "Enter a user id" in browser.find_element("id", "user-preview").text
            browser.find_element("id", "f-user").send_keys("u1")
            browser.find_element("id", "f-user-go").click()
            wait_for(
                browser,
                "return document.getElementById('user-preview').textContent.indexOf('No service attached') >= 0",
            )
            assert browser.execute_script(CLIPPED_LABELS) == []
            assert browser.execute_script(NO_OVERFLOW)
            assert console_errors(browser) == []
            screenshot(browser, "dashboard-panels-empty.png")
    finally:
        store.close()
