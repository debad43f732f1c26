"""Benchmark building a `Dataset`: from a DuckDB store of generated events, and Gowalla from its files.

Each measurement runs in a fresh child process, so its peak RSS (ru_maxrss) is its own. Protocol:
the store is built once per size (generate + ingest, not timed), then `Dataset.from_store` plus
`matrix()` and `sequences()` are timed ``--runs`` times; Gowalla is read with the `lightgcn` reader
and split with `fixed_split`. Targets (issue 2): 10M events in <= 60 s with peak memory <= 4 GB;
Gowalla in <= 10 s.

    .venv/bin/python benchmarks/bench_dataset.py --sizes 1000000,10000000 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "dataset.json"


def child_store(url: str) -> None:
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store import open_store

    began = time.perf_counter()
    with open_store(url) as store:
        dataset = Dataset.from_store(store)
    dataset.matrix()
    dataset.sequences()
    elapsed = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "peak_mib": peak, "events": dataset.n_events}))


def child_gowalla() -> None:
    from fusionrec.data.formats import read_format
    from fusionrec.data.paths import data_root
    from fusionrec.data.split import fixed_split

    began = time.perf_counter()
    source = read_format("lightgcn", data_root() / "gowalla")
    split = fixed_split(source.events, source.test_events)
    split.train.matrix()
    elapsed = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {"seconds": elapsed, "peak_mib": peak, "events": split.train.n_events + split.test.n_events}
        )
    )


def run_child(*args: str) -> dict:
    output = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])


def build_store(n_events: int, folder: Path) -> str:
    from fusionrec.data.ingest import ingest_path
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_shop

    generate_shop(folder / "shop", n_events=n_events, seed=0, progress=False)
    url = f"duckdb:///{folder / 'shop.duckdb'}"
    with open_store(url) as store:
        ingest_path(store, folder / "shop", progress=False)
    return url


def summarise(runs: list[dict]) -> dict:
    return {
        "runs": runs,
        "median_seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "median_peak_mib": round(statistics.median(r["peak_mib"] for r in runs), 1),
        "events": runs[0]["events"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child-store")
    parser.add_argument("--child-gowalla", action="store_true")
    args = parser.parse_args()
    if args.child_store:
        return child_store(args.child_store)
    if args.child_gowalla:
        return child_gowalla()

    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "protocol": __doc__.strip().splitlines()[0],
        "store": {},
    }
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            url = build_store(size, Path(tmp))
            runs = [run_child("--child-store", url) for _ in range(args.runs)]
        results["store"][str(size)] = summarise(runs)
        print(f"{size:,} events: {results['store'][str(size)]}", file=sys.stderr)
    results["gowalla"] = summarise([run_child("--child-gowalla") for _ in range(args.runs)])
    print(f"gowalla: {results['gowalla']}", file=sys.stderr)
    results["machine"]["load_avg_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
