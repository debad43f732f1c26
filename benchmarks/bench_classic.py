"""Classic models on the published benchmark splits, tuned on validation data, scored once on test.

Usage::

    python benchmarks/bench_classic.py --dataset amazon-beauty [--models ease,rp3beta] [--threads 2]
    python benchmarks/bench_classic.py --dataset gowalla --models most_popular,rp3beta
    python benchmarks/bench_classic.py --dataset movielens-100k       # SVD / SVD++ 5-fold RMSE, MAE

Protocol (ranking): full ranking over all items, each user's training items masked, ties broken
by lower item id. amazon-beauty: leave-one-out (last item test, second-to-last validation);
tuning fits on train and scores the validation item, the final model fits on train+validation.
gowalla: the fixed LightGCN train/test files; tuning carves a validation split from train (each
training interaction held out with probability 0.2, seeded) and the final model fits on all of
train. Grids are small and listed in GRIDS; the best validation Recall@20 (gowalla) / HR@20 (amazon-beauty), on a seeded
sample of TUNING_USERS validation users, picks the hyperparameters. The test split is never used for choosing anything.

Writes ``benchmarks/results/classic_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.data.formats import read_format
from fusionrec.data.paths import data_root
from fusionrec.data.split import Split, fixed_split, leave_last_out
from fusionrec.evaluation.metrics import evaluate_rankings, rating_errors
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).resolve().parent / "results"
SEED = 2024
KS = (10, 20)

PUBLISHED = {
    "amazon-beauty": {
        "source": "S3-Rec repository full-ranking table (HR@20 / NDCG@20)",
        "PopRec": {"HR@20": 0.0217, "NDCG@20": 0.0084},
        "SASRec": {"HR@20": 0.0902, "NDCG@20": 0.0394},
        "S3-Rec": {"HR@20": 0.0994, "NDCG@20": 0.0414},
    },
    "gowalla": {
        "source": "LightGCN paper / shared data README (Recall@20 / NDCG@20)",
        "most_popular (independent)": {"Recall@20": 0.0416, "NDCG@20": 0.0317},
        "LightGCN": {"Recall@20": 0.1830, "NDCG@20": 0.1554},
        "NGCF": {"Recall@20": 0.1570, "NDCG@20": 0.1327},
        "Mult-VAE": {"Recall@20": 0.1641, "NDCG@20": 0.1335},
    },
    "movielens-100k": {"source": "Surprise 5-fold", "SVD": {"RMSE": 0.934}, "SVD++": {"RMSE": 0.920}},
}

# Small grids, searched on validation only. Keys not listed keep the model defaults.
GRIDS: dict[str, dict[str, dict[str, list[Any]]]] = {
    "amazon-beauty": {
        "most_popular": {},
        "item_knn": {"neighbours": [100], "shrink": [0.0, 10.0], "weighting": ["none", "bm25"]},
        "user_knn": {"neighbours": [200], "shrink": [0.0, 10.0]},
        "rp3beta": {"alpha": [0.6, 1.0], "beta": [0.2, 0.4], "neighbours": [200]},
        "ease": {"l2": [50.0, 150.0, 500.0]},
        "pure_svd": {"factors": [64, 256]},
        "ials": {"factors": [128], "regularization": [1.0, 10.0], "alpha": [5.0], "iterations": [15]},
        "bpr": {"factors": [64], "learning_rate": [0.05], "regularization": [0.01], "iterations": [100]},
    },
    "gowalla": {
        "most_popular": {},
        "rp3beta": {"alpha": [0.75, 1.0], "beta": [0.15, 0.3], "neighbours": [200]},
        "item_knn": {"neighbours": [200], "shrink": [10.0], "weighting": ["bm25"]},
        "ials": {"factors": [256], "regularization": [10.0], "alpha": [5.0], "iterations": [15]},
        "ease": {"l2": [100.0]},
        # GF-CF, and BSPM's sharpening step on it (sharpen > 0; the BSPM paper: 448 vectors,
        # low-pass weight 0.2, sharpening time 2.5)
        "gf_cf": {"n_components": [256, 448], "alpha": [0.2, 0.3], "sharpen": [0.0, 1.0, 2.5]},
    },
}
TUNE_KEY = {"amazon-beauty": "HR@20", "gowalla": "Recall@20"}
TUNING_USERS = 8000  # validation users scored per tuning trial (seeded sample; the test uses all)
log = logging.getLogger("bench_classic")


# --- data ------------------------------------------------------------------------------------


def load(name: str) -> tuple[Split, Split, dict[str, Any]]:
    """(tuning split, final split, protocol): tuning = train vs validation, final = train_full vs test."""
    root = data_root()
    if name == "amazon-beauty":
        source = read_format("s3rec", root / "amazon-beauty")
        split = leave_last_out(Dataset.from_frame(source.events, source.items))
        tuning = Split(train=split.train, validation=None, test=split.validation, protocol={})
        final = Split(train=split.train_full, validation=None, test=split.test, protocol={})
        protocol = {"split": "leave_one_out (last = test, second-to-last = validation)"}
    elif name == "gowalla":
        source = read_format("lightgcn", root / "gowalla")
        split = fixed_split(source.events, source.test_events)
        rng = np.random.default_rng(SEED)
        held = rng.random(split.train.n_events) < 0.2
        tuning = Split(
            train=split.train.select(~held), validation=None, test=split.train.select(held), protocol={}
        )
        final = Split(train=split.train, validation=None, test=split.test, protocol={})
        protocol = {
            "split": "fixed LightGCN train/test; validation: each train interaction held out "
            "with probability 0.2 (seeded)"
        }
    else:
        raise SystemExit(f"unknown ranking dataset {name!r}")
    protocol.update(
        {
            "dataset": name,
            "ranking": "full ranking over all items, training items masked",
            "tie_rule": "higher score first, then lower item id",
            "ks": list(KS),
            "seed": SEED,
            "users_evaluated": "test: every user with a held-out item; tuning: seeded sample of 8000",
        }
    )
    return tuning, final, protocol


def evaluate(model: Any, split: Split, sample: int | None = None) -> dict[str, float]:
    """Full-ranking metrics of a fitted model on ``split.test`` (training items masked).

    ``sample`` scores a seeded random subset of that many users (tuning only, to save time).
    """
    truth_all = split.test.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    if sample is not None and sample < len(users):
        users = np.sort(np.random.default_rng(SEED).choice(users, size=sample, replace=False))
    recs, _ = model.recommend(users, k=max(KS), exclude="seen")
    metrics = evaluate_rankings(recs, truth_all[users], ks=KS, metrics=["Recall", "NDCG", "HR"])
    return {key: round(float(value), 5) for key, value in metrics.items()}


def fit_timed(name: str, params: dict[str, Any], train: Dataset) -> tuple[Any, float]:
    start = time.perf_counter()
    model = create_model(name, **params).fit(train)
    return model, time.perf_counter() - start


def grid(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(space[k] for k in keys))]


def run_ranking(dataset: str, models: list[str], fixed: dict[str, dict[str, Any]]) -> dict[str, Any]:
    tuning, final, protocol = load(dataset)
    key = TUNE_KEY[dataset]
    results = []
    for name in models:
        candidates = [fixed[name]] if name in fixed else grid(GRIDS[dataset].get(name, {}))
        trials = []
        if len(candidates) > 1:
            for params in candidates:
                model, seconds = fit_timed(name, params, tuning.train)
                metrics = evaluate(model, tuning, sample=TUNING_USERS)
                del model
                trials.append({"params": params, "validation": metrics, "fit_seconds": round(seconds, 2)})
                log.info("%s %s: validation %s=%.4f (%.1fs)", name, params, key, metrics[key], seconds)
            best = max(trials, key=lambda t: t["validation"][key])["params"]
        else:
            best = candidates[0]
        model, seconds = fit_timed(name, best, final.train)
        metrics = evaluate(model, final)
        del model
        log.info("%s %s: TEST %s", name, best, metrics)
        results.append(
            {
                "model": name,
                "params": best,
                "metrics": metrics,
                "fit_seconds": round(seconds, 2),
                "tuning": trials,
            }
        )
    return {"protocol": protocol, "published": PUBLISHED[dataset], "results": results}


# --- ratings ---------------------------------------------------------------------------------


def run_ratings(models: list[str], fixed: dict[str, dict[str, Any]], folds: int = 5) -> dict[str, Any]:
    source = read_format("movielens", data_root() / "movielens-100k")
    dataset = Dataset.from_frame(source.events, source.items, source.users)
    rng = np.random.default_rng(SEED)
    fold_of = rng.permutation(dataset.n_events) % folds
    results = []
    for name in models:
        per_fold = []
        for fold in range(folds):
            train, test = dataset.select(fold_of != fold), dataset.select(fold_of == fold)
            model, seconds = fit_timed(name, fixed.get(name, {}), train)
            predicted = model.predict_ratings(test.user_idx, test.item_idx)
            errors = rating_errors(predicted, test.quantity)
            per_fold.append({**{k: float(v) for k, v in errors.items()}, "fit_seconds": seconds})
            log.info("%s fold %d: %s (%.1fs)", name, fold, errors, seconds)
        mean = {k: round(float(np.mean([f[k] for f in per_fold])), 5) for k in per_fold[0]}
        results.append(
            {
                "model": name,
                "params": create_model(name, **fixed.get(name, {})).config.model_dump(),
                "metrics": {"RMSE": mean["RMSE"], "MAE": mean["MAE"]},
                "fit_seconds": mean["fit_seconds"],
                "folds": per_fold,
            }
        )
    protocol = {
        "dataset": "movielens-100k",
        "split": f"seeded random {folds}-fold over ratings (numpy Generator seed {SEED})",
        "metrics": "RMSE and MAE of predicted ratings, mean over folds",
        "unknown users/items": "baseline (global mean + known biases)",
    }
    return {"protocol": protocol, "published": PUBLISHED["movielens-100k"], "results": results}


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=["amazon-beauty", "gowalla", "movielens-100k"])
    parser.add_argument("--models", default=None, help="comma-separated registry names (default: the grid's)")
    parser.add_argument("--params", default="{}", help='JSON {"model": {...}}: fixed params, skip tuning')
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    fixed = json.loads(args.params)
    started = time.perf_counter()
    with threadpool_limits(limits=args.threads, user_api="blas"):
        if args.dataset == "movielens-100k":
            report = run_ratings(args.models.split(",") if args.models else ["svd", "svdpp"], fixed)
        else:
            models = args.models.split(",") if args.models else list(GRIDS[args.dataset])
            report = run_ranking(args.dataset, models, fixed)
    report["machine"] = {"cpus": 2, "blas_threads": args.threads, "python": platform.python_version()}
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    output = Path(args.output) if args.output else RESULTS / f"classic_{args.dataset}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps([{r["model"]: r["metrics"]} for r in report["results"]], indent=1))


if __name__ == "__main__":
    main()
