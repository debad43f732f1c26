"""Full analytics report build time on generated shops; writes benchmarks/results/report.json.

Protocol: a shop of N events is generated (`generate_shop`, seed 7) and ingested into a DuckDB file
(`ingest_path`, bot flagging on), then given an exposure log (`simulate.exposures_from_events`: every
recommendation click plus 30% of sessions unclicked, one experiment of two arms) and 91 days of
campaign costs for two channels; none of that is timed. Each run is one `build_report` call on the
store opened read-only in a fresh process state (every query, segmentation, forecasts, rules, the A/B
analysis with 1,000 bootstrap resamples, the HTML write). Median of ``--runs`` runs; the per-part
timings of the median run are kept, and the CPU seconds of each run (user + system, all threads):
on a busy shared machine wall time overstates what the report costs. ``--store`` reuses a prepared
store (and its N).

Usage::

    python benchmarks/bench_report.py --events 1000000 3000000 10000000 [--runs 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.analytics.report import build_payload, render_html
from fusionrec.analytics.simulate import exposures_from_events
from fusionrec.analytics.tables import load_campaign_costs
from fusionrec.data.ingest import ingest_path
from fusionrec.data.store import open_store
from fusionrec.data.synthetic import generate_shop

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 60.0  # the target for 10M events


def prepare(n_events: int, work: Path) -> Path:
    """A DuckDB store of ``n_events`` generated events with exposures and costs (reused if present)."""
    path = work / f"shop{n_events}.duckdb"
    if path.exists():
        return path
    shop = work / f"shop{n_events}"
    if not (shop / "events.parquet").exists():
        generate_shop(shop, n_events=n_events, seed=7, progress=False)
    partial = path.with_suffix(".partial")
    with open_store(f"duckdb:///{partial}") as store:
        ingest_path(store, shop, progress=False)
        exposures_from_events(store, seed=7)
        days = pd.date_range("2026-01-01", periods=91)
        rng = np.random.default_rng(7)
        load_campaign_costs(
            store,
            pd.DataFrame(
                {
                    "date": list(days) * 2,
                    "channel": ["web"] * 91 + ["email"] * 91,
                    "campaign": ["search"] * 91 + ["newsletter"] * 91,
                    "cost": rng.uniform(200, 800, 182).round(2),
                }
            ),
        )
    partial.rename(path)
    return path


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process, DuckDB's included
    return usage.ru_utime + usage.ru_stime


def run_once(path: Path, out: Path) -> dict[str, object]:
    cpu = _cpu_seconds()
    started = time.perf_counter()
    with open_store(f"duckdb:///{path}?read_only=true") as store:
        events = store.counts()["events"]
        payload = build_payload(store)
    out.write_text(render_html(payload), encoding="utf-8")
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "cpu_seconds": round(_cpu_seconds() - cpu, 3),
        "events": events,
        "parts": payload["timings"],
        "bytes": out.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--store", type=Path, help="a prepared DuckDB store to time instead")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "fusionrec-bench-report"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "report.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    stores = [args.store] if args.store else [prepare(n, args.work) for n in args.events]
    results = []
    for path in stores:
        runs = [run_once(path, args.work / "report.html") for _ in range(args.runs)]
        median = statistics.median(r["seconds"] for r in runs)
        middle = min(runs, key=lambda r: abs(r["seconds"] - median))
        results.append(
            {
                "events": runs[0]["events"],
                "runs": args.runs,
                "median_seconds": median,
                "all_seconds": [r["seconds"] for r in runs],
                "cpu_seconds": [r.get("cpu_seconds") for r in runs],
                "parts_of_median_run": middle["parts"],
                "report_mb": round(middle["bytes"] / 2**20, 2),
            }
        )
        print(json.dumps(results[-1]), flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    document = {
        "benchmark": "fusionrec report: full static HTML report from a DuckDB store",
        "protocol": __doc__.split("Usage::")[0].strip(),
        "target_seconds_at_10M": TARGET_S,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_after": load,
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
