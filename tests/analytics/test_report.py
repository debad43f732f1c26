"""The static report and the dashboard's HTTP routes (the browser test is test_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from analytics.helpers import write_leaderboard
from fusionrec.analytics.dashboard import dashboard_router
from fusionrec.analytics.queries import Filters
from fusionrec.analytics.report import build_payload, build_report
from fusionrec.data.store import EventStore


def embedded_data(html: str) -> dict:
    match = re.search(r"window\.FUSIONREC_DATA = (\{.*?\});\nwindow\.FUSIONREC_CONFIG", html, re.S)
    assert match, "no embedded data"
    return json.loads(match.group(1).replace("<\\/", "</"))


def test_report_is_one_offline_file(generated_duckdb: EventStore, tmp_path: Path) -> None:
    board = write_leaderboard(tmp_path / "evaluate.json")
    out = build_report(generated_duckdb, tmp_path / "out" / "report.html", leaderboard=[board])
    html = out.read_text()
    assert "<script src=" not in html and 'rel="stylesheet"' not in html  # nothing fetched from outside
    assert "plotly.js v" in html[:200_000]  # the library itself is inlined
    data = embedded_data(html)
    for key in (
        "cube",
        "users",
        "retention",
        "segments",
        "forecasts",
        "rules",
        "exposures",
        "costs",
        "experiments",
        "leaderboard",
    ):
        assert data[key], key
    assert data["experiments"][0]["experiment"] == "reco-v2"
    assert set(data["forecasts"]["series"]) == {"sessions", "revenue", "conversion_rate", "aov"}
    assert {r["model"] for r in data["leaderboard"]} == {"ease", "SASRec"}


def test_payload_follows_filters(generated_duckdb: EventStore) -> None:
    everything = build_payload(generated_duckdb, n_boot=50)
    pets = build_payload(generated_duckdb, Filters.of("2026-02-01", "2026-02-28", "Pets"), n_boot=50)
    assert set(pets["cube"]["category"]) == {"(all)", "Pets"}
    assert min(pets["cube"]["period"]) >= "2026-02-01" and max(pets["cube"]["period"]) <= "2026-02-28"
    assert sum(pets["cube"]["sessions"]) < sum(everything["cube"]["sessions"])
    assert pets["forecasts"]["category"] == "Pets"
    assert all(
        "Pets" in (r["antecedent_category"] + r["consequent_category"]) for r in pets["rules"]["purchase"]
    )


def test_dashboard_routes(generated_duckdb: EventStore) -> None:
    app = FastAPI()
    app.include_router(dashboard_router(generated_duckdb, n_boot=50), prefix="/dashboard")
    client = TestClient(app)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert 'src="http://testserver/dashboard/plotly.min.js"' in page.text
    assert '"dataUrl": "http://testserver/dashboard/api/data"' in page.text
    js = client.get("/dashboard/plotly.min.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("application/javascript")
    data = client.get("/dashboard/api/data", params={"category": "Pets", "start": "2026-02-01"}).json()
    assert data["filters"] == {"start": "2026-02-01", "end": None, "category": "Pets"}
    assert set(data["cube"]["category"]) <= {"(all)", "Pets"}
    bad = client.get("/dashboard/api/data", params={"start": "02/01/2026"})
    assert bad.status_code == 422 and "ISO date" in bad.text


def test_build_report_takes_a_url(tmp_path: Path) -> None:
    from analytics.helpers import fill_generated
    from fusionrec.data.store import open_store

    url = f"duckdb:///{tmp_path / 'small.duckdb'}"
    with open_store(url) as store:
        fill_generated(store, n_events=5_000, seed=2)
    out = build_report(url, tmp_path / "r.html", start="2026-01-10", category="Fashion")
    data = embedded_data(out.read_text())
    assert data["filters"]["category"] == "Fashion"
    with pytest.raises(ValueError, match="ISO date"):
        build_report(url, tmp_path / "r2.html", start="yesterday")
