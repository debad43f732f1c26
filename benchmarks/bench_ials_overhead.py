"""Overhead of training iALS through fusionrec versus bare `implicit` on the same matrix.

Usage::

    python benchmarks/bench_ials_overhead.py [--dataset gowalla] [--runs 5] [--threads 2]

Each run times, interleaved (so background load hits both alike):

* bare: ``implicit.cpu.als.AlternatingLeastSquares(...).fit(user_items)`` on a prebuilt CSR
  matrix, under ``threadpool_limits(1, "blas")`` as implicit recommends;
* fusionrec: ``IALS(...).fit(dataset)`` on a Dataset with an empty cache, i.e. including building
  the interaction matrix from the event log, the seen-items matrix and popularity, and copying
  the factors into the model's numpy state.

Both use the same hyperparameters, threads and seed. Writes ``benchmarks/results/ials_overhead.json``
with the median of each and their ratio (target: fusionrec <= 1.1 x bare).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import implicit
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.data.formats import read_format
from fusionrec.data.paths import data_root
from fusionrec.data.split import fixed_split
from fusionrec.models.factorization import IALS

RESULTS = Path(__file__).resolve().parent / "results"
PARAMS = {"factors": 64, "regularization": 0.05, "alpha": 2.0, "iterations": 10}


def load(name: str) -> Dataset:
    if name == "gowalla":
        source = read_format("lightgcn", data_root() / "gowalla")
        return fixed_split(source.events, source.test_events).train
    source = read_format("s3rec", data_root() / "amazon-beauty")
    return Dataset.from_frame(source.events, source.items)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="gowalla", choices=["gowalla", "amazon-beauty"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="implicit's threads (both sides)")
    args = parser.parse_args()
    dataset = load(args.dataset)
    user_items = dataset.matrix(binary=True).copy()
    bare_times, ours_times = [], []
    for run in range(args.runs):
        with threadpool_limits(limits=1, user_api="blas"):
            start = time.perf_counter()
            bare = AlternatingLeastSquares(**PARAMS, num_threads=args.threads, random_state=run)
            bare.fit(user_items, show_progress=False)
            bare_times.append(time.perf_counter() - start)
        dataset._cache.clear()  # fusionrec builds its matrix from the event log, as in real use
        start = time.perf_counter()
        IALS(**PARAMS, num_threads=args.threads, seed=run).fit(dataset)
        ours_times.append(time.perf_counter() - start)
        print(f"run {run}: bare {bare_times[-1]:.2f}s, fusionrec {ours_times[-1]:.2f}s", flush=True)
    bare_median, ours_median = statistics.median(bare_times), statistics.median(ours_times)
    report = {
        "dataset": args.dataset,
        "matrix": {"users": user_items.shape[0], "items": user_items.shape[1], "nnz": int(user_items.nnz)},
        "params": PARAMS,
        "threads": args.threads,
        "runs": args.runs,
        "bare_seconds": bare_times,
        "fusionrec_seconds": ours_times,
        "bare_median": round(bare_median, 3),
        "fusionrec_median": round(ours_median, 3),
        "ratio": round(ours_median / bare_median, 3),
        "target_ratio": 1.1,
        "implicit_version": implicit.__version__,
        "machine": {"cpus": 2, "python": platform.python_version(), "note": "shared with other jobs"},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ials_overhead.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("bare_median", "fusionrec_median", "ratio")}))


if __name__ == "__main__":
    main()
