"""The live dashboard's filter changes on the 1M-event shop: before (the payload rebuilt for each
filter set, as the dashboard did) and after (`DashboardData`: a snapshot built once per version of
the data, filter changes served from it in memory), measured in one process, one after the other.

    fusionrec generate --events 1000000 --out /tmp/shop1m
    fusionrec ingest /tmp/shop1m --store duckdb:////tmp/shop1m.duckdb
    python benchmarks/bench_dashboard.py --store /tmp/shop1m.duckdb --runs 3

The store is copied (the original is left alone) and given an exposure log made from its clicks
(the generator writes none): exposures 1-10 minutes before a sample of clicks, with the clicked
item among those shown, over three placements and two model versions (the second from mid-period),
and an A/B experiment. Each run walks the same filter changes a manager makes (a date range, a
category, both, back to everything); the time of a change is the HTTP round trip of
``GET /dashboard/api/data`` through the FastAPI test client. "busy" times a filter change right
after new exposures were written (answered from the last snapshot while the next one is built in
the background), and how long that background build took. Medians over ``--runs``; the machine's
load (``uptime``) is recorded before and after, and the ratio before/after comes from this one
process so a loaded machine slows both alike.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

FILTER_CHANGES = (
    {"start": "2026-02-01", "end": "2026-02-28"},
    {"start": "2026-02-01", "end": "2026-02-28", "category": None},  # filled with the first category
    {"category": None},
    {"start": "2026-01-15", "end": "2026-03-15"},
    {"end": "2026-03-31"},
)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def with_exposures(store_path: Path, n: int = 40_000, seed: int = 0) -> None:
    from fusionrec.analytics.tables import log_exposures
    from fusionrec.data.store import open_store

    rng = np.random.default_rng(seed)
    with open_store(f"duckdb:///{store_path}") as store:
        clicks = store.query_arrow(
            'SELECT user_id, session_id, item_id, "timestamp" FROM events '
            "WHERE event_type IN ('click', 'view') AND user_id IS NOT NULL USING SAMPLE 60000 ROWS",
            {},
        ).to_pandas()
        items = store.query_arrow("SELECT item_id FROM items", {}).to_pandas()["item_id"].to_numpy()
        clicks = clicks.sample(min(n, len(clicks)), random_state=seed).reset_index(drop=True)
        middle = clicks["timestamp"].min() + (clicks["timestamp"].max() - clicks["timestamp"].min()) / 2
        rows = []
        for i, row in clicks.iterrows():
            shown = [row["item_id"], *rng.choice(items, 4, replace=False).tolist()]
            rng.shuffle(shown)
            at = row["timestamp"] - pd.Timedelta(minutes=int(rng.integers(1, 10)))
            rows.append(
                {
                    "exposure_id": f"bx{i}",
                    "timestamp": at,
                    "user_id": row["user_id"],
                    "session_id": row["session_id"],
                    "placement": ("home", "product", "cart")[i % 3],
                    "experiment": "strip",
                    "variant": "control" if i % 2 else "treatment",
                    "model_version": "v0001" if at < middle else "v0002",
                    "items": shown,
                }
            )
        log_exposures(store, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default="/tmp/shop1m.duckdb")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "dashboard_1m.json"))
    args = parser.parse_args()

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fusionrec.analytics.dashboard import dashboard_router
    from fusionrec.analytics.queries import Filters
    from fusionrec.analytics.report import build_payload
    from fusionrec.data.store import open_store

    load_before = uptime()
    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    path = work / "shop.duckdb"
    shutil.copy(args.store, path)
    t = time.perf_counter()
    with_exposures(path)
    prepare_s = time.perf_counter() - t
    store = open_store(f"duckdb:///{path}")
    categories = (
        store.query_arrow(
            "SELECT DISTINCT split_part(category, ' > ', 1) AS c FROM items WHERE category IS NOT NULL ORDER BY 1",
            {},
        )
        .column(0)
        .to_pylist()
    )
    changes = [{k: (categories[0] if k == "category" else v) for k, v in c.items()} for c in FILTER_CHANGES]
    events = store.query_arrow("SELECT count(*) FROM events", {}).column(0)[0].as_py()
    exposures = store.query_arrow("SELECT count(*) FROM exposures", {}).column(0)[0].as_py()

    # Before: each filter change built the whole payload for its filters (the 60 s cache only
    # helps a filter set seen in the last minute; a new one always paid the full price).
    before_runs = []
    for _ in range(args.runs):
        times = []
        for change in changes:
            t = time.perf_counter()
            build_payload(store, Filters.of(**change), n_boot=500)
            times.append(time.perf_counter() - t)
        before_runs.append(times)

    # After: the dashboard router; the first request precomputes (reported apart), then the same
    # changes run against a fresh router each run, so no filter set is served from a previous run.
    after_runs, warm_s = [], []
    for _ in range(args.runs):
        app = FastAPI()
        app.include_router(dashboard_router(store), prefix="/dashboard")
        client = TestClient(app)
        t = time.perf_counter()
        assert client.get("/dashboard/api/data", params={"fresh": 1}).status_code == 200  # page load
        warm_s.append(time.perf_counter() - t)
        times = []
        for change in changes:
            params = {k: v for k, v in change.items() if v}
            t = time.perf_counter()
            response = client.get("/dashboard/api/data", params=params)
            times.append(time.perf_counter() - t)
            assert response.status_code == 200, response.text
        after_runs.append(times)
    # A busy shop: new exposures, then a filter change not seen before (DashboardData itself,
    # the object behind the router, so that the background build can be waited for and timed).
    from fusionrec.analytics.dashboard import DashboardData
    from fusionrec.analytics.tables import log_exposures

    busy_s, background_s = [], []
    for run in range(args.runs):
        data = DashboardData(store, n_boot=500, check_s=0.0, refresh_s=0.0)
        data.payload(Filters(), fresh=True)
        log_exposures(
            store,
            [
                {
                    "exposure_id": f"busy{run}-{i}",
                    "timestamp": pd.Timestamp.now(tz="UTC"),
                    "user_id": f"b{i}",
                    "placement": "home",
                    "model_version": "v0003",
                    "items": ["i1"],
                }
                for i in range(100)
            ],
        )
        t = time.perf_counter()
        data.payload(Filters.of(category=categories[-1]))
        busy_s.append(time.perf_counter() - t)
        assert data._building is not None
        data._building.join(timeout=600)
        background_s.append(time.perf_counter() - t)
    store.close()
    shutil.rmtree(work, ignore_errors=True)

    def medians(runs: list[list[float]]) -> list[float]:
        return [round(statistics.median(r[i] for r in runs), 3) for i in range(len(changes))]

    before, after = medians(before_runs), medians(after_runs)
    result = {
        "benchmark": "dashboard filter changes",
        "store": args.store,
        "events": events,
        "exposures": exposures,
        "runs": args.runs,
        "prepare_exposures_s": round(prepare_s, 1),
        "filter_changes": changes,
        "before_s": before,
        "after_s": after,
        "before_median_s": round(statistics.median(before), 3),
        "after_median_s": round(statistics.median(after), 3),
        "after_max_s": max(after),
        "ratio_before_over_after": round(statistics.median(before) / max(statistics.median(after), 1e-6), 1),
        "after_first_request_s": round(statistics.median(warm_s), 3),
        "busy_filter_change_s": round(statistics.median(busy_s), 3),
        "busy_background_build_s": round(statistics.median(background_s), 3),
        "all_before_s": before_runs,
        "all_after_s": after_runs,
        "load_before": load_before,
        "load_after": uptime(),
        "cpus": __import__("os").cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not k.startswith("all_")}, indent=2))


if __name__ == "__main__":
    main()
