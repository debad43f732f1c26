"""Ingestion speed from Parquet into DuckDB and PostgreSQL; writes benchmarks/results/ingest.json.

Protocol: `fusionrec.data.synthetic.generate_shop` writes N events to Parquet (once per size, not
timed). Each run ingests that events file into a fresh, empty store with `ingest_path` (read, validate,
derive/dedupe ids, write; bot flagging off), batches of 200,000 rows; events/s = rows / wall seconds.
Median of ``--runs`` runs. PostgreSQL runs use a fresh schema on the local server each time.

Usage::

    python benchmarks/bench_ingest.py [--sizes 1000000 10000000] [--runs 3] [--backends duckdb postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from fusionrec.data.ingest import ingest_path
from fusionrec.data.store import open_store
from fusionrec.data.synthetic import generate_shop

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES = os.environ.get("FUSIONREC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
TARGETS = {"duckdb": 200_000, "postgres": 50_000}


def _run(backend: str, events: Path, work: Path) -> tuple[float, int]:
    if backend == "duckdb":
        url = f"duckdb:///{work / f'{uuid.uuid4().hex}.duckdb'}"
        cleanup = None
    else:
        schema = f"fr_bench_{uuid.uuid4().hex[:10]}"
        url = f"{POSTGRES}?schema={schema}"
        cleanup = schema
    try:
        with open_store(url) as store:
            started = time.perf_counter()
            report = ingest_path(store, events, progress=False, flag_bots=False)
            seconds = time.perf_counter() - started
            assert report.stored == report.read, report.to_dict()
        return seconds, report.read
    finally:
        if cleanup:
            import psycopg

            with psycopg.connect(POSTGRES, autocommit=True) as con:
                con.execute(f'DROP SCHEMA IF EXISTS "{cleanup}" CASCADE')
        elif backend == "duckdb":
            for leftover in work.glob("*.duckdb*"):
                leftover.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["duckdb", "postgres"])
    args = parser.parse_args()

    results = []
    with tempfile.TemporaryDirectory(prefix="fusionrec-bench-ingest-") as tmp:
        work = Path(tmp)
        for size in args.sizes:
            shop = work / f"shop-{size}"
            generate_shop(shop, n_events=size, seed=0, progress=False)
            for backend in args.backends:
                runs = [_run(backend, shop / "events.parquet", work) for _ in range(args.runs)]
                rates = [rows / seconds for seconds, rows in runs]
                median = statistics.median(rates)
                results.append(
                    {
                        "backend": backend,
                        "events": runs[0][1],
                        "runs": args.runs,
                        "seconds": [round(s, 2) for s, _ in runs],
                        "events_per_second_median": round(median),
                        "target": TARGETS[backend],
                        "meets_target": median >= TARGETS[backend],
                    }
                )
                print(json.dumps(results[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "benchmark": "ingest",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "load_average_at_end": os.getloadavg(),  # the build box is shared: a high load means slow runs
        "protocol": __doc__.split("Usage::")[0].strip(),
        "results": results,
    }
    (RESULTS / "ingest.json").write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
