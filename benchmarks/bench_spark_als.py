"""Spark MLlib ALS (local[2]) vs `implicit` iALS on the same matrix: time per iteration and Recall@20.

    python benchmarks/bench_spark_als.py                      # gowalla's fixed LightGCN split
    python benchmarks/bench_spark_als.py --shop 1000000       # a generated shop, leave-last-out

Protocol: both models fit the same binary user x item training matrix (the `Dataset` of the
split's train part) with the same rank and number of iterations, on the same two cores (implicit
num_threads = 2; Spark master local[2]); Recall@20 and NDCG@20 are full-ranking over all items
with training items masked (`evaluate_rankings`). Time per iteration = fit seconds / iterations,
so it includes each library's per-fit set-up (Spark: building the rating blocks and collecting the
factors; its session start is reported apart). Spark scales its L2 penalty by each user's and
item's rating count (ALS-WR) and implicit does not, so each gets its own regularisation, named
in the results. Median of --repeats fits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).parent / "results"


def load(args: argparse.Namespace) -> tuple[Split, dict[str, Any]]:
    from fusionrec.data.split import fixed_split, leave_last_out

    if args.shop:
        from fusionrec.data.synthetic import generate_frames

        events, items, _ = generate_frames(n_events=args.shop, seed=0)
        split = leave_last_out(Dataset.from_frame(events, items))
        final = Split(train=split.train_full, validation=None, test=split.test, protocol={})
        return final, {"dataset": f"generated shop, {args.shop} events (seed 0)", "split": "leave-last-out"}
    from fusionrec.data.formats import read_format
    from fusionrec.data.paths import data_root

    source = read_format("lightgcn", data_root() / "gowalla")
    return fixed_split(source.events, source.test_events), {
        "dataset": "gowalla",
        "split": "fixed LightGCN train/test",
    }


def evaluate(model: Any, split: Split) -> dict[str, float]:
    truth = sp.csr_matrix(split.test.matrix(binary=True))
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    items, _ = model.recommend(users, k=20)
    return evaluate_rankings(items, truth[users], ks=[20], metrics=["Recall", "NDCG"])


def timed_fit(name: str, params: dict[str, Any], split: Split, repeats: int) -> dict[str, Any]:
    seconds, model = [], None
    for _ in range(repeats):
        model = create_model(name, **params)
        start = time.perf_counter()
        model.fit(split.train)
        seconds.append(time.perf_counter() - start)
    fit = statistics.median(seconds)
    metrics = evaluate(model, split)
    return {
        "model": name,
        "params": params,
        "fit_seconds": [round(s, 2) for s in seconds],
        "median_fit_seconds": round(fit, 2),
        "seconds_per_iteration": round(fit / params["iterations"], 3),
        **{key: round(value, 4) for key, value in metrics.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shop", type=int, default=None, help="generated shop size instead of gowalla")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=5.0)
    parser.add_argument("--implicit-reg", type=float, default=10.0)
    parser.add_argument("--spark-reg", type=float, nargs="+", default=[0.1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    from fusionrec.engine.settings import SparkSettings
    from fusionrec.engine.spark_session import spark_session

    split, protocol = load(args)
    start = time.perf_counter()
    spark = spark_session(
        SparkSettings(
            master="local[2]",
            driver_memory=args.driver_memory,
            shuffle_partitions=8,
            local_dir=tempfile.gettempdir(),
        )
    )
    session_seconds = time.perf_counter() - start
    common = {"factors": args.factors, "iterations": args.iterations, "alpha": args.alpha}
    rows = [
        timed_fit(
            "ials", {**common, "regularization": args.implicit_reg, "num_threads": 2}, split, args.repeats
        )
    ]
    print(json.dumps(rows[-1]), flush=True)
    for reg in args.spark_reg:
        rows.append(
            timed_fit("spark_als", {**common, "regularization": reg, "blocks": 4}, split, args.repeats)
        )
        print(json.dumps(rows[-1]), flush=True)
    popular = create_model("most_popular").fit(split.train)
    rows.append({"model": "most_popular", **{k: round(v, 4) for k, v in evaluate(popular, split).items()}})

    import pyspark

    payload = {
        "benchmark": "Spark MLlib ALS (implicit) vs implicit iALS, same matrix",
        "protocol": __doc__.split("Protocol: ", 1)[1].strip(),
        **protocol,
        "train": {
            "users": split.train.n_users,
            "items": split.train.n_items,
            "nnz": int(split.train.matrix(binary=True).nnz),
        },
        "spark_session_start_seconds": round(session_seconds, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "pyspark": pyspark.__version__,
            "spark_master": spark.sparkContext.master,
            "cpus": os.cpu_count(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "results": rows,
    }
    name = f"spark_als_shop{args.shop}.json" if args.shop else "spark_als_gowalla.json"
    output = args.output or RESULTS / name
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(payload, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
