"""DuckDB engine vs Spark local[2] on the same batch jobs, over generated shops of 1M and 10M events.

    python benchmarks/bench_engines.py --sizes 1000000 10000000 --repeats 3

Protocol: the shop is generated once per size (`generate_shop`, seed 0) as Parquet in --data-dir;
every run is a fresh child process (``--worker``) that reads the Parquet and runs, in order,
interactions (7-day half-life), item popularity (1/7/30-day windows), co-visitation (top 100
neighbours), candidates for all users (top 50 of each source), their ranking features and the
session/user/retention KPIs,
each step forced to completion (DuckDB tables; Spark persisted and counted). The parent samples
the RSS of the child's whole process tree (Python driver + Spark's JVM and Python workers) every
0.2 s with psutil: that is the peak memory; the tree's CPU seconds are sampled the same way. Times are medians over --repeats runs; Spark's session
start is reported apart from the job time. Both engines get the same two cores (DuckDB
threads = 2, Spark master local[2]).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

RESULTS = Path(__file__).parent / "results"
JOBS = ("interactions", "popularity", "covisitation", "candidates", "features", "kpis")


def worker(engine_name: str, data: Path, driver_memory: str, partitions: int) -> dict[str, Any]:
    """Run every job once in this process; print one JSON line of step timings and row counts."""
    from fusionrec.engine import EngineSettings, SparkSettings, get_engine, jobs

    settings = EngineSettings(
        engine=engine_name,
        events=str(data / "events.parquet"),
        items=str(data / "items.parquet"),
        duckdb_threads=2,
        spark=SparkSettings(
            master="local[2]",
            driver_memory=driver_memory,
            shuffle_partitions=partitions,
            local_dir=tempfile.gettempdir(),
        ),
    )
    started = time.perf_counter()
    engine = get_engine(settings)
    timings: dict[str, float] = {"start": time.perf_counter() - started}
    counts: dict[str, int] = {}
    steps = {
        "interactions": lambda: jobs.interactions(engine, half_life_days=7.0),
        "popularity": lambda: jobs.item_popularity(engine),
        "covisitation": lambda: jobs.covisitation(engine, max_neighbours=100),
        "candidates": lambda: jobs.candidates(engine, n=50),
        "features": lambda: jobs.ranking_features(engine),
    }
    for name, step in steps.items():
        t0 = time.perf_counter()
        step()
        counts[name] = engine.count(name)  # forces the (lazy) Spark relation; DuckDB's is built already
        timings[name] = time.perf_counter() - t0
    t0 = time.perf_counter()
    kpis = engine.kpis()
    timings["kpis"] = time.perf_counter() - t0
    counts["kpi_sessions"] = int(kpis["sessions"]["sessions"].iloc[0])
    timings["jobs_total"] = sum(timings[j] for j in JOBS)
    engine.close()
    return {"engine": engine_name, "seconds": timings, "rows": counts}


def run_child(engine: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One worker process; its result plus the peak RSS of its process tree."""
    command = [
        sys.executable, __file__, "--worker", engine, "--data", str(data),
        "--driver-memory", args.driver_memory, "--partitions", str(args.partitions),
    ]  # fmt: skip
    load_before = round(psutil.getloadavg()[0], 2)  # other work on the machine inflates wall times
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = [0]
    cpu: dict[int, float] = {}  # CPU seconds per process of the tree, last seen
    done = threading.Event()

    def sample() -> None:
        try:
            parent = psutil.Process(child.pid)
            while not done.is_set():
                total = 0
                for proc in [parent, *parent.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        total += proc.memory_info().rss
                        times = proc.cpu_times()
                        cpu[proc.pid] = times.user + times.system
                peak[0] = max(peak[0], total)
                time.sleep(0.2)
        except psutil.Error:
            pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = child.communicate()
    done.set()
    sampler.join()
    if child.returncode != 0:
        raise SystemExit(f"{engine} worker failed with exit code {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak[0] / 2**20, 1)
    # CPU time of the whole tree (sampled every 0.2 s, so the last instant may be missed): on a
    # shared, overloaded machine it is steadier than wall time.
    result["cpu_seconds"] = round(sum(cpu.values()), 1)
    result["load_average_1min_before"] = load_before
    return result


def ensure_shop(data_dir: Path, n_events: int) -> Path:
    from fusionrec.data.synthetic import generate_shop

    out = data_dir / f"shop_{n_events}"
    if not (out / "events.parquet").is_file():
        generate_shop(out, n_events=n_events, seed=0, progress=False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "fusionrec-bench")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--output", type=Path, default=RESULTS / "engines.json")
    parser.add_argument("--worker", choices=["duckdb", "spark"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.driver_memory, args.partitions)))
        return

    results = []
    for size in args.sizes:
        data = ensure_shop(args.data_dir, size)
        for engine in args.engines:
            runs = [run_child(engine, data, args) for _ in range(args.repeats)]
            median = {
                key: round(statistics.median(r["seconds"][key] for r in runs), 2)
                for key in runs[0]["seconds"]
            }
            results.append(
                {
                    "n_events": size,
                    "engine": engine,
                    "runs": len(runs),
                    "median_seconds": median,
                    "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                    "median_cpu_seconds": statistics.median(r.get("cpu_seconds", 0.0) for r in runs),
                    "rows": runs[0]["rows"],
                    "detail": runs,
                }
            )
            print(json.dumps(results[-1]["median_seconds"] | {"engine": engine, "n": size}), flush=True)
            write(args, results)


def write(args: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    import duckdb
    import pyspark

    payload = {
        "benchmark": "batch jobs: DuckDB engine vs Spark local[2], same SQL (SQLGlot-transpiled)",
        "protocol": __doc__.split("Protocol: ", 1)[1].strip(),
        "machine": {
            "platform": platform.platform(),
            "cpus": psutil.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(),
            "duckdb": duckdb.__version__,
            "pyspark": pyspark.__version__,
            "spark_driver_memory": args.driver_memory,
            "spark_shuffle_partitions": args.partitions,
            "load_average_at_write": [round(x, 1) for x in psutil.getloadavg()],
        },
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
