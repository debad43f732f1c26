"""The dashboard a shop manager reads without help: each defect found in headless Chromium (issue 25)
checked on a screenshot-sized page, by an assertion that fails on the defect.

A crafted shop makes the awkward cases: three weeks of events whose last day is partial (events stop
at 10:00), long category names, one basket pair bought together often enough to be a rule, no
campaign costs, and exposures served today (after the last event day). The generated shop of the
other analytics tests gives the A/B experiment, the segments and a store without rules of five
baskets. With FUSIONREC_SCREENSHOTS=DIR the pages are saved as DIR/dashboard-crafted.png and
DIR/report-generated.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.analytics.report import RULES_MIN_BASKETS, build_report
from fusionrec.analytics.tables import log_exposures
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import EventStore, open_store
from headless import chromium, console_errors, screenshot, served, wait_for

CATEGORIES = (
    "Home & Kitchen > Cookware and Bakeware Essentials",
    "Sports & Outdoors > Camping and Hiking Equipment",
    "Beauty & Personal Care > Skin Care Sets",
)
FIRST_DAY = pd.Timestamp("2026-03-01", tz="UTC")
DAYS = 21  # the 21st (2026-03-21) is the partial day
PARTIAL_DAY = "2026-03-21"
RENDERED = "return document.body.getAttribute('data-rendered')"

# Every tick label of every drawn plot lies within its plot's SVG (a cut label sticks out of it).
CLIPPED_LABELS = """
var out = [];
document.querySelectorAll('.plot').forEach(function (plot) {
  var svg = plot.querySelector('.main-svg'); if (!svg) return;
  var box = svg.getBoundingClientRect();
  plot.querySelectorAll('.xtick text, .ytick text, .y2tick text, .g-xtitle text, .g-ytitle text, .g-y2title text')
    .forEach(function (t) {
      var r = t.getBoundingClientRect();
      if (r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1))
        out.push(plot.id + ': ' + t.textContent);
    });
});
return out;
"""
AXIS_TITLES = """
var n = document.getElementById(arguments[0]);
return ['.g-xtitle', '.g-ytitle', '.g-y2title'].map(function (s) { var t = n.querySelector(s + ' text');
  return t ? t.textContent : null; });
"""
# Tick labels of one axis that overlap each other (an unreadable stack).
OVERLAPS = """
var boxes = Array.from(document.querySelectorAll('#' + arguments[0] + ' ' + arguments[1] + ' text'))
  .map(function (t) { return t.getBoundingClientRect(); }).filter(function (r) { return r.height; });
var hits = 0;
for (var i = 0; i < boxes.length; i++) for (var j = i + 1; j < boxes.length; j++) {
  var a = boxes[i], b = boxes[j];
  if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) hits++;
}
return hits;
"""
# No horizontal scrollbar: not the page's, not a panel's.
NO_OVERFLOW = """
var wide = Array.from(document.querySelectorAll('section')).filter(function (s) { return s.scrollWidth > s.clientWidth; });
return document.documentElement.scrollWidth <= document.documentElement.clientWidth && wide.length === 0;
"""


def crafted_shop(path: Path) -> EventStore:
    """The crafted shop (see the module docstring), in a DuckDB file."""
    rng = np.random.default_rng(11)
    items = pd.DataFrame(
        {
            "item_id": [f"p{i}" for i in range(30)],
            "title": [f"Product {i}" for i in range(30)],
            "category": [CATEGORIES[i % 3] for i in range(30)],
            "price": rng.uniform(5, 80, 30).round(2),
        }
    )
    rows = []
    for day in range(DAYS):
        partial = day == DAYS - 1
        for s in range(3 if partial else 30):  # the partial day: a few morning sessions
            user = f"u{int(rng.integers(0, 150))}"
            start = FIRST_DAY + timedelta(days=day, hours=8 + (2 * s / 30 if partial else 15.5 * s / 30))
            basket = ["p0", "p1"] if s % 9 == 0 else [f"p{int(rng.integers(2, 30))}"]
            for n, item in enumerate(basket):
                rows.append((user, item, "view", start + timedelta(minutes=n)))
                if s % 3 == 0:
                    rows.append((user, item, "add_to_cart", start + timedelta(minutes=n, seconds=30)))
            if s % 3 == 0 and s % 2 == 0:
                rows += [(user, item, "purchase", start + timedelta(minutes=5)) for item in basket]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    events["session_id"] = events["user_id"] + "-" + events["timestamp"].dt.strftime("%Y%m%d%H")
    events["price"] = events["item_id"].map(items.set_index("item_id")["price"])
    events["quantity"] = 1.0
    store = open_store(f"duckdb:///{path}")
    ingest_frame(store, events)
    store.upsert_items(items)
    now = datetime.now(UTC)  # served today, long after the last event
    log_exposures(
        store,
        [
            {
                "exposure_id": f"x{i}",
                "timestamp": now - timedelta(minutes=i),
                "user_id": f"u{i}",
                "placement": "home",
                "items": ["p2", "p3", "p4"],
            }
            for i in range(20)
        ],
    )
    return store


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    yield from chromium()


def test_the_payload_spans_exposures_and_leaves_a_partial_day_unjudged(tmp_path: Path) -> None:
    from fusionrec.analytics.report import build_payload

    store = crafted_shop(tmp_path / "crafted.duckdb")
    try:
        payload = build_payload(store, n_boot=20, currency="EUR")
    finally:
        store.close()
    bounds = payload["bounds"]
    assert bounds["last_day"] == datetime.now(UTC).date().isoformat()  # the exposures' day
    assert bounds["last_event_day"] == bounds["partial_day"] == PARTIAL_DAY
    sessions = payload["forecasts"]["series"]["sessions"]
    judged = [
        day for day, actual in zip(sessions["dates"], sessions["actual"], strict=True) if actual is not None
    ]
    assert judged[-1] < PARTIAL_DAY  # fitted and judged up to the day before
    assert payload["currency"] == "EUR"
    rules = payload["rules"]["purchase"]
    assert rules and min(rule["count"] for rule in rules) >= RULES_MIN_BASKETS


@pytest.mark.browser
def test_the_live_dashboard_of_a_crafted_shop_has_no_known_defect(browser, tmp_path: Path) -> None:
    from fastapi import FastAPI

    from fusionrec.analytics.dashboard import dashboard_router

    store = crafted_shop(tmp_path / "crafted.duckdb")
    app = FastAPI()
    app.include_router(dashboard_router(store, n_boot=50, currency="EUR"), prefix="/dashboard")
    try:
        with served(app) as base:
            browser.set_window_size(1400, 1000)
            browser.get(f"{base}/dashboard/")
            wait_for(browser, RENDERED, timeout=120)
            today = datetime.now(UTC).date().isoformat()
            # Exposures stamped today are inside the date range: the pickers reach today.
            assert browser.execute_script("return document.getElementById('f-end').value") == today
            ctr = browser.execute_script(
                "var n = document.getElementById('plot-ctr'); return n.data ? n.data[0].x : null"
            )
            assert ctr == [today], browser.find_element("id", "plot-ctr").text
            # One day: a drawn point, and an axis labelled with the day (not fractions of a millisecond).
            assert browser.execute_script("return document.querySelectorAll('#plot-ctr .point').length") >= 1
            ticks = browser.execute_script(
                "return Array.from(document.querySelectorAll('#plot-ctr .xtick text')).map(function (t) { return t.textContent; })"
            )
            assert ticks == [today], ticks
            # No cost data: said in words, not an empty -1..1 axis.
            cpa = browser.find_element("id", "plot-cpa")
            assert "empty" in cpa.get_attribute("class") and "No cost data" in cpa.text
            # Money in the configured currency.
            assert "€" in browser.find_element("id", "tiles").text
            # The partial last day is left out of the forecast's judgement, and said so.
            flagged = browser.execute_script(
                "var t = document.getElementById('plot-series').data.filter(function (t) {"
                " return t.name === 'outside interval'; })[0]; return t ? t.x : [];"
            )
            assert PARTIAL_DAY not in flagged
            assert (
                f"The last day, {PARTIAL_DAY}, is partial" in browser.find_element("id", "series-note").text
            )
            # The rule bought in enough baskets is drawn, with axis titles; rarer pairs are left out.
            rules = browser.execute_script("return document.getElementById('plot-rules').data[0].x.length")
            assert rules >= 1
            assert browser.execute_script(AXIS_TITLES, "plot-rules")[:2] == [
                "support (share of baskets)",
                "confidence",
            ]
            counts = browser.execute_script(
                "return Array.from(document.querySelectorAll('#rules-table td:last-child')).map(function (t) { return +t.textContent; })"
            )
            assert counts and min(counts) >= RULES_MIN_BASKETS
            for plot in ("plot-funnel-by", "plot-ctr", "plot-series", "plot-segments", "plot-retention"):
                titles = browser.execute_script(AXIS_TITLES, plot)
                assert titles[0] and titles[1], (plot, titles)
            # Long category names and the right-hand axis fit inside their plot, none over another.
            assert browser.execute_script(CLIPPED_LABELS) == []
            names = browser.execute_script(
                "return Array.from(document.querySelectorAll('#plot-funnel-by .ytick text')).map(function (t) { return t.textContent; })"
            )
            assert sorted(names) == sorted(c.split(" > ")[0] for c in CATEGORIES)  # in full, not cut
            for ticks in (".xtick", ".ytick"):
                assert browser.execute_script(OVERLAPS, "plot-funnel-by", ticks) == 0
            assert browser.execute_script(NO_OVERFLOW)
            assert console_errors(browser) == []
            screenshot(browser, "dashboard-crafted.png")
    finally:
        store.close()


@pytest.mark.browser
def test_the_report_of_the_generated_shop_reads_without_help(
    browser, generated_duckdb, tmp_path: Path
) -> None:
    report = build_report(generated_duckdb, tmp_path / "report.html", currency="USD")
    browser.set_window_size(1400, 1000)
    browser.get(report.as_uri())
    wait_for(browser, RENDERED)
    text = browser.find_element("id", "experiments-table").text
    assert "control control" not in text
    verdicts = [n.text for n in browser.find_elements("css selector", "#experiments-table .verdict")]
    assert verdicts, text
    pattern = r"^(Conversion|Clicks): (\S+ (converts|gets clicks) .* than \S+, 95 % interval .* enough data|not enough data yet: about [\d,]+ more (users|exposures) per arm|no clear difference)"
    assert all(pd.Series(verdicts).str.match(pattern)), verdicts
    # The segments' right axis: readable labels, none on top of another.
    assert browser.execute_script(OVERLAPS, "plot-segments", ".y2tick") == 0
    assert browser.execute_script(OVERLAPS, "plot-segments", ".ytick") == 0
    assert browser.execute_script(AXIS_TITLES, "plot-segments")[2] == "spend per user (USD)"
    # No rule of five baskets in this small shop: said in words.
    rules = browser.find_element("id", "plot-rules")
    assert "empty" in rules.get_attribute("class") and f"{RULES_MIN_BASKETS} baskets" in rules.text
    assert "$" in browser.find_element("id", "tiles").text
    assert browser.execute_script(CLIPPED_LABELS) == []
    assert browser.execute_script(NO_OVERFLOW)
    assert console_errors(browser) == []
    screenshot(browser, "report-generated.png")
