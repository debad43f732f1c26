"""Benchmark the synthetic shop generator: wall time and peak memory per size.

Each run is a fresh child process (so peak RSS is that run's own), writing into a temporary folder
that is deleted afterwards. Default protocol: 3 runs of 1M events, 1 run of 10M events, seed 0.

    .venv/bin/python benchmarks/bench_generate.py                # writes benchmarks/results/generate.json
    .venv/bin/python benchmarks/bench_generate.py --sizes 1000000 --runs 1
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

RESULTS = Path(__file__).resolve().parent / "results" / "generate.json"


def child(n_events: int, seed: int, out: str) -> None:
    """One generation; prints its time, peak RSS and output size as JSON."""
    from fusionrec.data.synthetic import generate_shop

    began = time.perf_counter()
    summary = generate_shop(out, n_events=n_events, seed=seed, progress=False)
    elapsed = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    sizes = {p.name: p.stat().st_size for p in Path(out).iterdir()}
    print(
        json.dumps(
            {
                "n_events": n_events,
                "seconds": round(elapsed, 3),
                "events_per_s": round(n_events / elapsed),
                "peak_rss_mb": round(peak_kib / 1024, 1),
                "events_parquet_mb": round(sizes["events.parquet"] / 2**20, 1),
                "n_users": summary.n_users,
                "n_items": summary.n_items,
                "n_sessions": summary.n_sessions,
                "purchase_session_rate": round(summary.n_purchase_sessions / summary.n_sessions, 4),
            }
        )
    )


def run(n_events: int, seed: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="fusionrec-gen-") as tmp:
        cmd = [sys.executable, __file__, "--child", str(n_events), "--seed", str(seed), "--out", tmp]
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, nargs="+", default=[3, 1], help="runs per size (one per size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child, args.seed, args.out)
        return
    runs = args.runs if len(args.runs) == len(args.sizes) else [args.runs[0]] * len(args.sizes)

    import numpy
    import pyarrow

    results = []
    for size, n_runs in zip(args.sizes, runs, strict=True):
        measured = []
        for i in range(n_runs):
            r = run(size, args.seed)
            print(
                f"{size:>11,} events  run {i + 1}/{n_runs}: {r['seconds']:8.2f} s  "
                f"{r['events_per_s']:>9,} events/s  peak RSS {r['peak_rss_mb']:7.1f} MB",
                file=sys.stderr,
            )
            measured.append(r)
        results.append(
            {
                "n_events": size,
                "runs": n_runs,
                "median_seconds": statistics.median(r["seconds"] for r in measured),
                "median_events_per_s": round(statistics.median(r["events_per_s"] for r in measured)),
                "max_peak_rss_mb": max(r["peak_rss_mb"] for r in measured),
                "detail": measured,
            }
        )
    report = {
        "benchmark": "generate_shop (events, items, users Parquet + planted.json, zstd)",
        "protocol": "fresh process per run, output to a temporary folder, seed fixed; "
        "peak RSS = the child's ru_maxrss",
        "seed": args.seed,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__,
        },
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
