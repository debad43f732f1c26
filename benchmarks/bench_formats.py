"""Time every format reader on its real file; writes benchmarks/results/formats.json.

Protocol: `read_format(name, path)` on each dataset of ../shared/data (FUSIONREC_DATA overrides),
whole call including items and users, in this process; median of 5 runs after one warm-up.
Rows = events + test events returned.

Usage::

    python benchmarks/bench_formats.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from fusionrec.data.formats import read_format
from fusionrec.data.paths import data_root

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = {
    "lightgcn": "gowalla",
    "s3rec": "amazon-beauty/Beauty.txt",
    "movielens": "movielens-100k",
    "dunnhumby": "dunnhumby-completejourney",
    "diginetica": "sessions/diginetica-sample",
    "rees46": "event-samples/rees46_2019-Oct_first1000.csv",
    "otto": "event-samples/otto_train_20sessions.jsonl",
    "tianchi": "event-samples/tianchi_mobile_sample_user_behavior.csv",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = data_root()
    results = {}
    for name, rel in DATASETS.items():
        path = root / rel
        data = read_format(name, path)  # warm-up (file cache, imports)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            data = read_format(name, path)
            times.append(time.perf_counter() - start)
        rows = data.n_events
        median = statistics.median(times)
        results[name] = {
            "path": rel,
            "rows": rows,
            "median_s": round(median, 4),
            "min_s": round(min(times), 4),
            "rows_per_s": round(rows / median),
        }
        print(f"{name:11s} {rows:>10,} rows  median {median:7.3f} s  ({rows / median:,.0f} rows/s)")
    out = {
        "benchmark": "format readers on the real files",
        "protocol": f"read_format on each file, median of {args.runs} runs after one warm-up",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_1m_after": round(os.getloadavg()[0], 2),  # the machine is shared
        },
        "results": results,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "formats.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
