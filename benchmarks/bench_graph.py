"""Graph and neural CF models on their benchmark splits: GF-CF and LightGCN on Gowalla, NeuMF.

Usage::

    python benchmarks/bench_graph.py gf_cf [--repeats 3]
    python benchmarks/bench_graph.py lightgcn [--minutes 60] [--batch-size 32768] [--lr 0.005] [--init spectral]
    python benchmarks/bench_graph.py neumf --dataset movielens-100k|amazon-beauty [--minutes 30]

Gowalla protocol: the fixed LightGCN train/test files; full ranking over all 40,981 items with each
user's training items masked; Recall@20 / NDCG@20 averaged over the 29,858 test users (the
LightGCN convention, Recall = hits / |test items|). GF-CF has no training and uses the paper's
hyperparameters (alpha 0.3, 256 singular vectors). LightGCN holds out a seeded 3% of the training
interactions as validation for early stopping; the final model is the best-validation epoch. The
Recall@20-vs-time curve additionally scores a fixed sample of test users after each evaluation:
that is for the curve only and never used to stop or to choose anything. Training time excludes
evaluation time.

NeuMF protocol: leave-one-out (last item test, second-to-last validation, the rest train), full
ranking over all items with training items masked; HR@K / NDCG@K over users with a test item.

Writes ``benchmarks/results/graph_gowalla.json`` (gf_cf and lightgcn entries, merged),
``benchmarks/results/neumf_<dataset>.json`` and ``docs/img/lightgcn_gowalla_curve.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.data.formats import read_format
from fusionrec.data.paths import data_root
from fusionrec.data.split import fixed_split, leave_last_out
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "img"
SEED = 2024
KS = (10, 20)

GOWALLA_ANCHORS = {
    "source": "LightGCN paper, GF-CF paper, LightGCN-PyTorch README (shared data README)",
    "LightGCN (3 layers, paper)": {"Recall@20": 0.1830, "NDCG@20": 0.1554},
    "LightGCN-PyTorch 3 layers": {"Recall@20": 0.1824, "NDCG@20": 0.1547},
    "LightGCN-PyTorch 1 layer": {"Recall@20": 0.1687, "NDCG@20": 0.1417},
    "GF-CF": {"Recall@20": 0.1849, "NDCG@20": 0.1518},
    "NGCF": {"Recall@20": 0.1570, "NDCG@20": 0.1327},
    "Mult-VAE": {"Recall@20": 0.1641, "NDCG@20": 0.1335},
    "most_popular (independent)": {"Recall@20": 0.0416, "NDCG@20": 0.0317},
}


def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def merge_json(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Put ``entry`` under ``key`` in the JSON at ``path``, keeping the other models' entries."""
    payload = json.loads(path.read_text()) if path.is_file() else {}
    payload[key] = entry
    payload["published"] = GOWALLA_ANCHORS
    write_json(path, payload)


def evaluate(
    model: Recommender, truth: sp.csr_matrix, exclude: sp.csr_matrix, users: np.ndarray | None = None
) -> dict[str, float]:
    """Full-ranking metrics over ``users`` (default: all with a held-out item), ``exclude`` masked."""
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    recs, _ = model.recommend(users, k=max(KS), exclude=exclude[users])
    metrics = evaluate_rankings(recs, truth[users], ks=KS, metrics=["Recall", "NDCG", "HR"])
    return {key: round(float(value), 5) for key, value in metrics.items()}


# --- Gowalla -----------------------------------------------------------------------------------


def load_gowalla() -> tuple[Dataset, Dataset]:
    source = read_format("lightgcn", data_root() / "gowalla")
    split = fixed_split(source.events, source.test_events)
    return split.train, split.test


def run_gf_cf(args: argparse.Namespace) -> None:
    train, test = load_gowalla()
    params = {"alpha": 0.3, "n_components": 256, "svd_solver": args.svd_solver}
    fit_times, fit_cpu, score_times, score_cpu, metrics = [], [], [], [], {}
    for _ in range(args.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        model = create_model("gf_cf", **params).fit(train)
        fit_times.append(time.perf_counter() - start)
        fit_cpu.append(time.process_time() - cpu_start)
        start, cpu_start = time.perf_counter(), time.process_time()
        metrics = evaluate(model, test.matrix(binary=True), train.matrix(binary=True))
        score_times.append(time.perf_counter() - start)
        score_cpu.append(time.process_time() - cpu_start)
        logging.info("gf_cf fit %.1fs, score+evaluate %.1fs: %s", fit_times[-1], score_times[-1], metrics)
    entry = {
        "model": "gf_cf",
        "params": params,
        "metrics": metrics,
        "fit_seconds_median": round(statistics.median(fit_times), 2),
        "fit_cpu_seconds_median": round(statistics.median(fit_cpu), 2),
        "score_all_test_users_seconds_median": round(statistics.median(score_times), 2),
        "score_all_test_users_cpu_seconds_median": round(statistics.median(score_cpu), 2),
        "total_seconds_median": round(statistics.median(np.add(fit_times, score_times)), 2),
        "repeats": args.repeats,
        "threads": args.threads,
        "tuning": "none: the paper's hyperparameters (alpha 0.3, 256 singular vectors)",
        "machine": machine(),
    }
    merge_json(RESULTS / "graph_gowalla.json", "gf_cf", entry)


def run_lightgcn(args: argparse.Namespace) -> None:
    train, test = load_gowalla()
    rng = np.random.default_rng(SEED)
    held = rng.random(train.n_events) < args.validation_share
    fit_train, validation = train.select(~held), train.select(held)
    test_truth, train_all = test.matrix(binary=True), train.matrix(binary=True)
    test_users = np.flatnonzero(np.diff(test_truth.indptr) > 0)
    curve_users = np.sort(rng.choice(test_users, size=min(args.curve_users, len(test_users)), replace=False))
    params = {
        "embedding_dim": 64,
        "n_layers": 3,
        "learning_rate": args.lr,
        "l2": 1e-4,
        "batch_size": args.batch_size,
        "epochs": 1000,
        "max_seconds": args.minutes * 60,
        "eval_every": args.eval_every,
        "patience": args.patience,
        "validation_users": args.validation_users,
        "n_threads": args.threads,
        "seed": SEED,
        "init": args.init,
    }
    curve: list[dict[str, Any]] = []
    entry: dict[str, Any] = {
        "model": "lightgcn",
        "params": params,
        "protocol": (
            f"fit on train minus a seeded {args.validation_share:.0%} validation sample; early stopping on "
            f"validation Recall@20 ({args.validation_users} validation users); curve test points on "
            f"{len(curve_users)} random test users (never used for stopping); final metrics on all test "
            "users with all training items (validation sample included) masked"
        ),
        "curve": curve,
        "machine": machine(),
    }

    def on_eval(model: Recommender, record: dict[str, Any]) -> None:
        point = dict(record)
        point["test_sample"] = evaluate(model, test_truth, train_all, curve_users)
        curve.append(point)
        logging.info("curve point %s", point)
        merge_json(RESULTS / "graph_gowalla.json", "lightgcn", entry)
        plot_curve(curve)

    start = time.perf_counter()
    model = create_model("lightgcn", **params)
    model.fit(fit_train, validation=validation, callback=on_eval)
    entry["wall_seconds_fit_including_evaluation"] = round(time.perf_counter() - start, 1)
    entry["train_seconds"] = model.history_[-1]["train_seconds"]
    entry["train_cpu_seconds"] = model.history_[-1]["train_cpu_seconds"]
    entry["epochs_run"] = model.history_[-1]["epoch"]
    entry["best_epoch"] = getattr(model, "best_epoch_", None)
    entry["metrics"] = evaluate(model, test_truth, train_all)
    entry["metrics_note"] = "best-validation epoch, all test users"
    logging.info("lightgcn final %s", entry["metrics"])
    merge_json(RESULTS / "graph_gowalla.json", "lightgcn", entry)
    plot_curve(curve)


def plot_curve(curve: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [p["train_cpu_seconds"] / 60 for p in curve]  # CPU time: wall time here is load-dependent
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(minutes, [p["test_sample"]["Recall@20"] for p in curve], marker="o", ms=3, label="test sample")
    ax.plot(minutes, [p.get("validation_recall@20", np.nan) for p in curve], marker=".", label="validation")
    ax.axhline(0.1830, color="grey", ls="--", lw=1, label="published LightGCN 0.1830")
    ax.axhline(0.170, color="red", ls=":", lw=1, label="target 0.170")
    ax.set_xlabel("training CPU time, all threads (minutes, evaluation excluded)")
    ax.set_ylabel("Recall@20")
    ax.set_title("LightGCN on Gowalla (3 layers, dim 64)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    IMAGES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(IMAGES / "lightgcn_gowalla_curve.png", dpi=110)
    plt.close(fig)


# --- NeuMF -------------------------------------------------------------------------------------


def load_leave_one_out(name: str) -> tuple[Dataset, Dataset, Dataset]:
    root = data_root()
    if name == "amazon-beauty":
        source = read_format("s3rec", root / "amazon-beauty")
    elif name == "movielens-100k":
        source = read_format("movielens", root / "movielens-100k")
    else:
        raise SystemExit(f"unknown NeuMF dataset {name!r}")
    split = leave_last_out(Dataset.from_frame(source.events, source.items))
    assert split.validation is not None
    return split.train, split.validation, split.test


def run_neumf(args: argparse.Namespace) -> None:
    train, validation, test = load_leave_one_out(args.dataset)
    train_all = train.matrix(binary=True)
    params = {
        "embedding_dim": 32,
        "mlp_layers": [64, 32, 16],
        "negatives": 4,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "epochs": 200,
        "max_seconds": args.minutes * 60,
        "patience": args.patience,
        "n_threads": args.threads,
        "seed": SEED,
    }
    start = time.perf_counter()
    model = create_model("neumf", **params)
    model.fit(train, validation=validation)
    wall = time.perf_counter() - start
    popular = create_model("most_popular").fit(train)
    entry = {
        "model": "neumf",
        "dataset": args.dataset,
        "params": params,
        "protocol": (
            "leave-one-out; trained on train, early stopping on validation HR@20 (the second-to-last "
            "item); scored on the last item, full ranking, training items masked"
        ),
        "metrics": evaluate(model, test.matrix(binary=True), train_all),
        "most_popular": evaluate(popular, test.matrix(binary=True), train_all),
        "train_seconds": model.history_[-1]["train_seconds"],
        "wall_seconds_fit_including_evaluation": round(wall, 1),
        "epochs_run": model.history_[-1]["epoch"],
        "best_epoch": getattr(model, "best_epoch_", None),
        "history": model.history_,
        "machine": machine(),
    }
    logging.info("neumf %s: %s (most popular %s)", args.dataset, entry["metrics"], entry["most_popular"])
    write_json(RESULTS / f"neumf_{args.dataset}.json", entry)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", choices=["gf_cf", "lightgcn", "neumf"])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--svd-solver", default="randomized", choices=["randomized", "arpack"])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=32768)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--init", default="spectral", choices=["spectral", "normal"])
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--validation-share", type=float, default=0.03)
    parser.add_argument("--curve-users", type=int, default=3000)
    parser.add_argument("--validation-users", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    with threadpool_limits(args.threads):
        {"gf_cf": run_gf_cf, "lightgcn": run_lightgcn, "neumf": run_neumf}[args.model](args)


if __name__ == "__main__":
    main()
