"""Co-visitation settings on each benchmark's validation part: which one-way setting the automatic
search should offer (`fusionrec.tuning.portfolio`).

Each setting is fit on the split's training part and scored on its validation part with the
search's own scoring (`fusionrec.tuning.search.Fold`); the test part is never read. Datasets
without a validation part (diginetica-sample, gowalla) are skipped.

Usage: ``python benchmarks/bench_covisitation_settings.py amazon-beauty synthetic movielens-100k dunnhumby``
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.models.registry import create_model
from fusionrec.tuning.search import Fold

SETTINGS = {
    "both ways, 30 events (default)": {},
    "one way, 5 events": {"symmetric": False, "max_span_events": 5},
    "one way, 5 events, 1/distance": {"symmetric": False, "max_span_events": 5, "gap_decay": True},
    "one way, 10 events, 1/distance": {"symmetric": False, "max_span_events": 10, "gap_decay": True},
    "both ways, 10 events, 1/distance": {"max_span_events": 10, "gap_decay": True},
}
OUT = Path(__file__).parent / "results" / "covisitation-validation.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in args.datasets:
        split, _ = load_benchmark(resolve_benchmark(name))
        if split.validation is None or not split.validation.n_events:
            print(f"{name}: no validation part, skipped")
            continue
        fold = Fold(split.train, split.validation)
        results[name] = {}
        for label, params in SETTINGS.items():
            started = time.perf_counter()
            metrics = fold.score(create_model("covisitation", **params).fit(split.train))
            row = {k: round(float(metrics[k]), 5) for k in ("NDCG@20", "HR@20")}
            results[name][label] = {
                **row,
                "seconds": round(time.perf_counter() - started, 1),
                "params": params,
            }
            print(f"{name} | {label}: NDCG@20 {row['NDCG@20']:.4f}, HR@20 {row['HR@20']:.4f}", flush=True)
    args.out.write_text(
        json.dumps(
            {
                "protocol": "fit on each benchmark's training part, scored on its validation part "
                "(full ranking, training items masked); the test part is never read",
                "load_average": os.getloadavg(),
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
