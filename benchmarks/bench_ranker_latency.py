"""Ranker latency of fused pipelines, side by side in one process.

For each pipeline: fit on the benchmark's training data (or load the model an earlier run saved
under ``--models DIR``), then, for the same users, time the features and the ranker separately
over each user's candidates (candidates are generated beforehand and not timed). The pipelines
are timed in turns, repeat after repeat, so that machine load hits them alike; medians are over
every user of every repeat. Also reports each ranker's shape (trees, mean leaf depth), which
sets its cost per row::

    python benchmarks/bench_ranker_latency.py --dataset gowalla --models /tmp/latency-models \\
        benchmarks/pipelines/selection/gowalla/g17_score_all.toml benchmarks/pipelines/gowalla.toml

``--fit-only`` fits and saves one pipeline and stops, so that two can be fitted in parallel.
Writes ``results/ranker-latency-<dataset>[-<tag>].json``; a rerun of the same comparison adds its
run there.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.fusion.config import load_pipeline
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

HERE = Path(__file__).parent


def fitted_model(path: Path, models: Path, split: Any) -> Recommender:
    """The pipeline's model saved under ``models/<file stem>``, fitted and saved there if absent."""
    saved = models / path.stem
    if (saved / "manifest.json").is_file():
        return Recommender.load(saved)
    pipeline = load_pipeline(path)
    model = create_model(pipeline.model, **pipeline.model_params())
    started = time.perf_counter()
    model.fit(split.train_full)
    logging.info("%s fitted in %.0f s", path.name, time.perf_counter() - started)
    model.save(saved)
    return model


def tree_shape(model: Any) -> dict[str, float]:
    """Trees of a LightGBM ranker and the mean depth of their leaves (unweighted by rows: roughly
    the nodes a row visits per tree)."""
    dump = model.ranker._booster().dump_model()
    depths: list[int] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        if "split_index" not in node:  # a leaf (a one-leaf tree has no leaf_index)
            depths.append(depth)
            return
        walk(node["left_child"], depth + 1)
        walk(node["right_child"], depth + 1)

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"], 0)
    return {"trees": len(dump["tree_info"]), "mean_leaf_depth": float(np.mean(depths))}


def time_user(model: Any, user: int) -> tuple[float, float, int]:
    """Milliseconds of the features and of the ranker for one user's candidates, and their count."""
    one = np.array([user])
    candidates = model._candidates(one)
    started = time.perf_counter()
    X = model._features(one, candidates)
    features_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    model._combine(X, candidates)
    return features_ms, (time.perf_counter() - started) * 1000, len(candidates.item)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("pipelines", nargs="+", type=Path)
    parser.add_argument("--models", type=Path, required=True, help="folder of the fitted models")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-only", action="store_true")
    parser.add_argument("--tag", default="", help="suffix of the result file (another comparison)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    split, _ = load_benchmark(resolve_benchmark(args.dataset))
    with threadpool_limits(1):
        models = {path.stem: fitted_model(path, args.models, split) for path in args.pipelines}
        if args.fit_only:
            return
        users = np.unique(split.test.user_idx)[: args.users]
        timings: dict[str, dict[str, list[float]]] = {
            name: {"features": [], "ranker": [], "rows": []} for name in models
        }
        for _ in range(args.repeats):
            for name, model in models.items():
                for user in users:
                    features_ms, ranker_ms, rows = time_user(model, int(user))
                    timings[name]["features"].append(features_ms)
                    timings[name]["ranker"].append(ranker_ms)
                    timings[name]["rows"].append(rows)
    rows = []
    for name, times in timings.items():
        row = {
            "pipeline": name,
            "features_median_ms": float(np.median(times["features"])),
            "ranker_median_ms": float(np.median(times["ranker"])),
            "features_plus_ranker_median_ms": float(np.median(np.add(times["features"], times["ranker"]))),
            "ranker_p95_ms": float(np.percentile(times["ranker"], 95)),
            "candidates_per_user": float(np.mean(times["rows"])),
            **tree_shape(models[name]),
        }
        rows.append(row)
        logging.info("%s", row)
    out = HERE / "results" / f"ranker-latency-{args.dataset}{'-' + args.tag if args.tag else ''}.json"
    payload = {
        "dataset": args.dataset,
        "protocol": f"{len(users)} test users x {args.repeats} repeats, pipelines timed in turns, 1 thread",
        "pipelines": sorted(models),
        "runs": [rows],
    }
    if out.is_file():  # a rerun of the same comparison adds a run: medians vary with the machine's load
        previous = json.loads(out.read_text())
        if {k: previous.get(k) for k in ("protocol", "pipelines")} == {
            k: payload[k] for k in ("protocol", "pipelines")
        }:
            payload["runs"] = previous["runs"] + payload["runs"]
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
